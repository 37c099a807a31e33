"""Optical flow, occlusion masks and the flow-based stabiliser on clips whose motion is known exactly.

Bounds are the measured values on these small clips (``scripts/research/video_footage.py`` measures larger ones)
with a little room.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from adjustable_style.clips import Clip, camera_effects, cut_clip, panning_clip
from adjustable_style.flicker import FlickerStabiliser
from adjustable_style.flow import consistency_mask, flow_warping_error, has_flow, match_exposure, optical_flow
from adjustable_style.image import load_image, resize
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, stylize_frames

needs_cv2 = pytest.mark.skipif(not has_flow(), reason="needs OpenCV (the [video] extra)")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WAVE = EXAMPLES / "painting_hokusai_great_wave.jpg"
SIZE, N = (96, 128), 8


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu", backend="torch")


def _disc(d: int) -> torch.Tensor:
    rgb = resize(load_image(EXAMPLES / "photo_rocket_launch.jpg"), (d, d))
    yy, xx = torch.meshgrid(torch.arange(d), torch.arange(d), indexing="ij")
    alpha = (((yy - (d - 1) / 2) ** 2 + (xx - (d - 1) / 2) ** 2).sqrt() < d / 2 - 1).float()
    return torch.cat([rgb, alpha[None, None]], 1)


def _photo(name: str) -> torch.Tensor:
    return resize(load_image(EXAMPLES / name), 180)


def _moving(seed: int = 2) -> Clip:
    c = panning_clip(_photo("photo_cat.jpg"), N, SIZE, (3, 0), _disc(40), (-4, 1))
    return Clip(camera_effects(c.frames, seed=seed), c.flows, c.masks)


def _run(st: Stylizer, clip: Clip, **kw: object) -> tuple[float, float, FlickerStabiliser, torch.Tensor, torch.Tensor]:
    """Warping error and worst style-layer loss of the stabilised clip, each relative to per-frame."""
    per_frame = torch.cat(list(stylize_frames(st, clip.frames.split(1), WAVE, Keyframes(st, None, 10))))
    stab = FlickerStabiliser(**kw)  # type: ignore[arg-type]
    out = torch.cat(list(stylize_frames(st, clip.frames.split(1), WAVE, Keyframes(st, None, 10), stabiliser=stab)))
    loss = st.exported.loss_module()
    with torch.inference_mode():
        style = loss.style_targets(st.style_image(WAVE))
        content = loss.content_targets(clip.frames)
        n_content = len(st.schema.content)
        ratio = loss.raw_losses(out, Targets(content, style)).mean(0) / loss.raw_losses(
            per_frame, Targets(content, style)
        ).mean(0)
    err = flow_warping_error(out, clip.flows, clip.masks) / flow_warping_error(per_frame, clip.flows, clip.masks)
    return err, float(ratio[n_content:].max()), stab, out, per_frame


def test_clip_ground_truth_is_exact() -> None:
    c = panning_clip(_photo("photo_cat.jpg"), N, SIZE, (3, 0), _disc(40), (-4, 1))
    assert flow_warping_error(c.frames, c.flows, c.masks) < 1e-10
    assert 0.85 < float(c.masks[0].float().mean()) < 0.99  # the object hides and shows some background


@needs_cv2
def test_optical_flow_and_occlusion_mask_on_a_moving_object() -> None:
    c = _moving()
    for t in (1, N - 1):
        prev, cur = c.frames[t - 1 : t], c.frames[t : t + 1]
        back = optical_flow(prev, cur)
        trusted = consistency_mask(back, optical_flow(cur, prev))
        truth, valid = c.flows[t - 1], c.masks[t - 1]
        err = (back - truth).norm(dim=1, keepdim=True)
        assert float(err[trusted & valid].mean()) < 0.3  # sub-pixel where trusted (noise and ±3 % flicker)
        assert float((trusted & ~valid).float().mean()) < 0.08  # measured 0.054: occlusions are mostly caught
        assert float(trusted.float().mean()) > 0.8


def test_tiny_frames_stabilise() -> None:
    stab = FlickerStabiliser()
    for f in torch.rand(3, 1, 3, 8, 8):
        assert stab(f, f).shape == (1, 3, 8, 8)


def test_match_exposure_undoes_gain_and_offset() -> None:
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(match_exposure(x * torch.tensor([1.03, 0.97, 1.0])[:, None, None] + 0.02, x), x)


@needs_cv2
def test_stabiliser_on_moving_object_clip(st: Stylizer) -> None:
    err, worst, *_ = _run(st, _moving())  # the default blend, 0.3
    assert err < 0.65, err  # measured 0.60
    assert worst < 1.1, worst  # measured 1.05
    err, worst, *_ = _run(st, _moving(), blend=0.4)
    assert err < 0.52, err  # measured 0.48
    assert worst < 1.12, worst  # measured 1.07


@needs_cv2
def test_steady_input_on_footage_like_clip(st: Stylizer, shared_data: Path) -> None:
    """A held-out, detailed photo panned under a moving disc with noise and exposure flicker (the footage clips of
    ``video_footage.py``, smaller): T seeing the smoothed input is what brings the flicker to half of per-frame."""
    size, n = (192, 256), 10
    bg = resize(load_image(shared_data / "content" / "kodak_kodim03.jpg"), max(size) + 3 * n + 8)
    c = panning_clip(bg, n, size, (3, 0), _disc(size[0] // 2), (-4, 1))
    clip = Clip(camera_effects(c.frames, seed=2), c.flows, c.masks)
    err, worst, *_ = _run(st, clip)  # the defaults: steady input 0.7, blend 0.3
    assert err < 0.54, err  # measured 0.50
    assert worst < 1.08, worst  # measured 1.05
    err_out, worst_out, *_ = _run(st, clip, steady_input=0.0)  # the output blend alone
    assert err_out > err + 0.05, (err_out, err)  # measured 0.59
    assert worst_out > worst, (worst_out, worst)  # measured 1.07: the output blend softens texture more


@needs_cv2
def test_stabiliser_on_exposure_flicker(st: Stylizer) -> None:
    c = panning_clip(_photo("photo_astronaut.jpg"), N, SIZE, (3, 0))
    flicker = Clip(camera_effects(c.frames, noise=0.0, flicker=0.03, seed=4), c.flows, c.masks)
    err, worst, stab, *_ = _run(st, flicker)
    assert err < 0.58, err  # measured 0.52
    assert worst < 1.1, worst  # measured 1.05
    assert stab.cuts == []  # a brightness change is not a cut


@needs_cv2
def test_scene_cut_resets(st: Stylizer) -> None:
    half = N // 2
    a = panning_clip(_photo("photo_cat.jpg"), half, SIZE, (3, 0))
    b = panning_clip(_photo("photo_rocket_launch.jpg"), half, SIZE, (0, 2))
    c = cut_clip(a, b)
    c = Clip(camera_effects(c.frames, seed=5), c.flows, c.masks)
    err, _, stab, out, per_frame = _run(st, c)
    assert stab.cuts == [half]
    assert torch.equal(out[half], per_frame[half])  # nothing of the previous shot leaks in
    assert err < 0.62, err  # measured 0.55 (0.64 with the output blend alone)


def test_without_opencv_falls_back_to_affine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert not has_flow() and FlickerStabiliser().motion == "affine"
    with pytest.raises(ValueError, match=r"pip install 'adjustable-style\[video\]'"):
        FlickerStabiliser(motion="flow")
    with pytest.raises(ValueError, match="OpenCV"):
        optical_flow(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="motion"):
        FlickerStabiliser(motion="magic")


def test_video_command_without_opencv_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("av")
    from adjustable_style.cli import main
    from adjustable_style.video_files import write_video

    c = panning_clip(_photo("photo_cat.jpg"), 3, (32, 48), (3, 0))
    clip = write_video(c.frames.split(1), tmp_path / "in.mp4", 10)
    monkeypatch.setitem(sys.modules, "cv2", None)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), str(WAVE), "-o", str(out), "--size", "48", "--backend", "torch"]) == 0
    printed = capsys.readouterr().out
    assert "pip install 'adjustable-style[video]'" in printed and "global camera motion" in printed
    assert out.exists()
