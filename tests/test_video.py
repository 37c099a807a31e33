"""Video: keyframed sliders through a real encoded clip, flicker of stabilised vs per-frame, and bad input."""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from adjustable_style.cli import main
from adjustable_style.flicker import FlickerStabiliser, estimate_motion, pan_zoom_clip, warping_error
from adjustable_style.image import load_image
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, parse_keyframes, parse_time, stylize_frames, stylize_video
from adjustable_style.video_files import VideoError, probe, read_frames, write_video

av = pytest.importorskip("av")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = EXAMPLES / "photo_cat.jpg"
WAVE = str(EXAMPLES / "painting_hokusai_great_wave.jpg")
N, FPS, SIZE = 10, 10, (96, 128)  # 1 s of a 128x96 clip


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu", backend="torch")


def _write_clip_with_audio(frames: torch.Tensor, path: Path, fps: int) -> None:
    """An H.264 clip with an AAC sine tone, as a camera or phone would record it."""
    with av.open(str(path), mode="w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.height, v.width = frames.shape[-2:]
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray((f.permute(1, 2, 0) * 255).round().byte().numpy(), format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
        t = np.arange(16000 * len(frames) // fps) / 16000
        tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        out.mux(a.encode(af))
        out.mux(a.encode())


def _audio_packets(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.audio[0]) if p.dts is not None)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[torch.Tensor]]:
    """A real photo panned and zoomed (known motion), encoded with sound; returns the file and the motions."""
    frames, motions = pan_zoom_clip(load_image(CAT), N, SIZE, pan=(0.5, 0.2), zoom=1.15)
    path = tmp_path_factory.mktemp("clip") / "cat.mp4"
    _write_clip_with_audio(frames, path, FPS)
    return path, motions


@pytest.fixture(scope="module")
def keyframed(st: Stylizer, clip: tuple[Path, list[torch.Tensor]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The clip stylized with keyframes, stabilised and per-frame."""
    out = tmp_path_factory.mktemp("styled")
    keys = "0s:relu2_2=0,relu4_4=1; 0.9s:relu2_2=1,relu4_4=0"
    runs = {}
    for stabilise in (True, False):
        runs[stabilise] = stylize_video(
            st, clip[0], WAVE, out / f"s{int(stabilise)}.mp4", keyframes=keys, stabilise=stabilise, progress=False
        )
    return runs


def test_keyframed_clip_keeps_frames_rate_and_audio(keyframed: dict, clip: tuple[Path, list[torch.Tensor]]) -> None:
    r = keyframed[True]
    info = probe(r.path)
    assert r.frames == N and info.fps == Fraction(FPS) and (info.height, info.width) == SIZE
    assert len(list(read_frames(r.path))) == N
    assert info.has_audio and _audio_packets(r.path) == _audio_packets(clip[0])
    assert not [p for p in r.path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_alpha_follows_keyframes(st: Stylizer, keyframed: dict, clip: tuple[Path, list[torch.Tensor]]) -> None:
    r = keyframed[False]
    keys = st.schema.keys
    ramp = torch.linspace(0, 1, N)  # keyframes at frame 0 and frame 9 (0.9 s at 10 fps)
    torch.testing.assert_close(r.alphas[:, keys.index("style/relu2_2")], ramp)
    torch.testing.assert_close(r.alphas[:, keys.index("style/relu4_4")], 1 - ramp)
    assert (r.alphas[:, keys.index("style/relu3_4")] == 1).all()  # not keyframed: the default
    # The pixels follow: each end of the written clip is nearer the stylization at its own α than at the other end's.
    written, source = list(read_frames(r.path)), list(read_frames(clip[0]))
    e = st.embed(WAVE)
    with torch.inference_mode():
        for k, other in ((0, N - 1), (N - 1, 0)):
            own = st.model(source[k], e, r.alphas[k : k + 1])
            far = st.model(source[k], e, r.alphas[other : other + 1])
            assert (written[k] - own).pow(2).mean() < 0.5 * (written[k] - far).pow(2).mean()


def test_stabilised_flicker_below_per_frame(keyframed: dict, clip: tuple[Path, list[torch.Tensor]]) -> None:
    motions = clip[1]
    stable = warping_error(torch.cat(list(read_frames(keyframed[True].path))), motions)
    per_frame = warping_error(torch.cat(list(read_frames(keyframed[False].path))), motions)
    source = warping_error(torch.cat(list(read_frames(clip[0]))), motions)
    assert source < 0.1 * per_frame
    assert stable < 0.7 * per_frame, (stable, per_frame)


def test_long_clip_at_ntsc_rate_keeps_every_frame(tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    path = write_video(torch.rand(60, 3, 32, 32).split(1), tmp_path / "ntsc.mp4", fps)
    assert probe(path).fps == fps and len(list(read_frames(path))) == 60


def test_estimate_motion_recovers_known_motion() -> None:
    frames, motions = pan_zoom_clip(load_image(CAT), 4, (120, 160), pan=(0.4, 0.3), zoom=1.1)
    for t in range(1, 4):
        theta = estimate_motion(frames[t - 1 : t], frames[t : t + 1])
        err_px = ((theta - motions[t - 1]).abs() * torch.tensor([[80.0], [60.0]])).max()
        assert err_px < 0.1


def test_stabiliser_passes_first_frame_and_cuts_through(st: Stylizer) -> None:
    frames, _ = pan_zoom_clip(load_image(CAT), 2, (64, 96))
    other = load_image(EXAMPLES / "photo_rocket_launch.jpg", max_size=96)[..., :64, :96]
    stab = FlickerStabiliser()
    y0, y1 = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    assert torch.equal(stab(frames[:1], y0), y0)
    out = stab(other, y1)  # a cut: nothing of the previous shot may leak in
    assert (out - y1).abs().mean() < 0.02
    with pytest.raises(ValueError, match="blend"):
        FlickerStabiliser(blend=1.0)
    with pytest.raises(ValueError, match="steady_input"):
        FlickerStabiliser(steady_input=1.0)


def test_stylize_frames_accepts_an_alpha_table(st: Stylizer) -> None:
    frames, _ = pan_zoom_clip(load_image(CAT), 2, (32, 48))
    alphas = st.check_weights({"relu2_2": 0.0}).repeat(2, 1)
    outs = list(stylize_frames(st, frames.split(1), WAVE, alphas))
    assert len(outs) == 2 and outs[0].shape == (1, 3, 32, 48)


# ------------------------------------------------------------------------------------------------- keyframes
def test_parse_time_and_keyframes() -> None:
    assert parse_time("2.5s") == (2.5, "s") and parse_time("96f") == (96.0, "f") and parse_time(1) == (1.0, "s")
    assert parse_keyframes("0s:relu2_2=0 ;; 12f:relu2_2=1") == [("0s", {"relu2_2": 0.0}), ("12f", {"relu2_2": 1.0})]
    for bad, match in (("4", "needs a unit"), ("xs", "malformed"), ("-1s", ">= 0"), ("1.5f", "whole")):
        with pytest.raises(ValueError, match=match):
            parse_time(bad)
    for bad, match in (
        ("", "no keyframes"),
        ("0s relu2_2=0", "malformed keyframe"),
        ("0s:", "malformed keyframe"),
        ("0s:relu9_9=1", "relu9_9"),
        ("0s:relu2_2=x", "relu2_2"),
        ("4:relu2_2=1", "unit"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_keyframes(bad)


def test_keyframes_interpolate_in_seconds_and_frames(st: Stylizer) -> None:
    j = st.schema.keys.index("style/relu4_4")
    kf = Keyframes(st, [("1s", {"relu4_4": 0.0}), ("40f", {"relu4_4": 1.0})], fps=20, weights={"relu2_2": 0.5})
    col = kf.table(50)[:, j]
    assert col[:21].eq(0).all() and col[40:].eq(1).all()  # held before the first and after the last
    assert col[30].item() == pytest.approx(0.5)
    assert kf.at(0)[0, st.schema.keys.index("style/relu2_2")] == 0.5  # --style-weights for unnamed layers
    with pytest.raises(ValueError, match="must increase"):
        Keyframes(st, [("2s", {}), ("1s", {})], fps=10)
    with pytest.raises(ValueError, match="trained"):
        Keyframes(st, [("0s", {"relu4_4": 2.0})], fps=10)


# ------------------------------------------------------------------------------------------------- bad input
def _fails(args: list[str], capsys: pytest.CaptureFixture[str], match: str, out: Path) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not out.exists()
    folder = out.parent if out.parent.is_dir() else out.parent.parent  # "-o FILE/out.mp4": look beside FILE
    assert folder.is_dir()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, clip: tuple[Path, list[torch.Tensor]], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    video = str(clip[0])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    empty = tmp_path / "empty.h264"  # an H.264 stream cut before its first picture: headers, zero frames
    with av.open(str(tmp_path / "full.h264"), mode="w", format="h264") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
    data = (tmp_path / "full.h264").read_bytes()
    empty.write_bytes(data[: data.find(b"\x00\x00\x01\x65")])  # NAL type 5: the first (IDR) slice
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ([str(tmp_path / "missing.mp4"), WAVE, "-o", str(out)], "not found"),
        ([str(text), WAVE, "-o", str(out)], "not a video"),
        ([str(CAT), WAVE, "-o", str(out)], "no video stream"),
        ([str(empty), WAVE, "-o", str(out)], "no video frames"),
        ([video, WAVE, "-o", str(blocker / "out.mp4")], "not a writable folder"),
        ([video, WAVE, "-o", str(tmp_path / "out.gif")], "must end in"),
        ([video, WAVE, "-o", str(out), "--keyframes", "4:relu2_2=1"], "needs a unit"),
        ([video, WAVE, "-o", str(out), "--keyframes", "0s:relu2_2=1; 0s:relu2_2=0"], "must increase"),
        ([video, WAVE, "-o", str(out), "--keyframes", "0s:relu9_9=1"], "relu9_9"),
        ([video, str(tmp_path / "missing.jpg"), "-o", str(out)], "not found"),
        ([video, WAVE, "-o", str(out), "--blend", "1"], "blend must be in [0, 1)"),
        ([video, WAVE, "-o", str(out), "--steady-input", "-0.1"], "steady_input must be in [0, 1)"),
    ]
    for args, match in cases:
        _fails(["video", *args, "-q", "--size", "64"], capsys, match, out if "out.mp4" in args[3] else Path(args[3]))


def test_failure_midway_leaves_no_file(st: Stylizer, clip: tuple[Path, list[torch.Tensor]], tmp_path: Path) -> None:
    class Breaks(FlickerStabiliser):
        def __call__(self, frame: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
            if self._frame is not None:
                raise RuntimeError("disk full")
            return super().__call__(frame, styled)

    out = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="disk full"):
        stylize_video(st, clip[0], WAVE, out, stabilise=Breaks(), progress=False, max_size=64)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_video(
    clip: tuple[Path, list[torch.Tensor]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v.mkv"
    assert (
        main(
            [
                "video",
                str(clip[0]),
                WAVE,
                "-o",
                str(out),
                "--size",
                "64",
                "--no-stabilise",
                "--keyframes",
                "0f:relu2_2=0; 5f:relu2_2=1",
                "--backend",
                "torch",
            ]
        )
        == 0
    )
    assert f"wrote {out}: {N} frames of 64x48" in capsys.readouterr().out
    assert probe(out).frames in (0, N) and len(list(read_frames(out))) == N


def test_missing_pyav_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r"pip install 'adjustable-style\[video\]'"):
        write_video([torch.rand(1, 3, 16, 16)], tmp_path / "x.mp4", 10)
    assert list(tmp_path.iterdir()) == []
