"""Asymmetric slider gains: each style slider's term scaled by one factor below the middle and another above it.

Λ's bilinear Δ moves γ, β by g·(2α_l − 1)·head_l(h), g the half-gain of the half α_l is in
(``ModelConfig.slider_gain_low/high``; 1 unless calibrated). This probe multiplies those by ``lo_l`` and ``hi_l``
on top of the model, and measures controllability (ρ, L(1)/L(0), others at ½) and the span of
every style slider together (style losses at all-0, all-½, all-1), on seeded pairs of the train or val split.

    python scripts/research/asym_gain.py --lo 1,1,1 --hi 1,0.6,1 --split train --pairs 8
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch

from adjustable_style.evaluation.pairs import Pair, style_alpha
from adjustable_style.evaluation.sliders import controllability
from adjustable_style.evaluation.splits import shared_data_dir
from adjustable_style.image import load_image
from adjustable_style.measure import layer_losses
from adjustable_style.stylizer import Stylizer

SPLIT = Path(__file__).resolve().parents[2] / "configs/splits/shared_data.json"


def scale_half_gains(st: Stylizer, lo: list[float], hi: list[float]) -> None:
    """Scale each style slider's half-gains (``ModelConfig.slider_gain_low/high``) by ``lo`` and ``hi``, in place."""
    g = st.model.conditioning.half_gains
    n_c = len(st.schema.content)
    g[0, n_c:] *= torch.tensor(lo)
    g[1, n_c:] *= torch.tensor(hi)


def split_pairs(split: str, n: int, size: int, seed: int = 0) -> list[Pair]:
    data = shared_data_dir()
    names = json.loads(SPLIT.read_text())
    contents = sorted(names["content"][split])
    styles = sorted(names["style"][split])
    rng = random.Random(seed)
    chosen = [(rng.choice(contents), rng.choice(styles)) for _ in range(n)]
    return [
        Pair(k, data / "content" / c, data / "style" / s, load_image(data / "content" / c, size=size))
        for k, (c, s) in enumerate(chosen)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--lo", default="1,1,1")
    ap.add_argument("--hi", default="1,1,1")
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    scale_half_gains(st, [float(x) for x in args.lo.split(",")], [float(x) for x in args.hi.split(",")])
    pairs = split_pairs(args.split, args.pairs, args.size)
    res = controllability(st, pairs, 5, {})
    line = f"lo {args.lo} hi {args.hi} {args.split}:"
    for layer, r in res["layers"].items():
        line += f" {layer} rho {r['rho_median']:+.2f} ratio {r['ratio_median']:.3f} |"
    keys = list(st.schema.keys)
    style = [i for i, k in enumerate(keys) if k.startswith("style/")]
    ratios = {v: [] for v in (0.0, 1.0)}
    for p in pairs:
        rows = torch.cat([style_alpha(st, dict.fromkeys(st.style_layers, v)) for v in (0.0, 0.5, 1.0)])
        raw = layer_losses(st, st.stylize_alphas(p.content, p.style_path, rows, max_size=None), p.content, p.style_path)
        for v, i in ((0.0, 0), (1.0, 2)):
            ratios[v].append([float(raw[i, j] / raw[1, j]) for j in style])
    for v, rs in ratios.items():
        line += f" all{v:g}/mid " + "/".join(f"{statistics.median(r[k] for r in rs):.2f}" for k in range(len(style)))
    print(line, flush=True)


if __name__ == "__main__":
    main()
