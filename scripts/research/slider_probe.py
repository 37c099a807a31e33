"""Quick held-out check of a model's sliders, checkpoint by checkpoint (a cheap subset of `adjustable-style evaluate`).

For each model and each held-out content/style pair (the split's val photos × val styles, seeded choice as in
`evaluate`): each style slider at 0 and at 1 with the others at 0.5 ("own ratio" = that layer's loss at 1 / at 0),
every style slider at 1 and at 0 against the base network's own output on the same pair ("top / base" for the
style losses, "bottom / base" for the content loss). Medians over pairs; one Markdown row per model.

Usage:
    python scripts/research/slider_probe.py MODEL [MODEL ...] [--pairs 8] [--size 256] [--adapters DIR]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from adjustable_style.evaluation import EvalSettings, choose_pairs, find_images
from adjustable_style.image import load_image
from adjustable_style.measure import layer_losses
from adjustable_style.stylizer import Stylizer


def probe(model: str, pairs: list, size: int, device: str = "cpu", adapters: str | None = None) -> dict[str, float]:
    st = Stylizer.load(model, device=device)
    if adapters:  # slider adapters (adjustable-style adapt), each used for its own painting
        st.add_adapters_from(adapters)
    keys = list(st.schema.keys)
    style = st.style_layers
    own: dict[str, list[float]] = {n: [] for n in style}
    top: dict[str, list[float]] = {n: [] for n in style}
    bottom: list[float] = []
    for c_path, s_path in pairs:
        c = load_image(c_path, size=size)
        rows = []
        for n in style:
            for v in (0.0, 1.0):
                rows.append(st.check_weights({m: (v if m == n else 0.5) for m in style}))
        rows += [st.check_weights(dict.fromkeys(style, 0.0)), st.check_weights(dict.fromkeys(style, 1.0))]
        imgs = st.stylize_alphas(c, s_path, torch.cat(rows), max_size=None)
        if st.has_base:
            imgs = torch.cat([imgs, st.stylize_base(c, s_path, max_size=None)])
        raw = layer_losses(st, imgs, c, s_path)
        for i, n in enumerate(style):
            j = keys.index(f"style/{n}")
            own[n].append(float(raw[2 * i + 1, j] / raw[2 * i, j]))
        k = 2 * len(style)
        if st.has_base:
            for n in style:
                j = keys.index(f"style/{n}")
                top[n].append(float(raw[k + 1, j] / raw[k + 2, j]))
            bottom.append(float(raw[k, 0] / raw[k + 2, 0]))
    med = statistics.median
    out = {f"own {n}": med(v) for n, v in own.items()}
    if bottom:
        out |= {f"top/base {n}": med(v) for n, v in top.items()} | {"bottom/base content": med(bottom)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--adapters", default=None, metavar="DIR", help="also probe each model with these slider adapters")
    args = ap.parse_args()
    contents, styles, where = find_images(EvalSettings())
    pairs = choose_pairs(contents, styles, args.pairs, args.seed)
    print(f"{len(pairs)} held-out pairs from {where}, {args.size} px; medians over pairs\n")
    header = False
    runs = [(m, None) for m in args.models] + ([(m, args.adapters) for m in args.models] if args.adapters else [])
    for m, adapters in runs:
        row = probe(m, pairs, args.size, args.device, adapters)
        m = f"{m} + adapters" if adapters else m
        if not header:
            print("| model | " + " | ".join(row) + " |")
            print("|---" * (len(row) + 1) + "|")
            header = True
        print(f"| {m} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
