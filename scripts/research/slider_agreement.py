"""Slider agreement with the exact reference under two objectives, with the L-BFGS references cached on disk.

The slider-effect section of ``evaluate`` spends ~20 min of its 30 on L-BFGS references that do not depend on
the model being judged. This script computes them once per objective and pair (``refs``: each style slider at 0
and at 1 with the others at 0.5, and every slider at 0.5), then judges any model against them in about a minute
(``judge``: the whole slider, and each half from the middle when the middle reference is there):

* ``ema``: the EMA-normalised objective of the paper's eq. 9 with the model's stored EMA, style weight = α;
* ``base``: the training recipe's objective — each layer divided by the base network's own loss on the pair, style
  weight = α × ``loss.style_gain`` (3 for the shipped default).

    python scripts/research/slider_agreement.py refs --objective base --cache /work/long_run/refs
    python scripts/research/slider_agreement.py judge --objective base --cache /work/long_run/refs [--model M]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import torch
from asym_gain import scale_half_gains
from scale_sliders import scale_sliders

from adjustable_style.evaluation.comparisons import reference_config, reference_objective
from adjustable_style.evaluation.pairs import style_alpha
from adjustable_style.evaluation.settings import EvalSettings
from adjustable_style.evaluation.slider_effect import (
    _agreement,
    _pixel_change,
    _raw_losses,
    _style_targets,
    vgg_statistics,
)
from adjustable_style.evaluation.splits import choose_pairs, find_images
from adjustable_style.gatys import optimize
from adjustable_style.image import load_image
from adjustable_style.losses import total_variation
from adjustable_style.stylizer import Stylizer


def load_pairs(n: int, size: int = 256, first: int = 0):
    contents, styles, _ = find_images(EvalSettings())
    chosen = choose_pairs(contents, styles, 16, 0)[first : first + n]
    return [(first + k, c, s, load_image(c, size=size)) for k, (c, s) in enumerate(chosen)]


def objective(st: Stylizer, kind: str, content: torch.Tensor, style_path: Path):
    """(normalisers for optimize's ``ema``, style gain) of objective ``kind`` on one pair."""
    if kind == "ema":
        ema, _ = reference_objective(st)
        return ema, 1.0
    gain = float(st.exported.config["train"]["style_gain"])
    loss = st.exported.loss_module()
    with torch.inference_mode():
        base = st.stylize_base(content, style_path, max_size=None)
        raw = loss.raw_losses(base, loss.targets(content, st.style_image(style_path)))[0]
    return (raw.float(), float(total_variation(base)[0])), gain


def to_weight(weight_map: str, a: float) -> float:
    """A slider position's loss weight: ``linear`` is the paper's (weight = α); ``log`` spans 0.05–5 with the
    middle at 0.5 (weight = 0.05 · 100^α)."""
    return a if weight_map == "linear" else 0.05 * 100.0**a


def cache_name(args) -> str:
    return args.objective if args.weight_map == "linear" else f"{args.objective}_{args.weight_map}"


def cmd_refs(args):
    torch.set_num_threads(args.threads)
    st = Stylizer.load(args.model)
    lo, hi = st.alpha_range
    mid = (lo + hi) / 2
    out = Path(args.cache, cache_name(args))
    out.mkdir(parents=True, exist_ok=True)
    for k, _, s, content in load_pairs(args.pairs, first=args.first):
        ema, gain = objective(st, args.objective, content, s)
        runs = [(f"{layer}_{end}", layer, v) for layer in st.style_layers for end, v in (("lo", lo), ("hi", hi))]
        for name, layer, v in [("mid", None, mid), *runs]:  # mid: every slider at the middle (each half's start)
            f = out / f"p{k}_{name}.pt"
            if f.exists():
                continue
            w = {n: gain * to_weight(args.weight_map, v if n == layer else mid) for n in st.style_layers}
            img, _ = optimize(
                content, st.style_image(s), reference_config(st, w, args.steps, 0.0), vgg=st.model.vgg, ema=ema
            )
            torch.save(img, f)
            print(f, flush=True)


def judge(st: Stylizer, kind: str, cache: str, pairs, renderer=None) -> dict:
    """Medians over pairs per slider: cosine, magnitude ratio, ends/stylization, own ratio (style size).
    ``renderer(k, content, style_path)``, when given, returns the render function ``(content, style_path, alphas)``
    to judge on pair k instead of the model's own (e.g. with a per-pair preparation)."""
    lo, hi = st.alpha_range
    mid = (lo + hi) / 2
    keys = list(st.schema.keys)

    def own_render(content, s, alphas):
        return st.stylize_alphas(content, s, alphas, max_size=None)

    rows = {n: [] for n in st.style_layers}
    var = []
    for k, _, s, content in pairs:
        render = own_render if renderer is None else renderer(k, content, s)
        grams = _style_targets(st, st.style_image(s))
        a_mid = style_alpha(st, dict.fromkeys(st.style_layers, mid))
        middle = render(content, s, a_mid)
        styl = _pixel_change(middle, content)
        for layer in st.style_layers:
            j = keys.index(f"style/{layer}")
            a = torch.cat([a_mid, a_mid])
            a[0, j], a[1, j] = lo, hi
            ends = render(content, s, a)
            own = _raw_losses(st, ends, content, grams)[:, j]
            ref = torch.cat([torch.load(Path(cache, kind, f"p{k}_{layer}_{e}.pt")) for e in ("lo", "hi")])
            sm, sr = vgg_statistics(st, ends), vgg_statistics(st, ref)
            ag = _agreement({n: x[1] - x[0] for n, x in sm.items()}, {n: x[1] - x[0] for n, x in sr.items()})
            halves = {}
            mid_file = Path(cache, kind, f"p{k}_mid.pt")
            if mid_file.exists():  # each half on its own: (end − middle), model vs reference
                mm, mr = vgg_statistics(st, middle), vgg_statistics(st, torch.load(mid_file))
                for e, i in (("lo", 0), ("hi", 1)):
                    h = _agreement(
                        {n: x[i] - mm[n][0] for n, x in sm.items()}, {n: x[i] - mr[n][0] for n, x in sr.items()}
                    )
                    halves[f"cos_{e}"], halves[f"mag_{e}"] = h["cosine"], h["magnitude_ratio"]
            rows[layer].append(
                dict(
                    cos=ag["cosine"],
                    mag=ag["magnitude_ratio"],
                    vis=_pixel_change(ends[1:], ends[:1]) / styl,
                    own=float(own[1] / own[0]),
                    ref_vis=_pixel_change(ref[1:], ref[:1]) / styl,
                    **halves,
                )
            )
        # Six variations at this script's own seeded α (not evaluate's seeds: its 7.5/255 is 6.7/255 here).
        g = torch.Generator().manual_seed(k)
        alphas = a_mid.repeat(6, 1)
        alphas[:, 1:] = lo + (hi - lo) * torch.rand(6, alphas.shape[1] - 1, generator=g)
        imgs = render(content, s, alphas)
        d = [_pixel_change(imgs[a : a + 1], imgs[b : b + 1]) for a, b in itertools.combinations(range(6), 2)]
        var.append(255 * sum(d) / len(d))
    med = {n: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for n, rs in rows.items()}
    med["variations_255"] = statistics.median(var)
    med["rows"] = rows
    return med


def show(med: dict, title: str = "") -> None:
    print(title)
    for n, m in med.items():
        if n in ("rows", "variations_255"):
            continue
        print(
            f"  {n}: cos {m['cos']:+.2f} mag {m['mag']:.2f} vis {100 * m['vis']:.0f}% own {m['own']:.2f}"
            f" (ref vis {100 * m['ref_vis']:.0f}%)"
            + (
                f" | lo half cos {m['cos_lo']:+.2f} mag {m['mag_lo']:.2f},"
                f" hi half cos {m['cos_hi']:+.2f} mag {m['mag_hi']:.2f}"
                if "cos_lo" in m
                else ""
            )
        )
    print(f"  variations {med['variations_255']:.1f}/255")


def cmd_judge(args):
    torch.set_num_threads(args.threads)
    st = Stylizer.load(args.model)
    if args.gain:
        scale_sliders(st, [float(x) for x in args.gain.split(",")])
    if args.lo or args.hi:
        n = len(st.style_layers)
        scale_half_gains(st, *[[float(x) for x in (g or ",".join(["1"] * n)).split(",")] for g in (args.lo, args.hi)])
    if args.adapters:
        print(f"{st.add_adapters_from(args.adapters)} adapter(s) from {args.adapters}")
    pairs = load_pairs(args.pairs, first=args.first)
    show(judge(st, cache_name(args), args.cache, pairs), f"{args.model} vs {cache_name(args)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("refs", "judge"):
        q = sub.add_parser(name)
        q.add_argument("--objective", choices=("ema", "base"), default="base")
        q.add_argument("--cache", default="/work/long_run/refs")
        q.add_argument("--model", default="default")
        q.add_argument("--pairs", type=int, default=4)
        q.add_argument("--first", type=int, default=0)
        q.add_argument("--steps", type=int, default=50)
        q.add_argument("--weight-map", choices=("linear", "log"), default="linear", help="slider position → weight")
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--gain", default=None, help="per style slider, e.g. 2,2,1.5 (judge)")
        q.add_argument("--lo", default=None, help="asymmetric gains below the middle (judge; asym_gain.py)")
        q.add_argument("--hi", default=None, help="asymmetric gains above the middle (judge; asym_gain.py)")
        q.add_argument("--adapters", default=None, help="a folder of slider adapters (judge; `adjustable-style adapt`)")
    args = p.parse_args()
    {"refs": cmd_refs, "judge": cmd_judge}[args.cmd](args)


if __name__ == "__main__":
    main()
