"""What one pair preparation costs: `Stylizer.prepare` on cat × Water Lilies at 256 px (or `--size`), per
step and in all, for a named fit, with bfloat16 autocast or float32 and a given number of torch threads.

    python scripts/research/prep_cost.py --bf16 on --threads 1
    python scripts/research/prep_cost.py --preset quick --size 1024
    OMP_WAIT_POLICY=PASSIVE python scripts/research/prep_cost.py --bf16 on --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bf16", choices=("on", "off"), default="on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="full", help="the named fit (quick, full)")
    ap.add_argument("--steps", type=int, default=None, help="overrides of the preset's settings")
    ap.add_argument("--corner-steps", type=int, default=None)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = Stylizer.load()
    ticks: list[float] = []
    t0 = time.time()
    prep = st.prepare(
        "examples/photo_cat.jpg",
        "examples/painting_monet_water_lilies.jpg",
        max_size=args.size,
        bf16=args.bf16 == "on",
        preset=args.preset,
        progress=lambda i, n, obj: ticks.append(time.time()),
        **{k: v for k in ("steps", "corner_steps", "crop", "lr") if (v := getattr(args, k)) is not None},
    )
    steps = [b - a for a, b in zip([t0, *ticks], ticks)]
    print(
        f"bf16 {args.bf16}, {args.threads} thread(s), {prep.meta['size']} px: {time.time() - t0:.1f} s in all; "
        f"steps {' '.join(f'{s:.2f}' for s in steps)} s (the first includes the style's targets and the embedding)"
    )


if __name__ == "__main__":
    main()
