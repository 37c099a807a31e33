"""Flicker on footage as cameras film it: noise, exposure flicker, a moving object, a scene cut; and 480p speed.

Usage:
    OMP_NUM_THREADS=1 python scripts/research/video_footage.py [--frames 24] [--size 240x320]
        [--blend 0.3 0.4] [--fps-frames 16] [--strip docs/video_footage_strip.jpg]

Clips (:mod:`adjustable_style.clips`, whole-pixel motion, so the true flow and occlusions are known exactly):
  noisy pan      a held-out photo (Kodak, ../shared/data) panned 3 px a frame, sensor noise σ = 3/255 and ±3 %
                 brightness flicker per frame
  moving object  the same with a round cut-out of another photo sliding 4 px a frame against the pan
  cut            two noisy pans one after the other
Warping error (Lai et al. 2018): MSE between each output frame and the previous output warped onto it, over the
non-occluded pixels; "true" uses the known flow and occlusions, "DIS" the flow estimated on the input frames with
forward-backward consistency masks (what one does on real footage). Style and content losses (raw, the model's
VGG19 loss network, each frame against its own input frame) are relative to per-frame stylization.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from adjustable_style.clips import Clip, camera_effects, cut_clip, panning_clip
from adjustable_style.flicker import DEFAULT_STEADY_INPUT, FlickerStabiliser
from adjustable_style.flow import consistency_mask, flow_warp, flow_warping_error, has_flow, optical_flow
from adjustable_style.image import load_image, resize, save_image
from adjustable_style.measure import ClipLoss
from adjustable_style.sheet import contact_sheet
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, stylize_frames

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
DATA = ROOT.parent / "shared" / "data" / "content"
STYLES = ["painting_hokusai_great_wave.jpg", "painting_kandinsky_small_worlds_i.jpg"]


def disc(image: torch.Tensor, d: int) -> torch.Tensor:
    """A round cut-out (1, 4, d, d) of ``image`` with a hard alpha."""
    rgb = resize(image, (d, d))
    yy, xx = torch.meshgrid(torch.arange(d), torch.arange(d), indexing="ij")
    alpha = (((yy - (d - 1) / 2) ** 2 + (xx - (d - 1) / 2) ** 2).sqrt() < d / 2 - 1).float()
    return torch.cat([rgb, alpha[None, None]], 1)


def photo(name: str) -> torch.Tensor:
    path = DATA / name if (DATA / name).exists() else EX / "photo_cat.jpg"
    return load_image(path)


def make_clips(n: int, size: tuple[int, int]) -> dict[str, Clip]:
    h, w = size
    bg = resize(photo("kodak_kodim03.jpg"), max(h, w) + 3 * n + 8)
    other = resize(photo("kodak_kodim23.jpg"), max(h, w) + 3 * n + 8)
    obj = disc(load_image(EX / "photo_rocket_launch.jpg"), h // 2)
    pan = panning_clip(bg, n, size, (3, 0))
    moving = panning_clip(bg, n, size, (3, 0), obj, (-4, 1))
    half = n // 2
    cut = cut_clip(panning_clip(bg, half, size, (3, 0)), panning_clip(other, n - half, size, (0, 2)))
    return {
        "noisy pan": Clip(camera_effects(pan.frames, seed=1), pan.flows, pan.masks),
        "moving object": Clip(camera_effects(moving.frames, seed=2), moving.flows, moving.masks),
        "cut": Clip(camera_effects(cut.frames, seed=3), cut.flows, cut.masks),
    }


def estimated(frames: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    flows, masks = [], []
    for t in range(1, frames.shape[0]):
        b = optical_flow(frames[t - 1 : t], frames[t : t + 1])
        flows.append(b)
        masks.append(consistency_mask(b, optical_flow(frames[t : t + 1], frames[t - 1 : t])))
    return flows, masks


def table(st: Stylizer, n: int, size: tuple[int, int], blends: list[float]) -> list[str]:
    keys = [k.replace("content/", "c:").replace("style/", "s:") for k in st.schema.keys]
    lines = [
        f"clips: {n} frames of {size[1]}x{size[0]}; warping error x 1e3 (true flow | DIS flow), ratio to per-frame;",
        "losses relative to per-frame (content, then each style layer)",
        f"{'clip / style':<30} {'method':<24} {'true':>7} {'DIS':>7} {'ratio':>6} {'ratio':>6}  "
        + " ".join(f"{k:>9}" for k in keys),
    ]
    summary: dict[str, list[tuple[float, float, float]]] = {}
    for clip_name, clip in make_clips(n, size).items():
        est = estimated(clip.frames)
        for painting in STYLES:
            style = EX / painting
            per_frame = torch.cat(list(stylize_frames(st, clip.frames.split(1), style, Keyframes(st, None, 24))))
            runs = {"input": clip.frames, "per-frame": per_frame}
            for motion, steady in (("affine", DEFAULT_STEADY_INPUT), ("flow", 0.0), ("flow", DEFAULT_STEADY_INPUT)):
                for b in blends:  # "steady": T sees the smoothed input (FlickerStabiliser.steady); 0: output blend only
                    stab = FlickerStabiliser(blend=b, steady_input=steady, motion=motion)
                    outs = stylize_frames(st, clip.frames.split(1), style, Keyframes(st, None, 24), stabiliser=stab)
                    out = torch.cat(list(outs))  # before the label: the cuts are found while the frames run
                    label = f"{motion} {b:g} steady {steady:g}"
                    runs[label + (f" cuts {stab.cuts}" if clip_name == "cut" else "")] = out
            loss = ClipLoss(st, clip.frames, style)
            base = flow_warping_error(per_frame, clip.flows, clip.masks), flow_warping_error(per_frame, *est)
            base_loss = loss(per_frame)
            for name, v in runs.items():
                e = flow_warping_error(v, clip.flows, clip.masks), flow_warping_error(v, *est)
                rel = (loss(v) / base_loss).tolist() if name != "input" else [float("nan")] * len(keys)
                worst = max(rel[len(st.schema.content) :])
                summary.setdefault(f"{clip_name:<14} {name.split(' cuts')[0]}", []).append(
                    (e[0] / base[0], e[1] / base[1], worst)
                )
                lines.append(
                    f"{clip_name + ' / ' + painting[9:-4]:<30.30} {name:<24.24} {e[0] * 1e3:>7.3f} {e[1] * 1e3:>7.3f} "
                    f"{e[0] / base[0]:>6.2f} {e[1] / base[1]:>6.2f}  " + " ".join(f"{r:>9.3f}" for r in rel)
                )
                if "cuts" in name:
                    lines.append(f"    {name}")
    lines.append("mean over the styles: warping error / per-frame (true flow, DIS flow) | worst style-layer ratio")
    for k, v in summary.items():
        m = [sum(x[i] for x in v) / len(v) for i in range(3)]
        lines.append(f"  {k:<34} {m[0]:>6.2f} {m[1]:>6.2f} | {m[2]:.3f}")
    return lines


def speed(st: Stylizer, n: int, blend: float) -> list[str]:
    """Frames/s of stylize + stabilise at 854x480 (no decode or encode)."""
    clip = make_clips(n, (480, 854))["moving object"]
    style = EX / STYLES[0]
    lines = []
    for label, stab in (
        ("per-frame", None),
        ("affine", FlickerStabiliser(blend=blend, motion="affine")),
        ("flow, output blend only", FlickerStabiliser(blend=blend, steady_input=0.0, motion="flow")),
        ("flow", FlickerStabiliser(blend=blend, motion="flow")),
    ):
        start = time.perf_counter()
        outs = list(stylize_frames(st, clip.frames.split(1), style, Keyframes(st, None, 24), stabiliser=stab))
        s = time.perf_counter() - start
        lines.append(f"480p (854x480), {len(outs)} frames, {label}: {len(outs) / s:.2f} frames/s (stylize + stabilise)")
    return lines


def strip(st: Stylizer, out: Path, t: int = 8) -> list[str]:
    """One frame of the moving-object clip: input, per-frame, stabilised, and each one's change from the previous
    output warped onto it (×4, black where the true flow is occluded)."""
    clip = make_clips(t + 1, (240, 320))["moving object"]
    style = EX / STYLES[1]
    per_frame = torch.cat(list(stylize_frames(st, clip.frames.split(1), style, Keyframes(st, None, 24))))
    stab = FlickerStabiliser()
    stable = torch.cat(list(stylize_frames(st, clip.frames.split(1), style, Keyframes(st, None, 24), stabiliser=stab)))
    flow, mask = clip.flows[t - 1], clip.masks[t - 1].float()

    def change(v: torch.Tensor) -> torch.Tensor:
        return ((v[t : t + 1] - flow_warp(v[t - 1 : t], flow)).abs() * 4 * mask).clamp(0, 1)

    tiles = [clip.frames[t : t + 1], per_frame[t : t + 1], stable[t : t + 1], change(per_frame), change(stable)]
    labels = [
        f"input frame {t} (noise, flicker, moving disc)",
        "per-frame",
        f"stabilised (flow, steady input {stab.steady_input:g}, blend {stab.blend:g})",
        "per-frame: change from previous, x4",
        "stabilised: change from previous, x4",
    ]
    save_image(contact_sheet(tiles, labels, ncol=5, cell=320), out, quality=85)
    return [f"strip: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size // 1024} KB)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="240x320", help="HxW of the clips")
    ap.add_argument("--blend", type=float, nargs="+", default=[0.3, 0.4])
    ap.add_argument("--fps-frames", type=int, default=16, help="frames of the 480p speed clip (0: skip)")
    ap.add_argument("--fps-blend", type=float, default=0.3)
    ap.add_argument("--strip", default=str(ROOT / "docs" / "video_footage_strip.jpg"), help="picture ('' to skip)")
    args = ap.parse_args()
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    if has_flow():
        import cv2

        cv2.setNumThreads(torch.get_num_threads())  # OpenCV's own pool: as many threads as torch's (one core: 1)
    h, w = (int(v) for v in args.size.lower().split("x"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (torch and OpenCV); model {args.model}",
        flush=True,
    )
    for line in table(st, args.frames, (h, w), args.blend) if args.frames else []:
        print(line, flush=True)
    for line in speed(st, args.fps_frames, args.fps_blend) if args.fps_frames else []:
        print(line, flush=True)
    for line in strip(st, Path(args.strip).resolve()) if args.strip else []:
        print(line, flush=True)


if __name__ == "__main__":
    main()
