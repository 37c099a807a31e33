"""Dense motion between video frames: optical flow, occlusion masks, warping by flow and the warping error.

:func:`optical_flow` estimates, for every pixel of the current frame, where it was in the previous one (OpenCV's
DIS flow, Kroeger et al. 2016, on exposure-matched grey frames). :func:`consistency_mask` trusts a pixel only where
the forward and backward flows agree (Sundaram et al. 2010): occluded and disoccluded pixels, and pixels whose motion
the flow got wrong, fail. :func:`flow_warping_error` is the temporal-consistency measure of Lai et al. (2018): each
output frame against the previous output warped onto it, over the trusted pixels only.

OpenCV is optional (``pip install 'adjustable-style[video]'``); :func:`has_flow` says whether it is installed.
Flows are (1, 2, H, W) float32 in pixels, channel 0 horizontal (x), channel 1 vertical (y).

Example:
    >>> a = torch.rand(1, 3, 64, 64)
    >>> flow = optical_flow(a, a)  # doctest: +SKIP
    >>> float(flow.abs().max()) < 0.1  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .checks import InputError

FLOW_HINT = "dense optical flow needs OpenCV; install it with: pip install 'adjustable-style[video]'"


def _cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise InputError(FLOW_HINT) from None
    return cv2


def has_flow() -> bool:
    """Whether OpenCV (and so :func:`optical_flow`) is available."""
    try:
        _cv2()
    except InputError:
        return False
    return True


def grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) luma (Rec. 601)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def match_exposure(source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``source`` with each channel's gain and offset set so its mean and spread match ``target``'s.

    A camera's exposure and white balance drift change every pixel by about the same gain and offset per channel;
    this undoes that drift (not local changes). ``mask`` (1, 1, H, W) in [0, 1] picks the pixels both images show.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> torch.allclose(match_exposure(1.05 * x + 0.01, x), x, atol=1e-4)
        True
    """
    w = torch.ones_like(source[:, :1]) if mask is None else mask.to(source)
    n = w.sum((2, 3), keepdim=True).clamp_min(1e-6)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (x * w).sum((2, 3), keepdim=True) / n
        return mean, (((x - mean) ** 2 * w).sum((2, 3), keepdim=True) / n).sqrt()

    (ms, ss), (mt, stt) = stats(source), stats(target)
    gain = (stt / ss.clamp_min(1e-4)).clamp(0.5, 2.0)  # a drift, not a new picture: keep the gain sane
    return (source - ms) * gain + mt


