"""Flicker and speed of video stylization: warping error on clips with exactly known motion, and 480p frames/s.

Usage:
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 python scripts/research/video_flicker.py [--frames 16]
        [--blend 0.2 0.25 0.3 0.35 0.5] [--fps-frames 24] [--strip docs/video_strip.jpg]

Each clip is a bundled photo seen by a camera that pans and zooms (a known affine motion per frame), so every
frame can be warped onto the next without optical flow. The warping error (mean squared difference, RGB in
[0, 1], borders left out) is printed for the input clip, per-frame stylization, per-frame with the conditional
instance-norm statistics smoothed across frames (an EMA; the obvious idea, measured here), and the motion-
compensated :class:`~adjustable_style.flicker.FlickerStabiliser` at several blend weights. Two controls show what
resampling alone costs and what the stabiliser's detail restoration gives back: the per-frame clip shifted ½ px
(bicubic), and the same with :func:`~adjustable_style.flicker.restore_spectrum` against the unshifted frame.
Style and content losses (raw, the model's VGG19 loss network, each frame against its own input) are given relative
to per-frame.
Then the end-to-end speed (decode, stylize, stabilise, encode) on a 854×480 clip, and a picture strip of a
keyframed clip read back from the encoded file.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

from adjustable_style.flicker import (
    DEFAULT_STEADY_INPUT,
    FlickerStabiliser,
    pan_zoom_clip,
    restore_spectrum,
    warp,
    warping_error,
)
from adjustable_style.image import load_image, resize, save_image
from adjustable_style.measure import ClipLoss
from adjustable_style.model import ConditionalInstanceNorm
from adjustable_style.sheet import contact_sheet, format_weights
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, stylize_frames, stylize_video
from adjustable_style.video_files import read_frames, write_video

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
PAIRS = [
    ("photo_cat.jpg", "painting_kandinsky_small_worlds_i.jpg"),
    ("photo_astronaut.jpg", "painting_hokusai_great_wave.jpg"),
    ("photo_rocket_launch.jpg", "painting_monet_water_lilies.jpg"),
]


def cin_statistics_ema(model: torch.nn.Module, decay: float) -> list:
    """Hooks that replace each CIN's per-frame mean/variance by an EMA over the frames seen so far."""
    state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(mod: ConditionalInstanceNorm, inputs: tuple, _output: torch.Tensor) -> torch.Tensor:
        x, gamma, beta = inputs
        mu, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        if id(mod) in state:
            mu = decay * state[id(mod)][0] + (1 - decay) * mu
            var = decay * state[id(mod)][1] + (1 - decay) * var
        state[id(mod)] = (mu, var)
        return (x - mu) / torch.sqrt(var + mod.eps) * gamma[:, :, None, None] + beta[:, :, None, None]

    return [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ConditionalInstanceNorm)]


def flicker_table(
    st: Stylizer, n_frames: int, size: tuple[int, int], blends: list[float], ema: float, steady: float
) -> list[str]:
    lines = [
        f"clips: {n_frames} frames of {size[1]}x{size[0]}, camera pans across and zooms 1.25x into the photo",
        "warping error (MSE x 1e3); losses relative to per-frame (content, then each style layer)",
    ]
    keys = [k.replace("content/", "c:").replace("style/", "s:") for k in st.schema.keys]
    lines.append(
        f"{'clip':<34} {'method':<24} {'warp err':>9} {'vs per-frame':>12}  " + " ".join(f"{k:>9}" for k in keys)
    )
    ratios: dict[str, list[float]] = {}
    style_change: dict[str, list[float]] = {}
    for photo, painting in PAIRS:
        style = EX / painting
        frames, motions = pan_zoom_clip(load_image(EX / photo), n_frames, size)
        kf = Keyframes(st, None, 24)
        per_frame = torch.cat(list(stylize_frames(st, frames.split(1), style, kf)))
        handles = cin_statistics_ema(st.model.net, ema)
        try:
            smoothed = torch.cat(list(stylize_frames(st, frames.split(1), style, kf)))
        finally:
            for h in handles:
                h.remove()
        # What resampling alone costs: the per-frame clip moved by half a pixel (bicubic), no temporal change.
        half_px = torch.tensor([[1.0, 0.0, 1 / size[1]], [0.0, 1.0, 1 / size[0]]])
        shifted = torch.cat([warp(y[None], half_px, "bicubic") for y in per_frame])
        restored = torch.cat([restore_spectrum(s[None], y[None]) for s, y in zip(shifted, per_frame)]).clamp(0, 1)
        runs = {
            "input clip": frames,
            "per-frame": per_frame,
            "per-frame, 1/2 px shift": shifted.clamp(0, 1),
            "1/2 px shift, restored": restored,
            f"CIN stats EMA {ema:g}": smoothed,
        }
        for b in blends:
            stab = FlickerStabiliser(blend=b, steady_input=steady)  # steady > 0: T sees the smoothed frames
            runs[f"stabilised, blend {b:g}"] = torch.cat(
                list(stylize_frames(st, frames.split(1), style, kf, stabiliser=stab))
            )
        clip_loss = ClipLoss(st, frames, style)
        base_err, base_loss = warping_error(per_frame, motions), clip_loss(per_frame)
        for name, v in runs.items():
            err = warping_error(v, motions)
            rel = (clip_loss(v) / base_loss).tolist() if name != "input clip" else []
            ratios.setdefault(name, []).append(err / base_err)
            if rel:
                style_change.setdefault(name, []).append(max(rel[len(st.schema.content) :]))
            lines.append(
                f"{photo[6:-4] + ' x ' + painting[9:-4]:<34} {name:<24} {err * 1e3:>9.3f} {err / base_err:>12.2f}  "
                + " ".join(f"{r:>9.3f}" for r in rel)
            )
    lines.append("mean over the clips: warping error relative to per-frame | each clip's largest style-loss ratio")
    for k, v in ratios.items():
        worst = f"{sum(style_change[k]) / len(style_change[k]):.3f}" if k in style_change else ""
        lines.append(f"  {k:<24} {sum(v) / len(v):>6.2f} | {worst}")
    return lines


