"""Each loss term of the paper's objective (raw loss / the model's stored EMA) at the model's output with every
slider at 0.5, and at the photo itself, on evaluate's held-out pairs: how much each layer weighs in the objective a
slider adapter is fitted on.

    python scripts/research/ema_terms.py [--pairs 8]
"""

from __future__ import annotations

import argparse

import torch
from slider_agreement import load_pairs

from adjustable_style.evaluation.pairs import style_alpha
from adjustable_style.evaluation.slider_effect import _raw_losses, _style_targets
from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = Stylizer.load(args.model)
    ema = st.exported.loss_module().ema.flatten()
    print("terms:", ", ".join(st.schema.keys), "| EMA:", ", ".join(f"{x:.3g}" for x in ema.tolist()))
    for k, _, s, content in load_pairs(args.pairs):
        grams = _style_targets(st, st.style_image(s))
        y = st.stylize_alphas(content, s, style_alpha(st, dict.fromkeys(st.style_layers, 0.5)), max_size=None)
        mid, photo = (_raw_losses(st, x, content, grams)[0] / ema for x in (y, content))
        print(
            f"pair {k} ({s.name}): middle "
            + " ".join(f"{x:.2f}" for x in mid.tolist())
            + " | photo "
            + " ".join(f"{x:.2f}" for x in photo.tolist())
        )


if __name__ == "__main__":
    main()