def _to_u8(x: torch.Tensor) -> Any:
    return (x[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def optical_flow(previous: torch.Tensor, current: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Dense backward flow: ``current(p) ≈ previous(p + flow(p))`` for every pixel p.

    DIS optical flow (OpenCV) on the grey frames, the previous one first matched to the current one's exposure so
    that a brightness change does not read as motion.

    Args:
        previous, current: (1, 3, H, W) in [0, 1], the same size.
        preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"`` (slower, more accurate).

    Returns:
        (1, 2, H, W) float32 in pixels (x, then y).

    Raises:
        InputError: OpenCV is not installed (the message says how to install it), or an unknown preset.
    """
    cv2 = _cv2()
    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise InputError(f"flow preset must be one of {', '.join(presets)}, got {preset!r}")
    prev, cur = grey(previous.float().cpu()), grey(current.float().cpu())
    prev = match_exposure(prev, cur)
    dis = cv2.DISOpticalFlow_create(presets[preset])
    flow = dis.calc(_to_u8(cur), _to_u8(prev), None)  # (H, W, 2): where each pixel of cur lies in prev
    return torch.from_numpy(flow).permute(2, 0, 1)[None].contiguous()


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid (1, H, W, 2) in normalised coordinates (align_corners=False) for ``flow``."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    gx = (xs + flow[0, 0] + 0.5) * (2 / w) - 1
    gy = (ys + flow[0, 1] + 0.5) * (2 / h) - 1
    return torch.stack([gx, gy], -1)[None]


def flow_warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image`` (1, C, H, W) sampled at p + ``flow(p)``: the previous frame lined up with the current one.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.equal(flow_warp(x, torch.zeros(1, 2, 8, 8)), x)
        True
    """
    return F.grid_sample(image, _grid(flow).to(image), mode=mode, padding_mode="border", align_corners=False)


def inside_mask(flow: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(1, 1, H, W) bool: where the source p + ``flow(p)`` lies inside the previous frame (less ``margin`` px)."""
    h, w = flow.shape[-2:]
    g = _grid(flow)
    return ((g[..., 0].abs() <= 1 - 2 * margin / w) & (g[..., 1].abs() <= 1 - 2 * margin / h))[:, None]


def consistency_mask(backward: torch.Tensor, forward: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """Where the flow can be trusted: the forward flow, read at where the backward flow points, brings p back to p.

    Uses the test of Sundaram et al. (2010) as in Ruder et al. (2016): trusted where
    ``|b + f(p + b)|² ≤ 0.01 (|b|² + |f(p + b)|²) + tolerance``, and where p + b lies inside the previous frame.

    Args:
        backward: (1, 2, H, W) current → previous (as :func:`optical_flow` ``(previous, current)``).
        forward: (1, 2, H, W) previous → current (:func:`optical_flow` ``(current, previous)``).
        tolerance: squared disagreement (px²) always accepted.

    Returns:
        (1, 1, H, W) bool.

    Example:
        >>> b = torch.full((1, 2, 8, 8), 1.0)
        >>> consistency_mask(b, -b)[0, 0, 2:6, 2:6].all().item()
        True
    """
    f = flow_warp(forward, backward)
    err = ((backward + f) ** 2).sum(1, keepdim=True)
    bound = 0.01 * ((backward**2).sum(1, keepdim=True) + (f**2).sum(1, keepdim=True)) + tolerance
    return (err <= bound) & inside_mask(backward)


def flow_warping_error(
    frames: torch.Tensor, flows: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], margin: int = 4
) -> float:
    """Warping error of Lai et al. (2018): mean over t of the masked MSE between frame t and warped frame t − 1.

    Args:
        frames: (N, 3, H, W) in [0, 1], N ≥ 2 (e.g. a stylized clip).
        flows: N − 1 backward flows (1, 2, H, W); ``flows[t - 1]`` maps frame t's pixels into frame t − 1
            (estimated on the *input* frames, or known for a synthetic clip).
        masks: N − 1 (1, 1, H, W) bool, the pixels to count (non-occluded, flow trusted).
        margin: pixels within this many of a border are left out.

    Example:
        >>> clip = torch.rand(1, 3, 16, 16).expand(3, -1, -1, -1)
        >>> flow_warping_error(clip, [torch.zeros(1, 2, 16, 16)] * 2, [torch.ones(1, 1, 16, 16, dtype=torch.bool)] * 2)
        0.0
    """
    n = frames.shape[0] if frames.ndim == 4 else 0
    if n < 2 or len(flows) != n - 1 or len(masks) != n - 1:
        raise ValueError(
            f"need frames (N >= 2, 3, H, W) and N - 1 flows and masks, got {tuple(frames.shape)}, "
            f"{len(flows)} and {len(masks)}"
        )
    errs = []
    for t in range(1, n):
        m = (masks[t - 1] & inside_mask(flows[t - 1], margin)).clone()
        m[..., :margin, :] = m[..., -margin:, :] = m[..., :margin] = m[..., -margin:] = False
        warped = flow_warp(frames[t - 1 : t], flows[t - 1].to(frames))
        m = m.to(frames)
        errs.append(float(((warped - frames[t : t + 1]) ** 2 * m).sum() / (3 * m.sum()).clamp_min(1)))
    return sum(errs) / len(errs)
