"""Summarise training runs from their CSV logs: per-layer raw losses early vs late, EMA, speed.

Usage:
    python scripts/research/train_summary.py RUN_DIR [RUN_DIR ...] [--window 100] [--batch-size 4]

RUN_DIR is a CSV-logger version folder (``runs/quick/version_0``); several folders are one run resumed
across them (the README's default model: ``v1`` then ``v2``). Speed comes from the modification times of the
last two step checkpoints in the last folder, so it measures the run's final stretch.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
from pathlib import Path

KEYS = ("content/relu3_4", "style/relu2_2", "style/relu3_4", "style/relu4_4", "tv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--window", type=int, default=100, help="steps averaged at each end (median)")
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        with open(run / "metrics.csv", newline="") as f:
            rows += [r for r in csv.DictReader(f) if r.get("train/style/relu2_2")]
    rows.sort(key=lambda r: int(r["step"]))
    last = int(rows[-1]["step"]) + 1
    print(f"steps logged: {len(rows)} rows, last step {last}")
    for name, lo, hi in (("first", 0, args.window), ("last", last - args.window, last)):
        sel = [r for r in rows if lo <= int(r["step"]) < hi]
        med = {k: statistics.median(float(r[f"train/{k}"]) for r in sel) for k in KEYS}
        print(
            f"median raw loss, {name} {args.window} steps ({len(sel)} rows): "
            + ", ".join(f"{k} {v:.3g}" for k, v in med.items())
        )
    ema = {k.split("train/")[1]: float(v) for k, v in rows[-1].items() if "_ema/" in k and v}
    print("EMA at the end: " + ", ".join(f"{k} {v:.3g}" for k, v in ema.items()))
    ckpts = sorted((args.runs[-1] / "checkpoints").glob("step*.ckpt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    if len(ckpts) >= 2:
        a, b = ckpts[-2:]
        steps = int(re.findall(r"\d+", b.stem)[0]) - int(re.findall(r"\d+", a.stem)[0])
        dt = b.stat().st_mtime - a.stat().st_mtime
        print(f"speed ({a.name} → {b.name}): {dt / steps:.2f} s/step, {steps * args.batch_size / dt:.2f} img/s")


if __name__ == "__main__":
    main()
