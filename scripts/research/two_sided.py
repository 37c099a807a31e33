"""Slider adapters whose two halves are fitted apart (D of 1 + 2L rows), to judge against the mirrored ones.

Needs ``two_sided_adapters.patch`` (next to this script) applied to src/ — it was not kept, see
docs/magenta_finetune.md — then fits one adapter per painting with ``FitSettings(two_sided=True)`` (otherwise
`adjustable-style adapt`'s defaults) where ``slider_agreement.py judge --adapters DIR`` reads it:

    git apply scripts/research/two_sided_adapters.patch
    python scripts/research/two_sided.py PAINTING [PAINTING ...] -o DIR [--steps 60]
    python scripts/research/slider_agreement.py judge --objective ema --first K --pairs 1 --adapters DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adjustable_style.adapt import save_adapter
from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paintings", nargs="+")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = Stylizer.load("default")
    for p in args.paintings:
        ad = st.fit_adapter(p, steps=args.steps, two_sided=True)
        out = save_adapter(ad, Path(args.out, Path(p).stem + ".safetensors"))
        print(f"wrote {out} ({ad.meta['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
