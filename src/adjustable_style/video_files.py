"""Video files: reading and writing clips with PyAV (H.264 out, audio carried over), checked and atomic.

PyAV is optional (``pip install 'adjustable-style[video]'``; its wheels bundle FFmpeg). Frames are
(1, 3, H, W) float32 in [0, 1], as everywhere else. The output keeps the frame rate and every frame, copies the
input's audio (re-encoded to AAC only where the container needs it), and appears only when complete
(:func:`adjustable_style.atomic.write_file`).

Example:
    >>> info = probe("clip.mp4")  # doctest: +SKIP
    >>> write_video(read_frames("clip.mp4", (480, 854)), "out/small.mp4", info.fps)  # doctest: +SKIP
    PosixPath('out/small.mp4')
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .atomic import write_file
from .checks import InputError
from .image import MIN_SIDE, resize, writable_parent

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv")
"""Output containers (H.264 video)."""

# Audio codecs the MP4/MOV muxers take as they are; anything else is re-encoded to AAC (MKV takes everything).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac", "mp2"}


class VideoError(InputError):
    """A video that cannot be read or written; the message is one line naming the file."""


def _av() -> Any:
    try:
        import av  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise VideoError("video needs PyAV; install it with: pip install 'adjustable-style[video]'") from None
    return av


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


class _Encoder:
    """H.264 frames (and ``audio_from``'s audio) into the file ``path``; :meth:`finish` completes it."""

    def __init__(self, path: Path, size: tuple[int, int], fps: Fraction, audio_from: Path | None, crf: int) -> None:
        av = _av()
        self.n = 0
        self.audio_in = None
        self.out = av.open(str(path), mode="w")
        try:
            self.video = self.out.add_stream("libx264", rate=fps)
            self.video.height, self.video.width = size
            self.video.pix_fmt = "yuv420p"
            # Frame index = pts in the encoder's time base: a constant frame rate, every frame kept. (Setting the
            # stream's time base instead made libx264 emit pts < dts after ~40 frames, which the muxer refuses.)
            self.video.codec_context.time_base = 1 / fps
            self.video.options = {"crf": str(crf)}
            if audio_from is not None:
                self._add_audio(audio_from, mkv=path.suffix.lower() == ".mkv")
        except BaseException:
            self.close()
            raise

    def _add_audio(self, source: Path, mkv: bool) -> None:
        self.audio_in = _av().open(str(source))
        a = self.audio_in.streams.audio[0]
        self.copy = mkv or a.codec_context.name in _MP4_AUDIO
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

    def finish(self) -> None:
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
        self.close()

    def close(self) -> None:
        for c in (self.out, self.audio_in):
            try:
                if c is not None:
                    c.close()
            except Exception:
                pass


def write_video(
    frames: Iterable[torch.Tensor],
    path: str | os.PathLike[str],
    fps: float | Fraction,
    crf: int = 18,
    audio_from: str | os.PathLike[str] | None = None,
) -> Path:
    """Encode frames as H.264 at ``fps`` into ``path`` (.mp4, .mov or .mkv), atomically.

    Args:
        frames: (1, 3, H, W) or (3, H, W) tensors in [0, 1], all the same size, H and W even; consumed lazily.
        path: the output; nothing appears there unless every frame was encoded.
        fps: the frame rate.
        crf: H.264 quality (lower is better and larger; 18 is visually lossless).
        audio_from: a video whose first audio stream is copied in (None: no audio).

    Raises:
        VideoError: unwritable output, or no frames.
    """
    target = check_output(path)
    rate = Fraction(fps).limit_denominator(1001 * 1000)

    def encode(tmp: Path) -> None:
        it = iter(frames)
        first = next(it, None)
        if first is None:
            raise VideoError(f"no frames to write to '{target}'")
        encoder = _Encoder(tmp, tuple(first.shape[-2:]), rate, Path(audio_from) if audio_from else None, crf)
        try:
            for x in itertools.chain([first], it):
                encoder.write(x if x.ndim == 4 else x[None])
            encoder.finish()
        finally:
            encoder.close()

    return write_file(target, encode)
