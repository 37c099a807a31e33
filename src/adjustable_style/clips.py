"""Synthetic clips with exactly known motion, as cameras film them: pans with noise and exposure flicker, objects
moving against the background, scene cuts.

Each clip comes with its ground truth: per frame a backward flow (1, 2, H, W) in pixels (frame t's pixel p was at
p + flow in frame t − 1) and a mask (1, 1, H, W) bool of the pixels that flow is right for (not occluded, not
disoccluded, inside the previous frame), ready for :func:`~adjustable_style.flow.flow_warping_error`. Motions are
whole pixels, so the frames are crops and pastes, with no resampling.

Example:
    >>> clip = panning_clip(torch.rand(1, 3, 64, 96), 4, (32, 48), step=(3, 0))
    >>> clip.frames.shape, len(clip.flows)
    (torch.Size([4, 3, 32, 48]), 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import InputError


@dataclass
class Clip:
    """Frames (N, 3, H, W) in [0, 1] and, for each t ≥ 1, the true backward flow and its valid-pixel mask."""

    frames: torch.Tensor
    flows: list[torch.Tensor]
    masks: list[torch.Tensor]


def _crop(image: torch.Tensor, y: int, x: int, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    if y < 0 or x < 0 or y + h > image.shape[-2] or x + w > image.shape[-1]:
        raise InputError(f"the camera leaves the photo: a {h}x{w} crop at ({y}, {x}) of {tuple(image.shape[-2:])}")
    return image[..., y : y + h, x : x + w]


def panning_clip(
    image: torch.Tensor,
    n_frames: int,
    size: tuple[int, int],
    step: tuple[int, int] = (3, 0),
    obj: torch.Tensor | None = None,
    obj_step: tuple[int, int] = (-4, 1),
) -> Clip:
    """A camera panning over ``image`` by ``step`` (x, y) px a frame; optionally an object sliding over it.

    Args:
        image: the photo (1, 3, H, W), large enough for the whole pan.
        n_frames: frames (≥ 2).
        size: (H, W) of the frames.
        step: camera motion (x, y) in whole pixels per frame; the picture moves the other way.
        obj: (1, 4, h, w) RGB and alpha in [0, 1]: a cut-out pasted over the background (alpha ≥ ½ counts as the
            object), starting near the frame's right third; None for none.
        obj_step: the object's motion (x, y) in the frame, whole pixels per frame.
    """
    h, w = size
    sx, sy = step
    x0 = max(0, -sx * (n_frames - 1)) + (image.shape[-1] - w - abs(sx) * (n_frames - 1)) // 2
    y0 = max(0, -sy * (n_frames - 1)) + (image.shape[-2] - h - abs(sy) * (n_frames - 1)) // 2
    frames, flows, masks = [], [], []
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside_bg = ((xs + sx >= 0) & (xs + sx < w) & (ys + sy >= 0) & (ys + sy < h))[None, None]
    prev_cover = None
    for t in range(n_frames):
        f = _crop(image, y0 + t * sy, x0 + t * sx, size).clone()
        flow = torch.empty(1, 2, h, w)
        flow[:, 0], flow[:, 1] = float(sx), float(sy)
        valid = inside_bg.clone()
        cover = torch.zeros(1, 1, h, w, dtype=torch.bool)
        if obj is not None:
            oh, ow = obj.shape[-2:]
            ox, oy = (2 * w) // 3 - ow // 2 + t * obj_step[0], (h - oh) // 2 + t * obj_step[1]
            canvas = torch.zeros(1, 4, h, w)
            ya, yb, xa, xb = max(oy, 0), min(oy + oh, h), max(ox, 0), min(ox + ow, w)
            if ya < yb and xa < xb:
                canvas[..., ya:yb, xa:xb] = obj[..., ya - oy : yb - oy, xa - ox : xb - ox]
            alpha = canvas[:, 3:]
            f = f * (1 - alpha) + canvas[:, :3] * alpha
            cover = alpha >= 0.5
            soft = (alpha > 0) & ~cover
            flow[:, 0:1][cover] = float(-obj_step[0])
            flow[:, 1:2][cover] = float(-obj_step[1])
            if prev_cover is not None:
                # background that was under the object before (disoccluded), the object's soft rim, and object
                # pixels whose source fell outside the frame are not explained by the flow
                src_bg = _shift(_dilate(prev_cover, 2), sx, sy)
                valid = torch.where(cover, _shift(prev_cover, -obj_step[0], -obj_step[1]), valid & ~src_bg)
                valid &= ~_dilate(soft | _edge(cover), 1)
        frames.append(f.clamp(0, 1))
        if t:
            flows.append(flow)
            masks.append(valid)
        prev_cover = cover
    return Clip(torch.cat(frames), flows, masks)


def _shift(mask: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``mask`` read at p + (dx, dy) (False outside)."""
    h, w = mask.shape[-2:]
    out = torch.zeros_like(mask)
    ya, yb, xa, xb = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
    if ya < yb and xa < xb:
        out[..., ya:yb, xa:xb] = mask[..., ya + dy : yb + dy, xa + dx : xb + dx]
    return out


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(mask.float(), 2 * r + 1, 1, r) > 0


def _edge(mask: torch.Tensor) -> torch.Tensor:
    return _dilate(mask, 1) & ~(-F.max_pool2d(-mask.float(), 3, 1, 1) > 0)


def camera_effects(frames: torch.Tensor, noise: float = 3 / 255, flicker: float = 0.03, seed: int = 0) -> torch.Tensor:
    """What a phone adds: per-frame brightness gain 1 ± ``flicker`` (uniform) and Gaussian sensor noise ``noise``.

    Example:
        >>> camera_effects(torch.full((2, 3, 4, 4), 0.5)).std() > 0
        tensor(True)
    """
    g = torch.Generator().manual_seed(seed)
    gain = 1 + flicker * (2 * torch.rand(frames.shape[0], 1, 1, 1, generator=g) - 1)
    return (frames * gain + noise * torch.randn(frames.shape, generator=g)).clamp(0, 1)


def cut_clip(first: Clip, second: Clip) -> Clip:
    """``first`` then ``second`` (a scene cut): the frame after the cut has no valid pixels.

    Example:
        >>> a = panning_clip(torch.rand(1, 3, 40, 60), 3, (32, 48))
        >>> c = cut_clip(a, a)
        >>> c.frames.shape[0], bool(c.masks[2].any())
        (6, False)
    """
    h, w = first.frames.shape[-2:]
    none = torch.zeros(1, 1, h, w, dtype=torch.bool)
    return Clip(
        torch.cat([first.frames, second.frames]),
        [*first.flows, torch.zeros(1, 2, h, w), *second.flows],
        [*first.masks, none, *second.masks],
    )
