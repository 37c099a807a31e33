"""The quick and the full pair preparation at a larger output size (where both fit on crops of the photo), judged
by each slider's own-layer loss ratio (`measure.slider_strength`: own loss at 1 ÷ at 0, the others at 0.5) against
the model's own sliders, on evaluate's held-out pairs; no L-BFGS reference at this size.

    python scripts/research/prep_sizes.py --pairs 4 --size 512
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from slider_agreement import load_pairs

from adjustable_style.measure import slider_strength
from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quick-crop", type=int, default=None, help="the quick fit's crop (default: the preset's)")
    ap.add_argument("--fits", default="own,quick,full")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[dict[str, float]]] = {f: [] for f in args.fits.split(",")}
    for k, _, s, content in load_pairs(args.pairs, size=args.size):
        for fit in rows:
            st = Stylizer.load("default")
            t0 = time.time()
            if fit != "own":
                crop = {"crop": args.quick_crop} if fit == "quick" and args.quick_crop else {}
                st.prepare(content, s, max_size=None, preset=fit, **crop)
            sec = time.time() - t0
            r = slider_strength(st, content, s, size=None)
            rows[fit].append(r)
            print(f"pair {k} {s.name} {fit}: {' '.join(f'{v:.2f}' for v in r.values())} ({sec:.1f} s)", flush=True)
    for fit, rs in rows.items():
        med = [statistics.median(r[n] for r in rs) for n in rs[0]]
        print(f"median own ratio, {fit}: {' / '.join(f'{v:.2f}' for v in med)}")


if __name__ == "__main__":
    main()
