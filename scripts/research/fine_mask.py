"""A slider's Δ term restricted to T's fine-scale CIN layers (up1, up2, out), judged against the L-BFGS references.

The relu2_2 slider changes coarse structure where the exact optimum changes fine texture. This probe zeroes one
slider's bilinear term on every CIN layer except the chosen ones (and its shift of the embedding, which reaches every
layer through the base maps), optionally scaling what is left, and judges the model with ``slider_agreement.judge``:

    python scripts/research/fine_mask.py --layer relu2_2 --keep up1,up2,out --scale 1,2,3 --pairs 8
"""

from __future__ import annotations

import argparse

import torch
from slider_agreement import judge, load_pairs, show

from adjustable_style.stylizer import Stylizer


def mask_term(st: Stylizer, layer: str, keep: list[str], scale: float, embedding: bool = True) -> None:
    lam, net = st.model.conditioning, st.model.net
    term = 1 + list(st.schema.keys).index(f"style/{layer}")
    c = net.cin_channels
    keep_mask = torch.zeros(c, dtype=torch.bool)
    start = 0
    for name, n in net.cin_layers:
        if any(name.startswith(k) for k in keep):
            keep_mask[start : start + n] = True
        start += n
    m = torch.cat([keep_mask, keep_mask]).float() * scale  # γ then β
    with torch.no_grad():
        w = lam.delta_params.weight.view(lam.terms, 2 * c, -1)
        b = lam.delta_params.bias.view(lam.terms, 2 * c)
        w[term] *= m[:, None]
        b[term] *= m
        if lam.delta_embedding is not None and embedding:
            d = lam.delta_embedding.weight.shape[0] // lam.terms
            lam.delta_embedding.weight.view(lam.terms, d, -1)[term] = 0
            lam.delta_embedding.bias.view(lam.terms, d)[term] = 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="relu2_2")
    ap.add_argument("--keep", default="up1,up2,out")
    ap.add_argument("--scale", default="1")
    ap.add_argument("--keep-embedding", action="store_true", help="leave the term's embedding shift alone")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--cache", default="/work/long_run/refs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.pairs, first=args.first)
    for s in args.scale.split(","):
        st = Stylizer.load("default", backend="torch")
        mask_term(st, args.layer, args.keep.split(","), float(s), not args.keep_embedding)
        show(judge(st, "ema", args.cache, pairs), f"{args.layer} kept on {args.keep} x {s}")


if __name__ == "__main__":
    main()
