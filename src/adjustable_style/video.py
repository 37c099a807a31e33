"""Video: stylize a clip frame by frame, with slider keyframes, and keep the texture still where the scene is.

Decoding and encoding use PyAV (optional: ``pip install 'adjustable-style[video]'``; its wheels bundle FFmpeg).
The frame rate and frame count are kept, the audio stream is copied, and the output is written atomically.

Flicker: a feed-forward stylizer redraws its texture on every frame, so a small camera move makes the texture
crawl instead of moving with the scene. Smoothing the instance-norm statistics across frames does not help (the
flicker is local texture, not global colour; ``scripts/video_flicker.py`` measures both). What does help is
motion-compensated blending: :class:`FlickerStabiliser` estimates the camera's affine motion between consecutive
input frames, warps its previous output onto the current frame, blends it in where the warped input agrees with
the current input (moving objects and cuts fall back to the per-frame result), and restores the fine-texture
contrast that averaging removes.

Example:
    >>> st = Stylizer.load("default")  # doctest: +SKIP
    >>> stylize_video(st, "clip.mp4", "examples/painting_hokusai_great_wave.jpg", "out/clip_wave.mp4",
    ...               keyframes=[(0, {"relu4_4": 0}), ("4s", {"relu4_4": 1})])  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
import torch.nn.functional as F

from .color import preserve_color as _preserve_color
from .image import MIN_SIDE, _reserve_temp_file, resize, writable_parent
from .layers import parse_weights

if TYPE_CHECKING:
    from .stylizer import ImageLike, Stylizer

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv")
"""Output containers (H.264 video)."""
TimeLike = Union[float, int, str]
"""A keyframe time: a number of seconds, or ``"4s"`` / ``"2.5s"`` (seconds) or ``"96f"`` (a frame number)."""

# Audio codecs the MP4/MOV muxers take as they are; anything else is re-encoded to AAC (MKV takes everything).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac", "mp2"}


class VideoError(ValueError):
    """A video that cannot be read or written; the message is one line naming the file."""


def _av() -> Any:
    try:
        import av  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise VideoError("video needs PyAV; install it with: pip install 'adjustable-style[video]'") from None
    return av


# --------------------------------------------------------------------------------------------------- keyframes


def parse_time(spec: TimeLike) -> tuple[float, str]:
    """A keyframe time → ``(value, unit)``, unit ``"s"`` (seconds) or ``"f"`` (frame number).

    Numbers are seconds; strings need a unit so that ``4`` never means the wrong thing.

    Example:
        >>> parse_time("2.5s"), parse_time("96f"), parse_time(3)
        ((2.5, 's'), (96.0, 'f'), (3.0, 's'))
    """
    if isinstance(spec, bool):
        raise ValueError(f"keyframe time must be seconds or a frame number, got {spec!r}")
    if isinstance(spec, (int, float)):
        value, unit = float(spec), "s"
    elif isinstance(spec, str):
        text = spec.strip().lower()
        unit = text[-1:] if text[-1:] in ("s", "f") else ""
        if not unit:
            raise ValueError(f"keyframe time {spec!r} needs a unit: {text}s (seconds) or {text}f (frame number)")
        try:
            value = float(text[:-1])
        except ValueError:
            raise ValueError(f"malformed keyframe time {spec!r}; write e.g. 4s, 2.5s or 96f") from None
    else:
        raise ValueError(f"keyframe time must be seconds or a string like '4s' / '96f', got {type(spec).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"keyframe time must be >= 0, got {spec!r}")
    if unit == "f" and value != int(value):
        raise ValueError(f"a frame number must be whole, got {spec!r}")
    return value, unit


def parse_keyframes(text: str) -> list[tuple[str, dict[str, float]]]:
    """Parse ``"0s:relu2_2=0,relu4_4=1; 4s:relu2_2=1,relu4_4=0"`` into ``[(time, weights), ...]``.

    Raises:
        ValueError: one line naming the malformed entry.

    Example:
        >>> parse_keyframes("0s:relu2_2=0; 96f:relu2_2=1")
        [('0s', {'relu2_2': 0.0}), ('96f', {'relu2_2': 1.0})]
    """
    out = []
    for part in (p.strip() for p in str(text).split(";")):
        if not part:
            continue
        when, sep, weights = part.partition(":")
        if not sep or not when.strip() or not weights.strip():
            raise ValueError(f"malformed keyframe {part!r}; write TIME:LAYER=VALUE,..., e.g. 4s:relu2_2=0.5")
        parse_time(when.strip())
        out.append((when.strip(), parse_weights(weights)))
    if not out:
        raise ValueError(f"no keyframes in {text!r}; write e.g. '0s:relu2_2=0; 4s:relu2_2=1'")
    return out


class Keyframes:
    """Slider values over time: α interpolated linearly between keyframes, held before the first and after the last.

    Args:
        stylizer: checks the weights (layer names, trained range) and orders α.
        keyframes: ``[(time, weights), ...]``; times as in :func:`parse_time`, strictly increasing.
        fps: the clip's frame rate (turns seconds into frame positions).
        weights: slider values for layers a keyframe does not name (missing: 1).

    Example:
        >>> kf = Keyframes(st, [("0s", {"relu4_4": 0}), ("1s", {"relu4_4": 1})], fps=10)  # doctest: +SKIP
        >>> kf.table(11)[:, -1]  # doctest: +SKIP
        tensor([0.0000, 0.1000, 0.2000, ..., 1.0000])
    """

    def __init__(
        self,
        stylizer: Stylizer,
        keyframes: Sequence[tuple[TimeLike, Mapping[str, float]]] | None,
        fps: float,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        base = dict(weights or {})
        if not keyframes:
            keyframes = [(0, {})]
        positions, rows = [], []
        for when, w in keyframes:
            value, unit = parse_time(when)
            pos = value if unit == "f" else value * float(fps)
            if positions and pos <= positions[-1]:
                raise ValueError(f"keyframe times must increase; {when!r} is not after the keyframe before it")
            positions.append(pos)
            rows.append(stylizer.check_weights({**base, **dict(w)}))
        self.positions = torch.tensor(positions, dtype=torch.float64)  # (K,) in frames
        self.rows = torch.cat(rows).double()  # (K, L)

    def at(self, index: int) -> torch.Tensor:
        """α for frame ``index``: (1, L) float32."""
        p = self.positions
        k = int(torch.searchsorted(p, torch.tensor([float(index)], dtype=torch.float64), right=True)[0])
        if k == 0:
            return self.rows[:1].float()
        if k == len(p):
            return self.rows[-1:].float()
        t = (index - p[k - 1]) / (p[k] - p[k - 1])
        return ((1 - t) * self.rows[k - 1 : k] + t * self.rows[k : k + 1]).float()

    def table(self, n: int) -> torch.Tensor:
        """α for frames 0 … n − 1: (n, L)."""
        return torch.cat([self.at(i) for i in range(n)])


# ----------------------------------------------------------------------------------------------- motion, flicker


def _grey(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _identity(device: torch.device) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)


def warp(image: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear", size: tuple[int, int] | None = None) -> torch.Tensor:
    """Sample ``image`` (1, C, H, W) at ``theta`` · p for every pixel p of the result (normalised coordinates).

    ``theta`` (2, 3) maps the current frame's coordinates to the previous frame's (as :func:`estimate_motion`
    returns), so ``warp(previous, theta)`` lines the previous frame up with the current one. ``size``: the
    result's (H, W) (default: the image's).
    """
    grid = F.affine_grid(theta[None].to(image), (1, image.shape[1], *(size or image.shape[-2:])), align_corners=False)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)


def _coarse_shift(prev: torch.Tensor, cur: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Best whole-pixel translation (within ``radius`` px) on the coarsest level: a start Gauss–Newton cannot miss."""
    h, w = prev.shape[-2:]
    r = min(radius, h // 4, w // 4)
    best, start = float("inf"), _identity(prev.device)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # current(p) ≈ previous(p + d): compare the overlapping windows
            a = prev[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            b = cur[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
            err = float((a - b).abs().mean())
            if err < best:
                best = err
                start = torch.tensor([[1.0, 0.0, 2 * dx / w], [0.0, 1.0, 2 * dy / h]], device=prev.device)
    return start


def estimate_motion(previous: torch.Tensor, current: torch.Tensor, max_side: int = 320, iters: int = 12) -> torch.Tensor:
    """The camera's affine motion between two frames: θ (2, 3) with current(p) ≈ previous(θ · p).

    Coarse-to-fine Gauss–Newton on the grey images (an image pyramid from ~24 px up to ``max_side``), with
    Huber-like weights so that moving objects pull less than the background. Coordinates are normalised to
    [-1, 1] (``F.affine_grid`` convention), so θ holds at any resolution.

    Args:
        previous, current: (1, 3, H, W) in [0, 1].
        max_side: finest level's longer side (finer adds time, not accuracy, at sub-pixel motion).
        iters: Gauss–Newton steps per level at most.

    Example:
        >>> x = torch.rand(1, 3, 64, 64)
        >>> estimate_motion(x, x).round(decimals=3).abs()
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    prev, cur = _grey(previous.float()), _grey(current.float())
    scale = max_side / max(prev.shape[-2:])
    if scale < 1:
        size = (max(1, round(prev.shape[-2] * scale)), max(1, round(prev.shape[-1] * scale)))
        prev, cur = resize(prev.expand(-1, 3, -1, -1), size)[:, :1], resize(cur.expand(-1, 3, -1, -1), size)[:, :1]
    pyramid = [(prev, cur)]
    while min(pyramid[-1][0].shape[-2:]) >= 32:
        pyramid.append((F.avg_pool2d(pyramid[-1][0], 2), F.avg_pool2d(pyramid[-1][1], 2)))
    theta = _coarse_shift(*pyramid[-1])
    for p, c in reversed(pyramid):
        h, w = p.shape[-2:]
        gx, gy = torch.zeros_like(p), torch.zeros_like(p)
        gx[..., 1:-1] = (p[..., 2:] - p[..., :-2]) * (w / 4)  # d/dx in normalised units: pixels · w/2, central /2
        gy[..., 1:-1, :] = (p[..., 2:, :] - p[..., :-2, :]) * (h / 4)
        stack = torch.cat([p, gx, gy], 1)  # (1, 3, h, w): image and its gradient, warped together
        base = F.affine_grid(_identity(p.device)[None], (1, 1, h, w), align_corners=False)[0]  # (h, w, 2)
        x, y = base[..., 0].reshape(-1), base[..., 1].reshape(-1)
        limit = torch.tensor([1 - 4 / w, 1 - 4 / h], device=p.device)  # stay clear of the clamped border
        for _ in range(iters):
            grid = F.affine_grid(theta[None], (1, 1, h, w), align_corners=False)
            s = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)[0].reshape(3, -1)
            r = s[0] - c.reshape(-1)
            ok = (grid[0].abs() < limit).all(-1).reshape(-1)
            weight = ok / torch.clamp(r.abs() / 0.05, min=1)  # robust (Huber-like); 0 outside
            jac = torch.stack([s[1] * x, s[1] * y, s[1], s[2] * x, s[2] * y, s[2]])  # (6, n): ∂ warped / ∂ θ
            wj = jac * weight
            step = torch.linalg.solve(wj @ jac.T + 1e-6 * torch.eye(6, device=p.device), -(wj @ r))
            theta = theta + step.view(2, 3)
            if step.abs().max() < 1e-4:  # 1e-4 of the half-width: under 0.05 px at 854 px
                break
    return theta


def warping_error(frames: torch.Tensor, motions: Sequence[torch.Tensor], margin: int = 4) -> float:
    """Mean squared difference between each frame and the previous one warped onto it (lower = steadier).

    Pixels whose source falls outside the previous frame, or within ``margin`` px of any border, are left out.

    Args:
        frames: (N, 3, H, W) in [0, 1], N ≥ 2.
        motions: N − 1 matrices θ (2, 3); ``motions[t - 1]`` maps frame t's coordinates to frame t − 1's.

    Example:
        >>> clip = torch.rand(1, 3, 32, 32).expand(3, -1, -1, -1)
        >>> warping_error(clip, [torch.eye(2, 3)] * 2)
        0.0
    """
    if frames.ndim != 4 or frames.shape[0] < 2 or len(motions) != frames.shape[0] - 1:
        raise ValueError(f"need frames (N >= 2, 3, H, W) and N - 1 motions, got {tuple(frames.shape)} and {len(motions)}")
    h, w = frames.shape[-2:]
    errs = []
    for t in range(1, frames.shape[0]):
        grid = F.affine_grid(motions[t - 1][None].to(frames), (1, 3, h, w), align_corners=False)
        warped = F.grid_sample(frames[t - 1 : t], grid, mode="bilinear", align_corners=False)
        mask = (grid[..., 0].abs() <= 1 - 2 * margin / w) & (grid[..., 1].abs() <= 1 - 2 * margin / h)
        mask[:, :margin] = mask[:, -margin:] = mask[:, :, :margin] = mask[:, :, -margin:] = False
        m = mask[:, None].float()
        errs.append(float(((warped - frames[t : t + 1]) ** 2 * m).sum() / (3 * m.sum()).clamp_min(1)))
    return sum(errs) / len(errs)


def pan_zoom_clip(
    image: torch.Tensor, n_frames: int, size: tuple[int, int], pan: tuple[float, float] = (0.6, 0.2), zoom: float = 1.25
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A test clip with exactly known motion: a camera panning across and zooming into a photo.

    Args:
        image: the photo (1, 3, H, W) in [0, 1]; it should be larger than ``size`` so the camera stays inside.
        n_frames: number of frames (≥ 2).
        size: (H, W) of the frames.
        pan: total camera travel over the clip (x, y) in units of the photo's half-width / half-height.
        zoom: total magnification over the clip (per-frame zoom is its (n − 1)-th root).

    Returns:
        frames (N, 3, H, W) and the N − 1 motions θ (2, 3), ``motions[t - 1]`` mapping frame t's normalised
        coordinates to frame t − 1's (what :func:`estimate_motion` estimates and :func:`warping_error` takes).

    Example:
        >>> frames, motions = pan_zoom_clip(torch.rand(1, 3, 96, 128), 3, (32, 48))
        >>> frames.shape, len(motions)
        (torch.Size([3, 3, 32, 48]), 2)
    """
    h, w = size
    ih, iw = image.shape[-2:]
    thetas = []
    for t in range(n_frames):
        f = t / max(n_frames - 1, 1)
        z = zoom**f
        sx, sy = w / iw / z, h / ih / z  # the frame's half-extent in the photo's normalised units
        cx = (f - 0.5) * pan[0] * (1 - sx)
        cy = (f - 0.5) * pan[1] * (1 - sy)
        thetas.append(torch.tensor([[sx, 0.0, cx], [0.0, sy, cy]]))
    frames = torch.cat([warp(image, th, "bicubic", size).clamp(0, 1) for th in thetas])
    motions = []
    for prev, cur in zip(thetas[:-1], thetas[1:]):
        inv = torch.linalg.inv(prev[:, :2])
        motions.append(torch.cat([inv @ cur[:, :2], (inv @ (cur[:, 2] - prev[:, 2]))[:, None]], 1))
    return frames, motions


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="reflect"), k, 1)


class FlickerStabiliser:
    """Motion-compensated blending of stylized frames; feed frames in order, one call per frame.

    ``out_t = y_t + blend · m · (warp(out_{t−1}) − y_t)``: ``y_t`` the per-frame stylization, the warp the camera
    motion estimated on the *input* frames (:func:`estimate_motion`), ``m`` = exp(−(e / tolerance)²) with ``e`` the
    local difference between the warped previous input and the current input (0 where the motion does not
    explain the picture: moving objects, cuts, new content at the borders). Averaging uncorrelated textures
    lowers their contrast, so the result's detail band (image minus its ``detail``-px box blur) is rescaled per
    channel to the per-frame result's standard deviation.

    Args:
        blend: weight of the motion-compensated past, in [0, 1); higher is steadier and softer.
        tolerance: input difference (in [0, 1] units) at which blending falls to 1/e.
        detail: box size (px, odd) that separates the detail band.

    Example:
        >>> stab = FlickerStabiliser()
        >>> frames = torch.rand(2, 3, 32, 32)
        >>> outs = [stab(f[None], f[None]) for f in frames]
        >>> outs[1].shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, blend: float = 0.35, tolerance: float = 0.03, detail: int = 9) -> None:
        if not 0.0 <= blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {blend}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        if detail < 3 or detail % 2 == 0:
            raise ValueError(f"detail must be an odd number of pixels >= 3, got {detail}")
        self.blend, self.tolerance, self.detail = float(blend), float(tolerance), int(detail)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (start of a new shot)."""
        self._frame: torch.Tensor | None = None
        self._out: torch.Tensor | None = None

    def __call__(self, frame: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
        """Input frame and its per-frame stylization, each (1, 3, H, W) in [0, 1] → the stabilised frame."""
        out = styled
        if self._frame is not None and self._out is not None and self._frame.shape == frame.shape and self.blend > 0:
            theta = estimate_motion(self._frame, frame)
            grid = F.affine_grid(theta[None].to(frame), (1, 3, *frame.shape[-2:]), align_corners=False)
            inside = ((grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1))[:, None].to(frame)
            past_in = F.grid_sample(self._frame, grid, mode="bilinear", padding_mode="border", align_corners=False)
            past_out = F.grid_sample(self._out, grid, mode="bicubic", padding_mode="border", align_corners=False)
            diff = F.avg_pool2d((past_in - frame).abs().mean(1, keepdim=True), 5, 1, 2, count_include_pad=False)
            m = inside * torch.exp(-((diff / self.tolerance) ** 2))
            mixed = styled + self.blend * m * (past_out.clamp(0, 1) - styled)
            # Restore the detail contrast the average removed (the per-frame frame's, per channel).
            low_mixed, low_styled = _box(mixed, self.detail), _box(styled, self.detail)
            gain = (styled - low_styled).std((2, 3), keepdim=True) / (mixed - low_mixed).std((2, 3), keepdim=True).clamp_min(1e-6)
            out = (low_mixed + (mixed - low_mixed) * gain).clamp(0, 1)
        self._frame, self._out = frame, out
        return out


# --------------------------------------------------------------------------------------------------- stylizing


def stylize_frames(
    stylizer: Stylizer,
    frames: Iterable[torch.Tensor],
    style: ImageLike,
    alphas: Keyframes | torch.Tensor,
    strength: float = 1.0,
    preserve_color: bool = False,
    stabiliser: FlickerStabiliser | None = None,
) -> Iterator[torch.Tensor]:
    """Stylize frames in order, one at a time: yields (1, 3, H, W) float32 CPU tensors in [0, 1].

    Args:
        stylizer: the model.
        frames: (1, 3, H, W) tensors in [0, 1], all the same size.
        style: the style image; embedded once for the whole clip.
        alphas: a :class:`Keyframes` schedule, or a table (N, L) with a row per frame (last row held).
        strength: style strength in [0, 1]; below 1 the embedding is mixed with the *first* frame's, once, so the
            style does not wander as the content changes.
        preserve_color: keep each frame's colours.
        stabiliser: a :class:`FlickerStabiliser` (None: per-frame).
    """
    embedding = None
    for i, frame in enumerate(frames):
        x = frame.to(stylizer.device)
        if embedding is None:
            # The Stylizer's own helpers, so the ONNX backend, autocast and identity interpolation act as for images.
            embedding = stylizer._embedding(frame, style, float(strength))
        a = alphas.at(i) if isinstance(alphas, Keyframes) else alphas[min(i, alphas.shape[0] - 1)][None]
        with torch.inference_mode(), stylizer._autocast():
            y = stylizer._net(x, embedding, a.to(stylizer.device))
            if preserve_color:
                y = _preserve_color(x, y)
        y = y.float().cpu()
        yield stabiliser(frame, y) if stabiliser is not None else y


@dataclass
class VideoInfo:
    """What :func:`probe` finds: size, frame rate, frame count (from the container; may be 0 when unknown), audio."""

    width: int
    height: int
    fps: Fraction
    frames: int
    has_audio: bool


def _open_input(path: str | os.PathLike[str]) -> Any:
    av = _av()
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video '{p}' not found; check the path")
    if p.is_dir():
        raise VideoError(f"video '{p}' is a folder; give a video file")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoError(f"'{p}' is not a video PyAV can read ({' '.join(str(e).split())[:120]})") from None
    fmt = container.format.name
    if not container.streams.video or fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        raise VideoError(f"'{p}' holds no video stream ({fmt}); for a still image use adjustable-style stylize")
    return container


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's header: :class:`VideoInfo`. Raises :class:`VideoError` for a missing or unreadable file."""
    with _open_input(path) as container:
        s = container.streams.video[0]
        fps = s.average_rate or s.guessed_rate or s.base_rate
        if not fps:
            raise VideoError(f"'{path}' has no frame rate in its header; re-encode it with a constant frame rate")
        if not (s.codec_context.width and s.codec_context.height):
            raise VideoError(f"'{path}' has no video frames (its video stream has no picture size)")
        return VideoInfo(s.codec_context.width, s.codec_context.height, Fraction(fps), int(s.frames or 0),
                         bool(container.streams.audio))  # fmt: skip


def output_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """(H, W) of the stylized frames: longer side at most ``max_size``, both even (H.264's 4:2:0 needs it).

    Example:
        >>> output_size(1080, 1920, 854)
        (480, 854)
    """
    scale = min(1.0, max_size / max(height, width)) if max_size else 1.0
    h, w = max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))
    return h - h % 2, w - w % 2


