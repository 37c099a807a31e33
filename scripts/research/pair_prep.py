"""Per-pair slider preparation: free γ, β offsets fitted for one photo/painting pair at each end of every style
slider (the others at 0.5; eq. 9, the objective `optimize` uses), all six ends in one batch, then judged with
`slider_agreement.py`'s measure against the cached L-BFGS references. Between the ends a slider interpolates
linearly from the middle: γ, β += Σ_l max(2α_l − 1, 0) · H_l + max(1 − 2α_l, 0) · L_l.

    python scripts/research/pair_prep.py --pairs 8 --steps 20 --lr 0.03
    python scripts/research/pair_prep.py --pairs 8 --steps 10 --lr 0.05 --product [--crop 192]
    python scripts/research/pair_prep.py --pairs 4 --steps 10 --lr 0.03 --product --corner-steps 6 --bf16 off
    python scripts/research/pair_prep.py --pairs 4 --steps 10 --lr 0.03 --product --relative-ends on

``--product`` fits with the shipped code (``Stylizer.prepare``; ``--crop`` below 256 fits on random crops of the
photo at its own scale, as the product does for outputs larger than the crop) and judges the Stylizer's own renders.
"""

from __future__ import annotations

import argparse
import ast
import time

import torch
from slider_agreement import judge, load_pairs, show

from adjustable_style.evaluation.pairs import style_alpha
from adjustable_style.evaluation.slider_effect import _style_targets
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer


def end_alphas(st: Stylizer) -> torch.Tensor:
    """(2L, K): row 2i = style slider i at 0, row 2i + 1 = at 1, the others at 0.5."""
    mid = style_alpha(st, dict.fromkeys(st.style_layers, 0.5))
    keys = list(st.schema.keys)
    rows = []
    for layer in st.style_layers:
        j = keys.index(f"style/{layer}")
        for v in (0.0, 1.0):
            a = mid.clone()
            a[0, j] = v
            rows.append(a)
    return torch.cat(rows)


def fit_pair(st: Stylizer, content, style_path, steps: int, lr: float) -> torch.Tensor:
    """(2L, 2C) free offsets, one per slider end."""
    model, loss = st.model, st.exported.loss_module()
    e = st.embed(style_path)
    a = end_alphas(st)
    n = a.shape[0]
    ema = loss.ema.clamp_min(1e-12).reshape(1, -1)
    grams = _style_targets(st, st.style_image(style_path))
    c = content.expand(n, -1, -1, -1)
    tg = Targets(loss.content_targets(c), grams)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        g0, b0 = model.cin_params(a, e.expand(n, -1))
    d = torch.zeros(n, g0.shape[1] + b0.shape[1], requires_grad=True)
    opt = torch.optim.Adam([d], lr=lr)
    for _ in range(steps):
        dg, db = d.chunk(2, 1)
        obj = (a * loss.raw_losses(model.net(c, g0 + dg, b0 + db), tg) / ema).sum()
        opt.zero_grad()
        obj.backward()
        opt.step()
    return d.detach()


def prepared_renderer(st: Stylizer, offsets: dict[int, torch.Tensor]):
    keys = list(st.schema.keys)
    cols = [keys.index(f"style/{layer}") for layer in st.style_layers]

    def renderer(k, content, style_path):
        d = offsets[k]
        e = st.embed(style_path)

        def render(content, s, alphas):
            with torch.no_grad():
                g, b = st.model.cin_params(alphas, e.expand(alphas.shape[0], -1))
                s2 = 2 * alphas[:, cols] - 1  # (B, L)
                w = torch.stack([(-s2).clamp_min(0), s2.clamp_min(0)], 2).reshape(alphas.shape[0], -1)  # (B, 2L)
                dg, db = (w @ d).chunk(2, 1)
                return st.model.net(content.expand(alphas.shape[0], -1, -1, -1), g + dg, b + db).float()

        return render

    return renderer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="/work/long_run/refs")
    ap.add_argument("--product", action="store_true", help="fit with Stylizer.prepare and judge its renders")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--corner-steps", type=int, default=6, help="the corners' own stage (--product)")
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="autocast in the fit (--product)")
    ap.add_argument("--preset", default="full", help="the product's named fit whose settings the flags override")
    ap.add_argument("--relative-ends", choices=("on", "off"), default=None, help="each end learns beyond the middle")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other PrepareSettings field")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = Stylizer.load("default")
    pairs = load_pairs(args.pairs, first=args.first)
    offsets = {}
    bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
    for k, _, s, content in pairs:
        t0 = time.time()
        if args.product:
            fit = dict(steps=args.steps, lr=args.lr, crop=args.crop, corner_steps=args.corner_steps, bf16=bf16)
            if args.relative_ends:
                fit["relative_ends"] = args.relative_ends == "on"
            for kv in args.set:
                k, v = kv.split("=", 1)
                fit[k] = {"True": True, "False": False}[v] if v in ("True", "False") else ast.literal_eval(v)
            st.prepare(content, s, None, preset=args.preset, **fit)
        else:
            offsets[k] = fit_pair(st, content, s, args.steps, args.lr)
        print(f"pair {k} ({s.name}): fitted in {time.time() - t0:.0f} s", flush=True)
    renderer = None if args.product else prepared_renderer(st, offsets)
    med = judge(st, "ema", args.cache, pairs, renderer=renderer)
    show(med, f"per-pair preparation, {args.steps} steps at lr {args.lr}, crop {args.crop}, product {args.product}")
    for n, rs in med["rows"].items():
        print(n, " ".join(f"{r['cos']:+.2f}/{r['own']:.2f}" for r in rs))


if __name__ == "__main__":
    main()
