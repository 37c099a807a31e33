"""Temporal-consistency fine-tune of T by self-distillation: the same output for a frame however the camera moved.

Most of video flicker comes from T itself: its stride-2 convolutions make the output depend on where the picture
sits against the pixel grid (a 3-px pan changes the texture), and sensor noise and exposure flicker change it too.
This fine-tunes T's weights only (Λ, P and the sliders' conditioning stay as they are) so that, for a random crop of a
larger window, T on the crop with camera effects (σ ≤ 4/255 noise, ±4 % brightness) gives the original model's
output on the whole clean window, cut at the crop: one target for every shift, so outputs move with the picture.
α ~ U(0, 1) per row and train paintings at random, so every slider position is covered. No VGG pass: a step is the
teacher on the window and the student on the crops. Train split of ../shared/data only.

    OMP_NUM_THREADS=1 python scripts/research/temporal_distill.py --out /work/long_run/temporal/run1 --steps 1500
    python scripts/research/video_footage.py --model /work/long_run/temporal/run1/export   # flicker
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
from calibrate_sliders import train_images
from scale_sliders import write_model

from adjustable_style.adapt import photo_pool
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[2]


def shifted(
    win: torch.Tensor, crop: int, shift: int, phase: int, g: torch.Generator
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """One crop of side ``crop`` per window at a random offset in [0, 2·shift] (multiples of ``phase``), and the
    offsets."""
    at = [
        tuple(phase * int(v) for v in torch.randint(2 * shift // phase + 1, (2,), generator=g))
        for _ in range(win.shape[0])
    ]
    return torch.cat([win[k : k + 1, :, dy : dy + crop, dx : dx + crop] for k, (dy, dx) in enumerate(at)]), at


def camera(x: torch.Tensor, noise: float, gain: float, g: torch.Generator) -> torch.Tensor:
    """Per image a brightness gain 1 ± ``gain`` and Gaussian noise of σ up to ``noise`` (uniform draws)."""
    k = 1 + gain * (2 * torch.rand(x.shape[0], 1, 1, 1, generator=g) - 1)
    sigma = noise * torch.rand(x.shape[0], 1, 1, 1, generator=g)
    return (x * k + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", required=True, help="new folder: checkpoints and, at the end, export/")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--shift", type=int, default=6, help="largest shift of a crop in its window, px")
    ap.add_argument("--phase", type=int, default=1, help="shifts in multiples of this (4: T's stride, no regridding)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--noise", type=float, default=4 / 255)
    ap.add_argument("--gain", type=float, default=0.04)
    ap.add_argument(
        "--temporal",
        type=float,
        default=0.0,
        help="> 0: fidelity to the original on the same crop + this × consistency between two shifted crops",
    )
    ap.add_argument("--margin", type=int, default=8, help="border px left out of the loss")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos, styles = train_images()
    st = Stylizer.load(args.model, backend="torch")
    model = st.model
    teacher = copy.deepcopy(model.net).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    embeddings = torch.cat([st.embed(s) for s in styles])
    window = args.crop + 2 * args.shift
    pool = photo_pool([st.image(p, "photo") for p in photos], window)
    params = list(model.net.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / args.steps)))
    g = torch.Generator().manual_seed(args.seed)
    t0, m, c, s = time.time(), args.margin, args.crop, args.shift
    run = 0.0
    for step in range(1, args.steps + 1):
        wins = []
        for _ in range(args.batch):
            x = pool[int(torch.randint(len(pool), (1,), generator=g))]
            i = int(torch.randint(x.shape[-2] - window + 1, (1,), generator=g))
            j = int(torch.randint(x.shape[-1] - window + 1, (1,), generator=g))
            wins.append(x[..., i : i + window, j : j + window])
        win = torch.cat(wins)
        e = embeddings[torch.randint(len(embeddings), (args.batch,), generator=g)]
        a = torch.rand(args.batch, st.schema.n_layers, generator=g)
        a[:, : len(st.schema.content)] = 1.0
        with torch.no_grad():
            gamma, beta = model.cin_params(a, e)
            target = teacher(win, gamma, beta)

        xa, at_a = shifted(win, c, s, args.phase, g)
        if args.temporal <= 0:  # the original's output on the whole window, cut at the crop
            y = torch.cat([target[k : k + 1, :, dy : dy + c, dx : dx + c] for k, (dy, dx) in enumerate(at_a)])
            loss = (model.net(camera(xa, args.noise, args.gain, g), gamma, beta) - y)[..., m:-m, m:-m].pow(2).mean()
        else:  # the original's output on the same crop, and two shifted crops agreeing where they overlap
            with torch.no_grad():
                y = teacher(xa, gamma, beta)
            xb, at_b = shifted(win, c, s, args.phase, g)
            pa, pb = model.net(
                torch.cat([camera(xa, args.noise, args.gain, g), camera(xb, args.noise, args.gain, g)]),
                gamma.repeat(2, 1),
                beta.repeat(2, 1),
            ).chunk(2)
            loss = (pa - y)[..., m:-m, m:-m].pow(2).mean()
            diffs = []
            for k, ((ya, xa_), (yb, xb_)) in enumerate(zip(at_a, at_b)):
                top, left = max(ya, yb) + m, max(xa_, xb_) + m  # the overlap in window coordinates, less margins
                bottom, right = min(ya, yb) + c - m, min(xa_, xb_) + c - m
                ra = pa[k, :, top - ya : bottom - ya, left - xa_ : right - xa_]
                rb = pb[k, :, top - yb : bottom - yb, left - xb_ : right - xb_]
                diffs.append((ra - rb).pow(2).mean())
            loss = loss + args.temporal * torch.stack(diffs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        v = loss.item()
        run = 0.9 * run + 0.1 * v if step > 1 else v
        if step % 10 == 0:
            print(f"step {step}/{args.steps}: loss {v:.5f} (avg {run:.5f}) ({time.time() - t0:.0f} s)", flush=True)
        if step % args.every == 0 or step == args.steps:
            torch.save({k: v.detach().clone() for k, v in model.net.state_dict().items()}, out / f"net{step}.pt")
    recipe = (
        f"scripts/research/temporal_distill.py --steps {args.steps} --crop {c} --shift {s} --phase {args.phase} "
        f"--batch {args.batch} --temporal {args.temporal} --lr {args.lr} --noise {args.noise:.4f} "
        f"--gain {args.gain} --seed {args.seed} on {args.model}"
    )
    write_model(st, args.model, recipe, out / "export")
    print(f"wrote {out / 'export'} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