def speed_480p(st: Stylizer, n_frames: int, tmp: Path) -> list[str]:
    photo = resize(load_image(EX / "photo_rocket_launch.jpg"), 1600)  # larger than 854 px so the camera stays inside
    frames, _ = pan_zoom_clip(photo, n_frames, (480, 854), zoom=1.1)
    clip = write_video(frames.split(1), tmp / "clip480.mp4", 24)
    lines = []
    for stabilise in (False, True):
        r = stylize_video(
            st, clip, EX / "painting_hokusai_great_wave.jpg", tmp / "out480.mp4", stabilise=stabilise, progress=False
        )
        what = "stabilised" if stabilise else "per-frame"
        lines.append(f"480p (854x480), {r.frames} frames, {what}: {r.frames_per_second:.2f} frames/s end to end")
    return lines


def strip(st: Stylizer, tmp: Path, out: Path, n_frames: int = 48) -> list[str]:
    frames, _ = pan_zoom_clip(load_image(EX / "photo_cat.jpg"), n_frames, (240, 360), pan=(0.8, 0.1), zoom=1.2)
    clip = write_video(frames.split(1), tmp / "cat.mp4", 24)
    keys = "0s:relu2_2=0,relu3_4=0,relu4_4=0; 2s:relu2_2=1,relu3_4=1,relu4_4=1"
    r = stylize_video(
        st, clip, EX / "painting_kandinsky_small_worlds_i.jpg", tmp / "cat_styled.mp4", keyframes=keys, progress=False
    )
    decoded = list(read_frames(r.path))
    picks = [round(i * (r.frames - 1) / 4) for i in range(5)]
    labels = [
        f"frame {k} ({k / float(r.fps):.1f} s)\n" + format_weights(st.schema.to_dicts(r.alphas[k])[0]) for k in picks
    ]
    sheet = contact_sheet([decoded[k] for k in picks], labels, cell=256)
    save_image(sheet, out, quality=85)
    return [
        f"strip: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size // 1024} KB), "
        f"keyframes {keys!r}, frames {picks}"
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--frames", type=int, default=16, help="frames per flicker clip (0: skip the flicker table)")
    ap.add_argument("--size", default="240x320", help="HxW of the flicker clips")
    ap.add_argument("--blend", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35, 0.5])
    ap.add_argument("--ema", type=float, default=0.9, help="decay of the CIN-statistics EMA")
    ap.add_argument("--steady-input", type=float, default=DEFAULT_STEADY_INPUT, help="the stabiliser's steady input")
    ap.add_argument("--fps-frames", type=int, default=24, help="frames of the 480p speed clip (0: skip)")
    ap.add_argument("--strip", default=str(ROOT / "docs" / "video_strip.jpg"), help="picture strip ('' to skip)")
    args = ap.parse_args()
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    h, w = (int(v) for v in args.size.lower().split("x"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
        f"model {args.model}"
    )
    for line in flicker_table(st, args.frames, (h, w), args.blend, args.ema, args.steady_input) if args.frames else []:
        print(line, flush=True)
    with tempfile.TemporaryDirectory() as d:
        if args.fps_frames:
            for line in speed_480p(st, args.fps_frames, Path(d)):
                print(line, flush=True)
        if args.strip:
            for line in strip(st, Path(d), Path(args.strip).resolve()):
                print(line)


if __name__ == "__main__":
    main()
