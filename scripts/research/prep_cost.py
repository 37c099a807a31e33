"""What one pair preparation costs: `Stylizer.prepare` on cat × Water Lilies at 256 px (or `--size`), per
step and in all, for a named fit, with bfloat16 autocast or float32 and a given number of torch threads.

    python scripts/research/prep_cost.py --bf16 on --threads 1
    python scripts/research/prep_cost.py --preset quick --size 1024
    python scripts/research/prep_cost.py --preset quick --loss-net vgg19,lowrank --repeat 3   # side by side
    python scripts/research/prep_cost.py --preset quick --plain-ends --repeat 3   # with and without orthogonal ends
    python scripts/research/prep_cost.py --preset quick --repeat 5 \
        --versus '{"steps": 3, "crop_share": 0.5, "orthogonal_ends": ["relu2_2", "relu3_4"]}'   # against other settings
    OMP_WAIT_POLICY=PASSIVE python scripts/research/prep_cost.py --bf16 on --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bf16", choices=("on", "off"), default="on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="full", help="the named fit (quick, medium, full)")
    ap.add_argument("--steps", type=int, default=None, help="overrides of the preset's settings")
    ap.add_argument("--corner-steps", type=int, default=None)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--loss-net", default=None, help="vgg19, lowrank, or both comma-separated (default: the preset's)")
    ap.add_argument("--plain-ends", action="store_true", help="alternate with the preset's orthogonal_ends off")
    ap.add_argument("--versus", default=None, help="alternate with these settings (JSON) over the preset's")
    ap.add_argument("--repeat", type=int, default=1, help="fits per loss network, alternating; prints the median")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = Stylizer.load()
    overrides = {k: v for k in ("steps", "corner_steps", "crop", "lr") if (v := getattr(args, k)) is not None}
    nets = args.loss_net.split(",") if args.loss_net else [None]
    runs: dict[str, dict] = {}  # name -> settings over the preset's, fitted in turn
    for net in nets:
        for plain in (False, True) if args.plain_ends else (False,):
            name = (net or args.preset) + (", plain ends" if plain else "")
            runs[name] = {**({"loss_net": net} if net else {}), **({"orthogonal_ends": ()} if plain else {})}
    if args.versus:
        runs[f"{args.preset}, {args.versus}"] = json.loads(args.versus)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, settings in runs.items():
            st.remove_preparations()
            ticks: list[float] = []
            t0 = time.time()
            prep = st.prepare(
                "examples/photo_cat.jpg",
                "examples/painting_monet_water_lilies.jpg",
                max_size=args.size,
                bf16=args.bf16 == "on",
                preset=args.preset,
                progress=lambda i, n, obj, ticks=ticks: ticks.append(time.time()),
                **{**overrides, **settings},
            )
            seconds[name].append(time.time() - t0)
            steps = [b - a for a, b in zip([t0, *ticks], ticks)]
            print(
                f"{name} ({prep.meta['loss_net']}), bf16 {args.bf16}, {args.threads} thread(s), "
                f"{prep.meta['size']} px: {seconds[name][-1]:.1f} s in all; "
                f"steps {' '.join(f'{s:.2f}' for s in steps)}"
                " s (the first includes the style's targets and the embedding)",
                flush=True,
            )
    for name, s in seconds.items():
        print(f"median {name}: {sorted(s)[len(s) // 2]:.2f} s over {len(s)}")


if __name__ == "__main__":
    main()
