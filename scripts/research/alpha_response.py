"""How strongly a model's sliders act, checkpoint by checkpoint: the loss change each sweep produces.

Usage:
    python scripts/research/alpha_response.py MODEL [MODEL ...] [--content PHOTO] [--style PAINTING] [--others 0.1]

MODEL is anything ``Stylizer.load`` takes (a ``.ckpt``, an export folder, a bundled name). For each style layer
the layer's slider goes 0 → 1 with the other style sliders at ``--others``; the printed number is the change
of *that layer's* raw style loss (negative = the slider does what the paper says). Then every style slider
goes 0 → 1 together: the change of the content loss (should rise) and of each style loss (should fall).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from adjustable_style.measure import layer_losses
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[2]


def _change(losses: torch.Tensor, col: int) -> float:
    return float((losses[-1, col] - losses[0, col]) / losses[0, col] * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--content", default=str(ROOT / "examples" / "photo_cat.jpg"))
    ap.add_argument("--style", default=str(ROOT / "examples" / "painting_vangogh_starry_night.jpg"))
    ap.add_argument("--others", type=float, default=0.1, help="the other style sliders during a one-layer sweep")
    ap.add_argument("--max-size", type=int, default=256)
    args = ap.parse_args()
    header = None
    for model in args.models:
        st = Stylizer.load(model, device="cpu")
        keys, layers = st.schema.keys, st.style_layers
        if header is None:
            header = ["model"] + [f"{n} alone" for n in layers] + [f"all → {k}" for k in keys]
            print(" | ".join(header))
            print("|".join(["---"] * len(header)))
        row = [re.sub(r"^step0*(\d)", r"step \1", Path(model).stem)]
        for n in layers:
            others = {m: args.others for m in layers if m != n}
            imgs, _ = st.sweep(args.content, args.style, n, steps=2, weights=others, max_size=args.max_size)
            row.append(f"{_change(layer_losses(st, imgs, args.content, args.style), keys.index('style/' + n)):+.1f}%")
        imgs, _ = st.sweep(args.content, args.style, "all", steps=2, max_size=args.max_size)
        losses = layer_losses(st, imgs, args.content, args.style)
        row += [f"{_change(losses, keys.index(k)):+.1f}%" for k in keys]
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
