"""Probe: does refining each slider end with a few pixel Adam steps of the paper's objective (at that end's weights)
move the ends' VGG-statistics change towards L-BFGS's? The quick fit's ends (without its own pixel step) on evaluate's
first 8 held-out pairs at 256 px, against the cached L-BFGS references (computed when missing).

    python scripts/research/pixel_ends_probe.py 2:0.02 4:0.02 2:0.05          # STEPS:LR with VGG19 in float32
    python scripts/research/pixel_ends_probe.py 1:0.05:low 2:0.03:low         # ... with the low-rank VGG19 in bf16

Prints per pair and then the medians: agreement cosine, magnitude ratio and ends over the stylization per slider
("(0, 0, '')": the unrefined ends).
"""

from __future__ import annotations

import statistics
import sys

import torch

from adjustable_style.evaluation import EvalSettings, choose_pairs, find_images
from adjustable_style.evaluation.comparisons import reference_config, reference_objective
from adjustable_style.evaluation.pairs import Pair
from adjustable_style.evaluation.slider_effect import (
    _agreement,
    _loss_digest,
    _pixel_change,
    cached_reference,
    reference_dir,
    vgg_statistics,
)
from adjustable_style.gatys import optimize
from adjustable_style.image import load_image
from adjustable_style.losses import PerceptualLoss, Targets
from adjustable_style.prepare import PRESETS, _channels_last, fit_loss
from adjustable_style.stylizer import Stylizer


def parse(spec: str) -> tuple[float, float, str]:
    """STEPS:LR[:low] -> (steps, lr, loss network)."""
    parts = spec.split(":")
    return float(parts[0]), float(parts[1]), parts[2] if len(parts) > 2 else "vgg19"


def main() -> None:
    torch.set_num_threads(1)
    variants = [parse(v) for v in sys.argv[1:]]
    contents, styles, _ = find_images(EvalSettings(pairs=16))
    st = Stylizer.load("default", device="cpu", backend="torch")
    chosen = choose_pairs(contents, styles, 16, 0)[:8]
    pairs = [Pair(k, c, s, load_image(c, size=256)) for k, (c, s) in enumerate(chosen)]
    ema, tv_w = reference_objective(st)
    digest = _loss_digest(st, ema)
    full = PerceptualLoss(st.schema, st.model.vgg, tv_weight=tv_w).eval()
    full.set_ema(ema[0], tv=ema[1])
    low = fit_loss(st.exported.loss_module(), PRESETS["quick"])
    lo, hi = st.alpha_range
    mid = (lo + hi) / 2
    keys = [(0.0, 0.0, ""), *variants]
    found = {k: {n: {"cos": [], "mag": [], "ends": []} for n in st.style_layers} for k in keys}
    scale = 1.0 / float(ema[0].sum())
    for pair in pairs:
        c = pair.content
        st.prepare(c, pair.style_path, max_size=None, preset="quick", pixel_steps=0)
        style = st.style_image(pair.style_path)
        middle = st.stylize(c, pair.style_path, dict.fromkeys(st.style_layers, mid), max_size=None)
        stylization = _pixel_change(middle, c)
        weights = [{**{n: mid for n in st.style_layers}, layer: v} for layer in st.style_layers for v in (lo, hi)]
        ends = torch.cat([st.stylize(c, pair.style_path, w, max_size=None) for w in weights])
        alphas = torch.cat([st.schema.to_tensor(w) for w in weights])
        b = ends.shape[0]
        targets = {}
        for name, loss in (("vgg19", full), ("low", low)):
            t = loss.targets(c, style)
            targets[name] = Targets({k: v.expand(b, *v.shape[1:]) for k, v in t.content.items()}, t.style)
        refined = {keys[0]: ends}
        for steps, lr, net in variants:
            loss = full if net == "vgg19" else low
            z = torch.logit(ends.clamp(1e-3, 1 - 1e-3)).detach().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(int(steps)):
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=net != "vgg19"):
                    out = loss(_channels_last(torch.sigmoid(z)), targets[net], alphas, update_ema=False)
                (out.total.float().sum() * scale).backward()
                opt.step()
            refined[(steps, lr, net)] = torch.sigmoid(z).detach()
        for i, layer in enumerate(st.style_layers):
            ref = []
            for w in weights[2 * i : 2 * i + 2]:
                cfg = reference_config(st, w, 50, tv_w)
                ref.append(
                    cached_reference(
                        reference_dir(),
                        digest,
                        c,
                        style,
                        cfg,
                        lambda cfg=cfg, c=c, s=style: optimize(c, s, cfg, vgg=st.model.vgg, ema=ema)[0],
                    )
                )
            sr = vgg_statistics(st, torch.cat(ref))
            for key, images in refined.items():
                e = images[2 * i : 2 * i + 2]
                sm = vgg_statistics(st, e)
                a = _agreement({n: s[1] - s[0] for n, s in sm.items()}, {n: s[1] - s[0] for n, s in sr.items()})
                found[key][layer]["cos"].append(a["cosine"])
                found[key][layer]["mag"].append(a["magnitude_ratio"])
                found[key][layer]["ends"].append(_pixel_change(e[1:], e[:1]) / stylization)
        print(pair.index, {k: [round(found[k][n]["cos"][-1], 2) for n in st.style_layers] for k in keys}, flush=True)
    for k in keys:
        medians = {
            m: [round(statistics.median(found[k][n][m]), 3) for n in st.style_layers] for m in ("cos", "mag", "ends")
        }
        print(k, medians)


if __name__ == "__main__":
    main()
