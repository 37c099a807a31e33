"""Flicker of T checkpoints from temporal_distill.py on the footage clips, against the shipped model's per-frame output.

For each clip of video_footage.py (noisy pan, moving object, cut) and painting: warping error with the true flow and
with DIS flow (occlusion-masked, Lai et al. 2018) and the worst style-layer loss, each relative to the *shipped*
model's per-frame stylization, for the checkpoint per frame and with the flow stabiliser at each blend. The shipped
model's per-frame outputs are cached in ``--cache``.

    python scripts/research/temporal_judge.py /work/long_run/temporal/run1/net1500.pt [--blend 0 0.3] [--frames 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from video_footage import EX, STYLES, estimated, make_clips

from adjustable_style.flicker import FlickerStabiliser
from adjustable_style.flow import flow_warping_error
from adjustable_style.measure import ClipLoss
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, stylize_frames


def per_frame(st: Stylizer, frames: torch.Tensor, style: Path) -> torch.Tensor:
    return torch.cat(list(stylize_frames(st, frames.split(1), style, Keyframes(st, None, 24))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="+", help="net*.pt files of temporal_distill.py")
    ap.add_argument("--model", default="default")
    ap.add_argument("--blend", type=float, nargs="+", default=[0.0, 0.3])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--cache", default="/tmp/temporal_judge_base.pt")
    args = ap.parse_args()
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    shipped = {k: v.clone() for k, v in st.model.net.state_dict().items()}
    h, w = (int(v) for v in args.size.split("x"))
    clips = make_clips(args.frames, (h, w))
    cache = Path(args.cache)
    base = torch.load(cache, weights_only=True) if cache.exists() else {}
    for name, clip in clips.items():
        for painting in STYLES:
            if f"{name}/{painting}" not in base:
                st.model.net.load_state_dict(shipped)
                base[f"{name}/{painting}"] = per_frame(st, clip.frames, EX / painting)
    torch.save(base, cache)
    est = {name: estimated(clip.frames) for name, clip in clips.items()}
    for net in args.nets:
        st.model.net.load_state_dict(torch.load(net, weights_only=True) if net != "none" else shipped)
        print(net, "(relative to the shipped per-frame output: true-flow, DIS warping error | worst style layer)")
        summary: dict[str, list[tuple[float, float, float]]] = {}
        for name, clip in clips.items():
            for painting in STYLES:
                style = EX / painting
                ref = base[f"{name}/{painting}"]
                loss = ClipLoss(st, clip.frames, style)
                ref_loss = loss(ref)
                e0 = flow_warping_error(ref, clip.flows, clip.masks), flow_warping_error(ref, *est[name])
                y = per_frame(st, clip.frames, style)
                for b in args.blend:
                    if b > 0:
                        stab = FlickerStabiliser(blend=b, motion="flow")
                        v = torch.cat([stab(f[None], o[None]) for f, o in zip(clip.frames, y)])
                    else:
                        v = y
                    e = flow_warping_error(v, clip.flows, clip.masks), flow_warping_error(v, *est[name])
                    rel = (loss(v) / ref_loss).tolist()[len(st.schema.content) :]
                    summary.setdefault(f"{name:<14} blend {b:g}", []).append((e[0] / e0[0], e[1] / e0[1], max(rel)))
        for k, v in summary.items():
            m = [sum(x[i] for x in v) / len(v) for i in range(3)]
            worst = max(x[2] for x in v)
            print(f"  {k:<24} {m[0]:.2f} {m[1]:.2f} | mean {m[2]:.3f} worst {worst:.3f}", flush=True)


if __name__ == "__main__":
    main()
