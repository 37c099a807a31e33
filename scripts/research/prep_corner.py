"""Every style slider at 1 against every one at 0.5, on prepared pairs: does doubling every style weight lower
every style loss, as it does for the exact optimum? Prepares evaluate's first N held-out pairs (256 px) with the
shipped fit and prints each style loss and the content loss at the top corner ÷ at the middle.

    python scripts/research/prep_corner.py --pairs 8
"""

from __future__ import annotations

import argparse

import torch
from slider_agreement import load_pairs

from adjustable_style.measure import layer_losses
from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = Stylizer.load()
    keys = list(st.schema.keys)
    for k, _, s, content in load_pairs(args.pairs):
        st.prepare(content, s, None)
        loss = {}
        for v in (0.5, 1.0):
            img = st.stylize(content, s, dict.fromkeys(st.style_layers, v), max_size=None)
            loss[v] = layer_losses(st, img, content, s)[0]
        style = [
            float(loss[1.0][keys.index(f"style/{n}")] / loss[0.5][keys.index(f"style/{n}")]) for n in st.style_layers
        ]
        print(
            f"{k} {s.name}: all-1 / all-0.5 style " + " ".join(f"{x:.2f}" for x in style),
            f"content {float(loss[1.0][0] / loss[0.5][0]):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
