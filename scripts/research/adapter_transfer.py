"""Do slider adapters carry over between paintings? Leave-one-out over a folder of adapters: each painting gets the
adapter of its nearest *other* painting (cosine of the style embeddings), or the mean of all the others, written
under its own digest so that ``slider_agreement.py judge --adapters OUT`` judges it on the painting's pairs.

    python scripts/research/adapter_transfer.py --adapters reports/eval_adapters/adapters \
        --styles ../shared/data/style --mode nearest -o /tmp/nn
    python scripts/research/slider_agreement.py judge --objective ema --pairs 8 --adapters /tmp/nn
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adjustable_style.adapt import Adapter, load_adapter, save_adapter
from adjustable_style.stylizer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", required=True, help="folder of adapters named <painting stem>.safetensors")
    ap.add_argument("--styles", required=True, help="folder holding those paintings")
    ap.add_argument("--mode", choices=("nearest", "mean"), default="nearest")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = Stylizer.load("default")
    files = sorted(Path(args.adapters).glob("*.safetensors"))
    paintings = [next(Path(args.styles).glob(f.stem + ".*")) for f in files]
    ads = [load_adapter(f, st.model) for f in files]
    emb = torch.nn.functional.normalize(torch.cat([st.embed(p) for p in paintings]), dim=1)
    sim = emb @ emb.T
    for i, p in enumerate(paintings):
        others = [j for j in range(len(files)) if j != i]
        if args.mode == "nearest":
            j = max(others, key=lambda j: float(sim[i, j]))
            d, src = ads[j].offsets, f"{paintings[j].name} (cosine {float(sim[i, j]):.2f})"
        else:
            d, src = torch.stack([ads[j].offsets for j in others]).mean(0), f"mean of {len(others)}"
        save_adapter(Adapter(d, st.style_digest(p), {**ads[i].meta, "transfer": src}), Path(args.out, files[i].name))
        print(f"{p.name} <- {src}")


if __name__ == "__main__":
    main()
