"""Step-by-step objective of every fitted point of a pair preparation, for the optimiser's settings (cat × Water
Lilies, 256 px, bfloat16 autocast as the product uses here). Points in the order of ``end_alphas``: the middle,
each style slider's bottom and top, then the bottom and top corners.

With ``--corner-lr`` the corner rows train in the same batch as the rest at their own learning rate (0: left at
zero), their gradients kept off M and the ends (the fit before the corners got a stage of their own);
``--corner-stage K --stage-lr LR`` then fits the corners alone for K steps with the rest fixed (the shipped plan).

    python scripts/research/prep_trace.py --lr 0.05 --steps 10                           # the old fit
    python scripts/research/prep_trace.py --lr 0.03 --steps 10 --corner-lr 0             # corners left out
    python scripts/research/prep_trace.py --lr 0.03 --steps 10 --corner-lr 0 --corner-stage 6 --stage-lr 0.02
"""

from __future__ import annotations

import argparse

import torch
from prep_stages import setup

from adjustable_style.adapt import frozen_weights
from adjustable_style.losses import Targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--corner-lr", type=float, default=None, help="the corner rows' lr (default: --lr)")
    ap.add_argument("--corner-stage", type=int, default=0, help="steps on the corners alone afterwards")
    ap.add_argument("--stage-lr", type=float, default=0.03)
    ap.add_argument("--photo", default="examples/photo_cat.jpg")
    ap.add_argument("--painting", default="examples/painting_monet_water_lilies.jpg")
    args = ap.parse_args()
    torch.set_num_threads(1)
    f = setup(args.photo, args.painting)
    m, loss, c, stg, a, n, w, ema = f.m, f.loss, f.c, f.stg, f.a, f.n, f.w, f.ema
    gamma, beta, fast, ct = f.gamma, f.beta, f.fast, f.ct
    rest = torch.zeros(n - 2, gamma.shape[1] * 2, requires_grad=True)
    corners = torch.zeros(2, gamma.shape[1] * 2, requires_grad=True)
    corner_lr = args.lr if args.corner_lr is None else args.corner_lr
    opt = torch.optim.Adam([{"params": [rest]}, {"params": [corners], "lr": corner_lr}], lr=args.lr)
    fast = torch.autocast("cpu", dtype=torch.bfloat16)
    with fast:
        ct = loss.content_targets(c)

    def objectives(points: slice, e_for_rest: torch.Tensor, e_for_corners: torch.Tensor) -> torch.Tensor:
        """Per-point objectives of ``points``; the corner points see ``e_for_corners``, the others ``e_for_rest``."""
        idx = range(n)[points]
        shift = torch.stack([w[i] @ (e_for_corners if i >= n - 2 else e_for_rest) for i in idx])
        dg, db = shift.chunk(2, 1)
        b = len(idx)
        tg = Targets({k: v.expand(b, *v.shape[1:]) for k, v in ct.items()}, stg)
        with fast:
            raw = loss.raw_losses(m.net(c.expand(b, -1, -1, -1), gamma[points] + dg, beta[points] + db), tg)
        return (a[points] * raw.float() / ema).sum(1)

    with frozen_weights(m):
        for step in range(args.steps + 1):
            per = objectives(slice(0, n), torch.cat([rest, corners]), torch.cat([rest.detach(), corners]))
            print(step, " ".join(f"{v:.3f}" for v in per.tolist()), flush=True)
            if step == args.steps:
                break
            opt.zero_grad()
            per.mean().backward()
            opt.step()
        if args.corner_stage:
            opt2 = torch.optim.Adam([corners], lr=args.stage_lr)
            for step in range(args.corner_stage + 1):
                per = objectives(slice(n - 2, n), None, torch.cat([rest.detach(), corners]))
                print("corners", step, " ".join(f"{v:.3f}" for v in per.tolist()), flush=True)
                if step == args.corner_stage:
                    break
                opt2.zero_grad()
                per.mean().backward()
                opt2.step()


if __name__ == "__main__":
    main()