def read_frames(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
    """Decode a video's frames in order as (1, 3, H, W) float32 in [0, 1], resized to ``size`` (H, W) if given."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                x = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
                yield resize(x, size) if size is not None else x
        except _av().error.FFmpegError as e:
            raise VideoError(f"cannot decode '{path}': {' '.join(str(e).split())[:120]}") from None


def check_output(path: str | os.PathLike[str], source: str | os.PathLike[str] | None = None) -> Path:
    """Fail before any work if ``path`` cannot be written as a video (extension, folder, same file as the input)."""
    p = Path(path)
    same = source is not None and p.exists() and Path(source).exists() and p.resolve() == Path(source).resolve()
    checks = (
        (p.suffix.lower() in VIDEO_EXTENSIONS, f"output '{p}' must end in one of {', '.join(VIDEO_EXTENSIONS)}"),
        (not p.is_dir(), f"output '{p}' is a folder; give a file name such as {p / 'out.mp4'}"),
        (writable_parent(p) is not None, f"cannot write '{p}': {p.parent} is not a writable folder; choose another output path"),
        (not same, f"output '{p}' is the input video; choose another output path"),
    )
    for ok, message in checks:
        if not ok:
            raise VideoError(message)
    return p


class _VideoWriter:
    """H.264 into a temporary file beside the target; :meth:`commit` moves it into place, :meth:`abort` deletes it."""

    def __init__(self, target: Path, size: tuple[int, int], fps: Fraction, audio_from: Path | None, crf: int) -> None:
        av = _av()
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp, fd = _reserve_temp_file(target.parent, target.name, target.suffix.lower())
        os.close(fd)
        self.n = 0
        self.audio_in = None
        try:
            self.out = av.open(str(self.tmp), mode="w")
            self.video = self.out.add_stream("libx264", rate=fps)
            self.video.height, self.video.width = size
            self.video.pix_fmt = "yuv420p"
            # Frame index = pts in the encoder's time base: a constant frame rate, every frame kept. (Setting the
            # stream's time base instead made libx264 emit pts < dts after ~40 frames, which the muxer refuses.)
            self.video.codec_context.time_base = 1 / fps
            self.video.options = {"crf": str(crf)}
            if audio_from is not None:
                self._add_audio(audio_from)
        except BaseException:
            self.abort()
            raise

    def _add_audio(self, source: Path) -> None:
        self.audio_in = _av().open(str(source))
        a = self.audio_in.streams.audio[0]
        self.copy = self.target.suffix.lower() == ".mkv" or a.codec_context.name in _MP4_AUDIO
        if self.copy:
            self.audio = self.out.add_stream_from_template(a)
        else:
            self.audio = self.out.add_stream("aac", rate=a.codec_context.sample_rate or 48000)

    def write(self, image: torch.Tensor) -> None:
        av = _av()
        rgb = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.n
        frame.time_base = self.video.codec_context.time_base
        self.out.mux(self.video.encode(frame))
        self.n += 1

    def commit(self) -> None:
        try:
            self.out.mux(self.video.encode())  # flush the encoder
            if self.audio_in is not None:
                a = self.audio_in.streams.audio[0]
                if self.copy:
                    for packet in self.audio_in.demux(a):
                        if packet.dts is not None:
                            packet.stream = self.audio
                            self.out.mux(packet)
                else:
                    for frame in self.audio_in.decode(a):
                        frame.pts = None
                        self.out.mux(self.audio.encode(frame))
                    self.out.mux(self.audio.encode())
                self.audio_in.close()
            self.out.close()
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for c in (getattr(self, "out", None), self.audio_in):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001 - already failing; the temporary file goes below
                pass
        self.tmp.unlink(missing_ok=True)


def write_video(
    frames: Iterable[torch.Tensor], path: str | os.PathLike[str], fps: float | Fraction, crf: int = 18
) -> Path:
    """Encode frames ((1, 3, H, W) or (3, H, W) in [0, 1], even H and W) as H.264 at ``fps``, atomically."""
    target = check_output(path)
    writer = None
    try:
        for x in frames:
            x = x if x.ndim == 4 else x[None]
            if writer is None:
                writer = _VideoWriter(target, tuple(x.shape[-2:]), Fraction(fps).limit_denominator(1001 * 1000), None, crf)
            writer.write(x)
        if writer is None:
            raise VideoError(f"no frames to write to '{target}'")
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return target


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote: the file, its frame count, rate and size, each frame's α and the time taken."""

    path: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    alphas: torch.Tensor
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """Processing speed (decode, stylize, stabilise, encode)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def stylize_video(
    stylizer: Stylizer,
    video: str | os.PathLike[str],
    style: ImageLike,
    output: str | os.PathLike[str],
    weights: Mapping[str, float] | None = None,
    keyframes: str | Sequence[tuple[TimeLike, Mapping[str, float]]] | None = None,
    strength: float = 1.0,
    max_size: int | None = 854,
    preserve_color: bool = False,
    stabilise: bool | FlickerStabiliser = True,
    progress: bool = True,
    crf: int = 18,
) -> VideoResult:
    """Stylize a video file into ``output`` (.mp4, .mov or .mkv, H.264), same frame rate, frame count and audio.

    Args:
        stylizer: the model.
        video: the input clip.
        style: the style image.
        output: written atomically: nothing appears there unless the whole clip succeeded.
        weights: slider values (missing layers: 1); keyframes override them where they name a layer.
        keyframes: ``[(time, weights), ...]`` or the command line's ``"0s:relu2_2=0; 4s:relu2_2=1"``; times in
            seconds (numbers, ``"4s"``) or frame numbers (``"96f"``); α is interpolated linearly between them.
        strength: style strength in [0, 1] (the first frame's embedding is mixed in).
        max_size: longer side of the stylized frames (854 = 480p for 16:9); None keeps the input size.
        preserve_color: keep the input's colours.
        stabilise: reduce flicker with a :class:`FlickerStabiliser` (True: the default one; False: per-frame).
        progress: show a progress bar (frames per second) on stderr.
        crf: H.264 quality (lower is better and larger; 18 is visually lossless).

    Returns:
        A :class:`VideoResult` with each frame's α (N, L) in ``stylizer.schema.keys`` order.

    Raises:
        VideoError: missing, unreadable or empty input, unwritable output (one line; no partial file is left).
        ValueError: malformed keyframes or weights.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    kf = parse_keyframes(keyframes) if isinstance(keyframes, str) else keyframes
    target = check_output(output, video)
    info = probe(video)
    schedule = Keyframes(stylizer, kf, float(info.fps), weights)
    size = output_size(info.height, info.width, max_size)
    stabiliser = FlickerStabiliser() if stabilise is True else (stabilise or None)
    if stabiliser is not None:
        stabiliser.reset()
    start = time.perf_counter()
    writer = _VideoWriter(target, size, info.fps, Path(video) if info.has_audio else None, crf)
    bar = tqdm(total=info.frames or None, unit="frame", desc=Path(video).name, disable=not progress, leave=False)
    try:
        outputs = stylize_frames(stylizer, read_frames(video, size), style, schedule, strength, preserve_color, stabiliser)
        for y in outputs:
            writer.write(y)
            bar.update(1)
        if writer.n == 0:
            raise VideoError(f"'{video}' has no video frames")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return VideoResult(target, writer.n, info.fps, size, schedule.table(writer.n), time.perf_counter() - start)
