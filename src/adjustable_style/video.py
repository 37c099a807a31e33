"""Stylizing video: a clip frame by frame, with slider keyframes, keeping the texture still where the scene is.

Reading and writing the files is :mod:`adjustable_style.video_files` (PyAV); flicker is reduced by
:class:`~adjustable_style.flicker.FlickerStabiliser` (dense optical flow from :mod:`adjustable_style.flow` when OpenCV
is installed), and :func:`stylize_video` stabilises by default.

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
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from .checks import InputError, check_number
from .color import preserve_color as _preserve_color
from .flicker import FlickerStabiliser
from .layers import parse_weights
from .video_files import VideoError, check_output, output_size, probe, read_frames, write_video

if TYPE_CHECKING:
    from .stylizer import ImageLike, Stylizer

TimeLike = float | int | str
"""A keyframe time: a number of seconds, or ``"4s"`` / ``"2.5s"`` (seconds) or ``"96f"`` (a frame number)."""

# --------------------------------------------------------------------------------------------------- keyframes


def parse_time(spec: TimeLike) -> tuple[float, str]:
    """A keyframe time → ``(value, unit)``, unit ``"s"`` (seconds) or ``"f"`` (frame number).

    Numbers are seconds; strings need a unit so that ``4`` never means the wrong thing.

    Example:
        >>> parse_time("2.5s"), parse_time("96f"), parse_time(3)
        ((2.5, 's'), (96.0, 'f'), (3.0, 's'))
    """
    if isinstance(spec, bool):
        raise InputError(f"keyframe time must be seconds or a frame number, got {spec!r}")
    if isinstance(spec, (int, float)):
        value, unit = float(spec), "s"
    elif isinstance(spec, str):
        text = spec.strip().lower()
        unit = text[-1:] if text[-1:] in ("s", "f") else ""
        if not unit:
            raise InputError(f"keyframe time {spec!r} needs a unit: {text}s (seconds) or {text}f (frame number)")
        try:
            value = float(text[:-1])
        except ValueError:
            raise InputError(f"malformed keyframe time {spec!r}; write e.g. 4s, 2.5s or 96f") from None
    else:
        raise InputError(f"keyframe time must be seconds or a string like '4s' / '96f', got {type(spec).__name__}")
    if not math.isfinite(value) or value < 0:
        raise InputError(f"keyframe time must be >= 0, got {spec!r}")
    if unit == "f" and value != int(value):
        raise InputError(f"a frame number must be whole, got {spec!r}")
    return value, unit


def parse_keyframes(text: str) -> list[tuple[str, dict[str, float]]]:
    """Parse ``"0s:relu2_2=0,relu4_4=1; 4s:relu2_2=1,relu4_4=0"`` into ``[(time, weights), ...]``.

    Raises:
        InputError: one line naming the malformed entry.

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
            raise InputError(f"malformed keyframe {part!r}; write TIME:LAYER=VALUE,..., e.g. 4s:relu2_2=0.5")
        parse_time(when.strip())
        out.append((when.strip(), parse_weights(weights)))
    if not out:
        raise InputError(f"no keyframes in {text!r}; write e.g. '0s:relu2_2=0; 4s:relu2_2=1'")
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
                raise InputError(f"keyframe times must increase; {when!r} is not after the keyframe before it")
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
            # The Stylizer's own path, so the ONNX backend, autocast, the memory limit and identity interpolation
            # act as for images.
            embedding = stylizer.embedding(frame, style, float(strength))
        a = alphas.at(i) if isinstance(alphas, Keyframes) else alphas[min(i, alphas.shape[0] - 1)][None]
        steady = stabiliser.steady(frame).to(stylizer.device) if stabiliser is not None else x
        y = stylizer.run(steady, embedding, a, style)
        if preserve_color:
            y = _preserve_color(x, y)
        y = y.float().cpu()
        yield stabiliser(frame, y) if stabiliser is not None else y


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
        InputError: malformed keyframes or weights.
    """
    check_number("strength", strength, 0.0, 1.0)
    kf = parse_keyframes(keyframes) if isinstance(keyframes, str) else keyframes
    target = check_output(output, video)
    info = probe(video)
    schedule = Keyframes(stylizer, kf, float(info.fps), weights)
    size = output_size(info.height, info.width, max_size)
    stabiliser = FlickerStabiliser() if stabilise is True else (stabilise or None)
    if stabiliser is not None:
        stabiliser.reset()
    start = time.perf_counter()
    n = 0

    def counted(frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        nonlocal n
        with tqdm(
            total=info.frames or None, unit="frame", desc=Path(video).name, disable=not progress, leave=False
        ) as bar:
            for y in frames:
                n += 1
                bar.update(1)
                yield y
        if n == 0:
            raise VideoError(f"'{video}' has no video frames")

    outputs = stylize_frames(stylizer, read_frames(video, size), style, schedule, strength, preserve_color, stabiliser)
    write_video(counted(outputs), target, info.fps, crf, audio_from=Path(video) if info.has_audio else None)
    return VideoResult(target, n, info.fps, size, schedule.table(n), time.perf_counter() - start)
