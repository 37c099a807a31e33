"""Write a copy of a training checkpoint whose loss-normalisation EMA holds given values.

Used for the shipped model: its run was resumed with ``loss.ema_decay=1`` and the normalisers set back to the
loss scale of the run's first logged step (the untrained network), which makes the objective linear in the
losses instead of ≈ Σ α·log L (see the README, "The shipped model").

Usage:
    python scripts/research/set_checkpoint_ema.py IN.ckpt OUT.ckpt content/relu3_4=1.76e6 style/relu2_2=4.37e9 ...
    python scripts/research/set_checkpoint_ema.py IN.ckpt OUT.ckpt --from-metrics RUN/metrics.csv   # first logged EMA

Only for checkpoints of your own runs (it unpickles the Lightning checkpoint). OUT must not exist.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from adjustable_style.layers import LayerSchema


def first_logged_ema(metrics: Path) -> dict[str, float]:
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            values = {k.split("train/")[1].replace("_ema", ""): float(v) for k, v in row.items() if "_ema/" in k and v}
            if values:
                return values
    raise SystemExit(f"error: no EMA values logged in {metrics}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("values", nargs="*", help="KEY=VALUE for layer keys such as style/relu2_2")
    ap.add_argument("--from-metrics", type=Path, help="take the values from the first logged row of this CSV")
    args = ap.parse_args()
    if args.dst.exists():
        raise SystemExit(f"error: {args.dst} exists; choose a new output path")
    values = first_logged_ema(args.from_metrics) if args.from_metrics else {}
    for item in args.values:
        key, _, v = item.partition("=")
        values[key] = float(v)
    ckpt = torch.load(args.src, map_location="cpu", weights_only=False)
    loss = ckpt["hyper_parameters"]["config"]["loss"]
    schema = list(LayerSchema(content=tuple(loss["content_layers"]), style=tuple(loss["style_layers"])).keys)
    unknown = set(values) - set(schema)
    if unknown or not values:
        raise SystemExit(f"error: give values for the layer keys {schema}; unknown: {sorted(unknown)}")
    ema = ckpt["state_dict"]["loss.ema"]
    for i, key in enumerate(schema):
        if key in values:
            ema[i] = values[key]
    print("EMA now: " + ", ".join(f"{k} {float(v):.3g}" for k, v in zip(schema, ema)), file=sys.stderr)
    tmp = args.dst.with_name(args.dst.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(args.dst)


if __name__ == "__main__":
    main()
