"""Does freeing the transformer T give one slider more room? A per-pair ceiling with and without T's weights.

For held-out content/style pairs and one style layer (default relu4_4): fit the two ends of that layer's slider (its α
at 0 and at 1, the other style α 0.5, content 1) under the training objective — losses divided by the base
network's own losses on the same crop, style terms × the recipe's gain — on random crops of the photo at the
evaluation's scale, then measure the layer's own ratio (loss at α = 1 / at α = 0) on the whole photo. Variants:

* ``gb``: free γ, β offsets per end, T frozen (what any Λ could do for this pair);
* ``gbT``: γ, β offsets *and* a copy of all of T's weights per end (two different networks: an upper bound);
* ``shared``: one copy of T shared by both ends, γ, β offsets per end (what joint training of T and Λ aims at).

``--widen k`` starts from T widened k× (each channel copied k times, same function up to a little symmetry-breaking
noise): does more capacity give the slider more room?

Usage:
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python scripts/research/t_headroom.py \\
        [--variants gb gbT shared] [--styles monet stone]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import torch

from adjustable_style.evaluation import EvalSettings, choose_pairs, find_images
from adjustable_style.image import load_image
from adjustable_style.losses import Targets
from adjustable_style.model import ModelConfig, StyleTransferNet
from adjustable_style.stylizer import Stylizer

VARIANTS = ("gb", "gbT", "shared")


def widen(
    net: StyleTransferNet, config: ModelConfig, k: int, noise: float = 1e-3, seed: int = 0
) -> tuple[StyleTransferNet, torch.Tensor]:
    """T with k× the channels computing the same function (Net2Wider: each channel copied k times, every conv's
    input weights divided by k; small noise breaks the symmetry) and the index that maps its flat γ, β to T's."""
    cfg = dataclasses.replace(config, channels=tuple(k * c for c in config.channels))
    wide = StyleTransferNet(cfg)
    g = torch.Generator().manual_seed(seed)
    old = dict(net.named_parameters())
    with torch.no_grad():
        for name, p in wide.named_parameters():
            q = old[name]
            idx = [torch.arange(n) % m for n, m in zip(p.shape[:2], q.shape[:2])]
            w = q[idx[0]][:, idx[1]] / (p.shape[1] // q.shape[1]) if p.ndim == 4 else q[idx[0]]
            p.copy_(w + noise * w.std() * torch.randn(w.shape, generator=g) if p.ndim == 4 else w)
    index = torch.cat(
        [
            off + torch.arange(c) % c_old
            for (_, c), (_, c_old), off in zip(
                wide.cin_layers, net.cin_layers, torch.tensor([0, *[c for _, c in net.cin_layers]]).cumsum(0).tolist()
            )
        ]
    )
    return wide, index


def fit_pair(
    st: Stylizer,
    start: tuple[StyleTransferNet, torch.Tensor | slice],
    c: torch.Tensor,
    s_path,
    layer: str,
    variant: str,
    args: argparse.Namespace,
) -> list[torch.Tensor]:
    """Losses / base losses on the whole photo at the two ends (α = 0, α = 1) after fitting, starting from
    ``start`` = (T or its widened copy, the index from T's flat γ, β to that network's)."""
    m, loss, style = st.model, st.exported.loss_module(), st.style_layers
    gain = float(st.exported.config.get("train", {}).get("style_gain", 3.0))
    gains = torch.tensor([1.0] * len(st.content_layers) + [gain] * len(style))
    base_net, idx = start
    e = st.embed(s_path)
    sg = loss.style_targets(st.style_image(s_path))
    with torch.no_grad():
        g0, b0 = m.conditioning.base(e)
    gw, bw = g0[:, idx], b0[:, idx]

    def targets(x: torch.Tensor) -> Targets:
        return Targets(loss.content_targets(x), {k: v.expand(len(x), *v.shape[1:]) for k, v in sg.items()})

    ws = [
        torch.tensor([1.0] * len(st.content_layers) + [v if k == layer else 0.5 for k in style]) * gains
        for v in (0.0, 1.0)
    ]
    nets = [copy.deepcopy(base_net) for _ in ws] if variant == "gbT" else [copy.deepcopy(base_net)] * len(ws)
    offsets = [(torch.zeros_like(gw, requires_grad=True), torch.zeros_like(bw, requires_grad=True)) for _ in ws]
    groups = [{"params": [t for o in offsets for t in o], "lr": args.lr}]
    if variant != "gb":
        weights = list({id(p): p for n in nets for p in n.parameters()}.values())
        for p in weights:
            p.requires_grad_(True)
        groups.append({"params": weights, "lr": args.t_lr})
    opt = torch.optim.Adam(groups)
    g = torch.Generator().manual_seed(args.seed)
    h, w = c.shape[-2:]
    crop = min(args.crop, h, w)
    for _ in range(args.steps):
        crops = []
        for _ in range(args.batch):
            i = int(torch.randint(h - crop + 1, (1,), generator=g))
            j = int(torch.randint(w - crop + 1, (1,), generator=g))
            crops.append(c[..., i : i + crop, j : j + crop])
        x = torch.cat(crops)
        tg = targets(x)
        with torch.no_grad():
            ref = loss.raw_losses(m.net(x, g0.expand(len(x), -1), b0.expand(len(x), -1)), tg)
        obj = sum(
            (wt * loss.raw_losses(net(x, (gw + dg).expand(len(x), -1), (bw + db).expand(len(x), -1)), tg) / ref)
            .sum(1)
            .mean()
            for wt, net, (dg, db) in zip(ws, nets, offsets)
        )
        opt.zero_grad()
        obj.backward()
        opt.step()
    with torch.no_grad():
        tg = targets(c)
        ref = loss.raw_losses(m.net(c, g0, b0), tg)[0]
        return [loss.raw_losses(net(c, gw + dg, bw + db), tg)[0] / ref for net, (dg, db) in zip(nets, offsets)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a model built on a base network (conditioning base_delta)")
    ap.add_argument("--layer", default="relu4_4")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--pairs", type=int, default=16, help="held-out pairs to choose from (as evaluate)")
    ap.add_argument(
        "--styles", nargs="*", default=["monet", "stone"], help="keep pairs whose painting name contains one"
    )
    ap.add_argument("--limit", type=int, default=4, help="at most this many pairs")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.02, help="Adam on the γ, β offsets")
    ap.add_argument("--t-lr", type=float, default=1e-3, help="Adam on T's weights")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--widen", type=int, default=1, help="fit on T widened k× (Net2Wider: same function at the start)")
    args = ap.parse_args()
    st = Stylizer.load(args.model, backend="torch")
    if not st.has_base:
        raise SystemExit(f"error: {args.model} is not built on a base network (conditioning base_delta)")
    if args.layer not in st.style_layers:
        raise SystemExit(f"error: unknown style layer {args.layer!r}; this model's are {', '.join(st.style_layers)}")
    for p in st.model.parameters():
        p.requires_grad_(False)
    contents, styles, where = find_images(EvalSettings())
    pairs = [
        p
        for p in choose_pairs(contents, styles, args.pairs, 0)
        if not args.styles or any(k in p[1].name for k in args.styles)
    ]
    pairs = pairs[: args.limit]
    print(
        f"{len(pairs)} held-out pairs from {where}; {args.steps} steps of {args.batch} × {args.crop} px crops at "
        f"{args.size} px, measured on the whole photo\n",
        flush=True,
    )
    j = list(st.schema.keys).index(f"style/{args.layer}")
    start = (st.model.net, slice(None)) if args.widen == 1 else widen(st.model.net, st.model.config, args.widen)
    start[0].requires_grad_(False)  # frozen like T; the variants that train it switch its copies back on
    own: dict[str, list[float]] = {v: [] for v in args.variants}
    for c_path, s_path in pairs:
        c = load_image(c_path, size=args.size)
        for variant in args.variants:
            t0 = time.perf_counter()
            lo, hi = fit_pair(st, start, c, s_path, args.layer, variant, args)
            own[variant].append(float(hi[j] / lo[j]))
            print(
                f"{c_path.name} × {s_path.name} {variant}: own {args.layer} {own[variant][-1]:.3f}; losses / base at "
                f"α=0 {[round(float(x), 2) for x in lo]}, α=1 {[round(float(x), 2) for x in hi]} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    print(f"\n| variant | own {args.layer} (median of {len(pairs)}) |\n|---|---|")
    for v, r in own.items():
        print(f"| {v} | {statistics.median(r):.3f} |")


if __name__ == "__main__":
    main()
