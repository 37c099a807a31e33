"""Flicker: camera motion between frames, the warping error that measures flicker, and a stabiliser that reduces it.

A feed-forward stylizer redraws its texture on every frame, so a small camera move makes the texture crawl
instead of moving with the scene. :func:`estimate_motion` fits the camera's affine motion between two input frames;
:func:`warping_error` warps each frame onto the next with known motions and measures what differs;
:func:`pan_zoom_clip` makes test clips whose motion is known exactly; :class:`FlickerStabiliser` blends in the
motion-compensated previous output where the motion is trusted (dense optical flow from :mod:`adjustable_style.flow`
when OpenCV is installed, else the affine camera motion), and :func:`restore_spectrum` gives back the fine texture
that blending and resampling remove. Smoothing the instance-norm statistics across frames does not help (the flicker
is local texture, not global colour; ``scripts/research/video_flicker.py`` measures both).
:mod:`adjustable_style.video_files` does the decoding and encoding.

Example:
    >>> frames, motions = pan_zoom_clip(torch.rand(1, 3, 96, 128), 3, (32, 48))
    >>> warping_error(frames, motions) < 0.01
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .checks import InputError, check_int
from .flow import FLOW_HINT, consistency_mask, flow_warp, has_flow, match_exposure, optical_flow
from .image import resize


def _grey(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _identity(device: torch.device) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)


def warp(
    image: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear", size: tuple[int, int] | None = None
) -> torch.Tensor:
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


def estimate_motion(
    previous: torch.Tensor, current: torch.Tensor, max_side: int = 320, iters: int = 12
) -> torch.Tensor:
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
            s = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)[0].reshape(
                3, -1
            )
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
        raise ValueError(
            f"need frames (N >= 2, 3, H, W) and N - 1 motions, got {tuple(frames.shape)} and {len(motions)}"
        )
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
    x = F.pad(x, (k // 2,) * 4, mode="reflect")
    return F.avg_pool2d(F.avg_pool2d(x, (k, 1), 1), (1, k), 1)  # separable: O(k), not O(k²), per pixel


def _power(spectrum: torch.Tensor, smooth: int) -> torch.Tensor:
    """Power of an rfft2 ``spectrum``, averaged over ``smooth`` × ``smooth`` neighbouring frequencies."""
    p = torch.fft.fftshift(spectrum.abs() ** 2, dim=-2)  # rows run through 0 mid-array: the average is local
    r = smooth // 2
    p = F.avg_pool2d(p, (smooth, 1), 1, (r, 0), count_include_pad=False)  # separable, like _box
    p = F.avg_pool2d(p, (1, smooth), 1, (0, r), count_include_pad=False)
    return torch.fft.ifftshift(p, dim=-2)


def restore_spectrum(image: torch.Tensor, reference: torch.Tensor, detail: int = 17, smooth: int = 7) -> torch.Tensor:
    """Give ``image``'s detail the power spectrum of ``reference``'s: a zero-phase filter, per channel.

    Both detail layers (the image minus its ``detail``-px box blur) go to the Fourier domain; each frequency of
    ``image``'s is scaled by √(P_reference / P_image), both power spectra averaged over ``smooth`` × ``smooth``
    neighbouring frequencies (so the gain is a smooth filter, not a copy of ``reference``'s phase), at most 4×.
    This undoes what interpolation and averaging do to texture, frequency by frequency (a ½-px bicubic shift
    removes the finest, near-Nyquist texture entirely, which a per-band gain cannot single out).

    Args:
        image, reference: (B, C, H, W), the same shape.
        detail: box size (px, odd) below which frequencies are restored.
        smooth: width (in frequency bins, odd) of the spectral average.

    Returns:
        (B, C, H, W), not clamped.

    Example:
        >>> y = torch.rand(1, 3, 32, 32)
        >>> torch.allclose(restore_spectrum(y, y), y, atol=1e-5)
        True
    """
    low = _box(image, detail)
    fine = image - low
    spectrum = torch.fft.rfft2(fine)  # once: it gives the power and is the thing filtered
    wanted = _power(torch.fft.rfft2(reference - _box(reference, detail)), smooth)
    gain = (wanted / _power(spectrum, smooth).clamp_min(1e-12)).sqrt()
    return low + torch.fft.irfft2(spectrum * gain.clamp(max=4.0), s=fine.shape[-2:])


DEFAULT_BLEND = 0.3
"""The stabiliser's default weight of the motion-compensated past output."""

DEFAULT_STEADY_INPUT = 0.7
"""The stabiliser's default weight of the motion-compensated past input in what T sees
(:meth:`FlickerStabiliser.steady`)."""


class FlickerStabiliser:
    """Motion-compensated blending of the input T sees and of stylized frames; feed frames in order.

    Before stylizing, :meth:`steady` gives T a temporally smoothed input, ``x̃_t = x_t + steady_input · m ·
    (C(warp(x̃_{t−1})) − x_t)``: sensor noise, which T turns into texture that changes every frame, averages out
    along the motion, without averaging stylized textures (which softens them). After stylizing, one call per frame
    blends the outputs:

    ``out_t = R(y_t + blend · m · (C(warp(out_{t−1})) − y_t))``: ``y_t`` the per-frame stylization; the warp follows
    the motion measured on the *input* frames: dense optical flow (:func:`~adjustable_style.flow.optical_flow`, needs
    OpenCV) or, without it, the camera's global affine motion (:func:`estimate_motion`). ``C`` matches the warped
    past's colour to ``y_t`` per channel (:func:`~adjustable_style.flow.match_exposure`), so exposure and white-balance
    drift do not pull the past in. ``m`` = trusted · exp(−(e / tolerance)²): trusted where the forward and backward
    flows agree (:func:`~adjustable_style.flow.consistency_mask`: occlusions and wrong flow fail) and the source lies
    inside the previous frame, ``e`` the local difference between the warped previous input and the current input
    after exposure matching (moving objects the motion does not explain, new content). When ``m`` averages below
    ``cut`` the frame starts a new shot: the stabiliser resets and the frame passes through as it is. Resampling and
    averaging uncorrelated textures both remove fine detail, so ``R`` (:func:`restore_spectrum`) gives the result's
    detail (below ``detail`` px) the per-frame result's power spectrum, per channel.
    ``scripts/research/video_flicker.py`` and ``scripts/research/video_footage.py`` measure the blend weights.
    The motion and ``m`` are measured once per frame and serve both steps.

    Args:
        blend: weight of the motion-compensated past output, in [0, 1); higher is steadier and softer.
        steady_input: weight of the motion-compensated past input in what T sees (:meth:`steady`), in [0, 1);
            0 gives T each frame as it is.
        tolerance: input difference (in [0, 1] units) at which blending falls to 1/e.
        detail: box size (px, odd) below which the detail spectrum is restored.
        motion: ``"flow"`` (dense, OpenCV), ``"affine"`` (global camera motion) or ``"auto"`` (flow when OpenCV is
            installed, else affine).
        cut: mean blending weight below which a frame counts as a scene cut, in [0, 1).

    Example:
        >>> stab = FlickerStabiliser()
        >>> frames = torch.rand(2, 3, 32, 32)
        >>> outs = [stab(f[None], stab.steady(f[None])) for f in frames]  # a model would stylize steady()'s output
        >>> outs[1].shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self,
        blend: float = DEFAULT_BLEND,
        steady_input: float = DEFAULT_STEADY_INPUT,
        tolerance: float = 0.03,
        detail: int = 17,
        motion: str = "auto",
        cut: float = 0.2,
    ) -> None:
        if not 0.0 <= blend < 1.0:
            raise InputError(f"blend must be in [0, 1), got {blend}")
        if not 0.0 <= steady_input < 1.0:
            raise InputError(f"steady_input must be in [0, 1), got {steady_input}")
        if not tolerance > 0:
            raise InputError(f"tolerance must be > 0, got {tolerance}")
        if check_int("detail", detail, low=3) % 2 == 0:
            raise InputError(f"detail must be an odd number of pixels >= 3, got {detail}")
        if motion not in ("auto", "flow", "affine"):
            raise InputError(f"motion must be 'auto', 'flow' or 'affine', got {motion!r}")
        if not 0.0 <= cut < 1.0:
            raise InputError(f"cut must be in [0, 1), got {cut}")
        if motion == "flow" and not has_flow():
            raise InputError(FLOW_HINT)
        self.motion = ("flow" if has_flow() else "affine") if motion == "auto" else motion
        self.blend, self.tolerance, self.detail, self.cut = float(blend), float(tolerance), int(detail), float(cut)
        self.steady_input = float(steady_input)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (start of a new clip)."""
        self._frame: torch.Tensor | None = None
        self._out: torch.Tensor | None = None
        self._steady: torch.Tensor | None = None
        self._motion: tuple[torch.Tensor, Callable[..., torch.Tensor], torch.Tensor] | None = None
        self.index = -1
        self.cuts: list[int] = []
        """Frames (counted from 0 since the last :meth:`reset`) found to start a new shot."""

    def _warper(self, frame: torch.Tensor) -> tuple[Callable[..., torch.Tensor], torch.Tensor]:
        """A function lining an image of the previous frame up with ``frame`` (its second argument the resampling
        mode), and where that can be trusted (1, 1, H, W)."""
        assert self._frame is not None
        if self.motion == "flow" and min(frame.shape[-2:]) >= 16:  # DIS needs 12 px or more; tiny frames: affine
            back = optical_flow(self._frame, frame)
            trusted = consistency_mask(back, optical_flow(frame, self._frame))
            return lambda x, mode="bilinear": flow_warp(x, back, mode), trusted.to(frame)
        theta = estimate_motion(self._frame, frame)
        grid = F.affine_grid(theta[None].to(frame), (1, 3, *frame.shape[-2:]), align_corners=False)
        inside = ((grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1))[:, None].to(frame)
        return (
            lambda x, mode="bilinear": F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
        ), inside

    def _measure(self, frame: torch.Tensor) -> tuple[torch.Tensor, Callable[..., torch.Tensor], torch.Tensor] | None:
        """For a frame that follows the previous one (same size): the frame, the warp from the previous one and the
        blending weight ``m`` (1, 1, H, W), once per frame (:meth:`steady` and the output blend share it); None
        for the first frame of a clip."""
        if self._motion is not None and self._motion[0] is frame:
            return self._motion
        if self._frame is None or self._frame.shape != frame.shape:
            return None
        warp, trusted = self._warper(frame)
        past_in = match_exposure(warp(self._frame), frame, trusted)
        diff = F.avg_pool2d((past_in - frame).abs().mean(1, keepdim=True), 5, 1, 2, count_include_pad=False)
        self._motion = frame, warp, trusted * torch.exp(-((diff / self.tolerance) ** 2))
        return self._motion

    def steady(self, frame: torch.Tensor) -> torch.Tensor:
        """What T should see for input ``frame`` (1, 3, H, W) in [0, 1]: the frame with the motion-compensated,
        exposure-matched previous steady input blended in where the motion is trusted (class docstring). Call it
        before stylizing ``frame``, then call the stabiliser with ``frame`` and that stylization."""
        measured = self._measure(frame) if self.steady_input > 0 else None
        out = frame
        if measured is not None and self._steady is not None and float(measured[2].mean()) >= self.cut:
            _, warp, m = measured
            past = match_exposure(warp(self._steady), frame, m)
            out = (frame + self.steady_input * m * (past - frame)).clamp(0, 1)
        self._steady = out
        return out

    def combine(self, styled: torch.Tensor, past_out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The blend and restoration step: ``R(y + blend · m · (past − y))`` with ``m`` = ``weight`` (1, 1, H, W)
        and ``past`` the warped, colour-matched previous output; not clamped. Variants override this."""
        return restore_spectrum(styled + self.blend * weight * (past_out - styled), styled, self.detail)

    def __call__(self, frame: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
        """Input frame and its stylization (of :meth:`steady`'s output, or of the frame itself), each (1, 3, H, W)
        in [0, 1] → the stabilised frame."""
        self.index += 1
        out = styled
        measured = self._measure(frame) if self._out is not None and self.blend > 0 else None
        if measured is not None:
            _, warp, m = measured
            if float(m.mean()) < self.cut:
                self.cuts.append(self.index)
            else:
                past_out = match_exposure(warp(self._out, "bicubic").clamp(0, 1), styled, m)
                out = self.combine(styled, past_out, m).clamp(0, 1)
        self._frame, self._out, self._motion = frame, out, None
        return out
