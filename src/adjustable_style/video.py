"""Video: stylize a clip frame by frame, with slider keyframes, and keep the texture still where the scene is.

Decoding and encoding use PyAV (optional: ``pip install 'adjustable-style[video]'``; its wheels bundle FFmpeg).
The frame rate and frame count are kept, the audio stream is copied, and the output is written atomically.

Flicker is measured and reduced in :mod:`adjustable_style.flicker`; :func:`stylize_video` stabilises by default.

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

from .color import preserve_color as _preserve_color
from .flicker import FlickerStabiliser
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
        import av
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
        y = stylizer.run(x, embedding, a, style)
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
        return VideoInfo(
            s.codec_context.width,
            s.codec_context.height,
            Fraction(fps),
            int(s.frames or 0),
            bool(container.streams.audio),
        )


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
        (
            writable_parent(p) is not None,
            f"cannot write '{p}': {p.parent} is not a writable folder; choose another output path",
        ),
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
            except Exception:
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
                writer = _VideoWriter(
                    target, tuple(x.shape[-2:]), Fraction(fps).limit_denominator(1001 * 1000), None, crf
                )
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
    from tqdm.auto import tqdm

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
        outputs = stylize_frames(
            stylizer, read_frames(video, size), style, schedule, strength, preserve_color, stabiliser
        )
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
