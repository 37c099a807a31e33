"""Pair preparation with a per-coordinate step size: each γ, β column's Adam step scaled by how much Λ itself moves
that column when the sliders move (the std of Λ's γ, β over random α for the pair's painting, RMS-normalised,
plus a floor), judged against the cached L-BFGS references like ``pair_prep.py --product``.

    python scripts/research/prep_precond.py --pairs 4 --steps 4 --corner-steps 2 --crop 128 --lr 0.05 --floor 0.1
    python scripts/research/prep_precond.py --pairs 4 --floor -1   # no preconditioner (the shipped full fit)
    python scripts/research/prep_precond.py --preset quick --steps 3 --corner-steps 1 --lr 0.06 --floor -1 --up 0.5
"""

from __future__ import annotations

import argparse
import time

import torch
from slider_agreement import judge, load_pairs, show

from adjustable_style import prepare as prep_mod
from adjustable_style.stylizer import Stylizer


class ScaledAdam(torch.optim.Adam):
    """Adam whose update of a (rows, 2C) tensor is multiplied column-wise by ``ScaledAdam.scale``, and in the first
    stage (M, then each slider's bottom and top end) the top ends' rows by ``ScaledAdam.up``."""

    scale: torch.Tensor | None = None
    up: float = 1.0

    @torch.no_grad()
    def step(self, closure=None):
        before = [p.detach().clone() for g in self.param_groups for p in g["params"]]
        out = super().step(closure)
        for p, b in zip((p for g in self.param_groups for p in g["params"]), before):
            step = (p - b) * (self.scale if self.scale is not None else 1.0)
            if self.up != 1.0 and p.shape[0] > 2:  # the first stage: rows M, (bottom, top) per slider
                step[2::2] *= self.up
            p.copy_(b + step)
        return out


def column_scale(st: Stylizer, style, floor: float, samples: int = 64) -> torch.Tensor | None:
    """(2C,) how far Λ moves each γ, β column across α ~ U(lo, hi) for this painting, RMS 1, plus ``floor``."""
    if floor < 0:
        return None
    e = st.embed(style)
    lo, hi = st.alpha_range
    g = torch.Generator().manual_seed(0)
    a = lo + (hi - lo) * torch.rand(samples, len(st.schema.keys), generator=g)
    with torch.no_grad():
        gamma, beta = st.model.cin_params(a, e.expand(samples, -1))
    s = torch.cat([gamma, beta], 1).std(0)
    s = s / s.pow(2).mean().sqrt() + floor
    return s / s.pow(2).mean().sqrt()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--corner-steps", type=int, default=6)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--floor", type=float, default=0.1, help="added to the RMS-1 column std; < 0: no scaling")
    ap.add_argument("--cache", default="/work/long_run/refs")
    ap.add_argument("--preset", default="full", help="the product's named fit the flags override")
    ap.add_argument("--up", type=float, default=1.0, help="scale of the top ends' steps in the first stage")
    args = ap.parse_args()
    torch.set_num_threads(1)
    prep_mod.torch.optim.Adam = ScaledAdam  # fit_ends builds its optimiser from torch.optim.Adam
    ScaledAdam.up = args.up
    st = Stylizer.load("default")
    pairs = load_pairs(args.pairs)
    for k, _, s, content in pairs:
        ScaledAdam.scale = column_scale(st, s, args.floor)
        t0 = time.time()
        st.prepare(content, s, None, steps=args.steps, corner_steps=args.corner_steps, crop=args.crop, lr=args.lr)
        print(f"pair {k} ({s.name}): fitted in {time.time() - t0:.1f} s", flush=True)
    med = judge(st, "ema", args.cache, pairs)
    show(med, f"{args.preset}: {args.steps}+{args.corner_steps} steps, lr {args.lr}, floor {args.floor}, up {args.up}")
    for n, rs in med["rows"].items():
        print(n, " ".join(f"{r['cos']:+.2f}/{r['own']:.2f}" for r in rs))


if __name__ == "__main__":
    main()
