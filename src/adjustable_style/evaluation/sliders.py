"""What the sliders do: each style slider against its own layer's loss (controllability, the paper's claim), and
the span of all sliders together around the base network.

Each measurement is a function of the stylizer and the pairs that returns plain, JSON-ready numbers and adds its
contact sheets to ``sheets`` (file name → image).

Controllability (Babaeizadeh & Ghiasi, arXiv 1811.08560): raising a style layer's α^l lowers that layer's style
loss L^l. Each style slider is swept with the others at the middle of the range; L^l of every output is measured
with the training VGG (:func:`adjustable_style.measure.layer_losses`); Spearman's ρ(α^l, L^l) should be close to −1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..measure import layer_losses
from ..sheet import contact_sheet
from ..stylizer import Stylizer
from .pairs import Pair, style_alpha
from .stats import nanmean, nanmedian, ratio, spearman


def controllability(st: Stylizer, pairs: Sequence[Pair], steps: int, sheets: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Sweep each style slider (others mid-range); Spearman ρ(α^l, L^l) per pair, mean and pooled."""
    lo, hi = st.alpha_range
    values = [lo + (hi - lo) * i / (steps - 1) for i in range(steps)]
    mid = (lo + hi) / 2
    keys = list(st.schema.keys)

    def alphas_for(layer: str) -> torch.Tensor:  # the rows Stylizer.sweep uses
        base = st.check_weights({n: mid for n in st.style_layers if n != layer}).repeat(steps, 1)
        base[:, keys.index(f"style/{layer}")] = torch.tensor(values)
        return base

    layers: dict[str, Any] = {}
    for layer in st.style_layers:
        j = keys.index(f"style/{layer}")
        losses = []  # per pair: (steps, L)
        for pair in pairs:
            images, _ = st.sweep(
                pair.content,
                pair.style_path,
                layer,
                steps=steps,
                max_size=None,
                weights={n: mid for n in st.style_layers if n != layer},
                low=lo,
                high=hi,
            )
            raw = layer_losses(st, images, pair.content, pair.style_path)
            losses.append(raw)
            pair.pool += zip(alphas_for(layer), raw)
            if pair.index == 0:
                tiles = [pair.content, st.style_image(pair.style_path), *images]
                labels = ["content", "style", *(f"{layer}={v:.2f}" for v in values)]
                sheets[f"sweep_{layer}.png"] = contact_sheet(tiles, labels, ncol=min(len(tiles), 5), cell=192)
        own = [r[:, j].double().numpy() for r in losses]
        rho = [spearman(values, L) for L in own]
        ratios = [ratio(float(L[-1]), float(L[0])) for L in own]
        pooled_x = np.tile(values, len(own))
        pooled_y = np.concatenate([L / L[0] if L[0] > 0 else np.full_like(L, np.nan) for L in own])
        # ρ of α^l against every measured loss: the diagonal is the claim; off-diagonal shows side effects.
        cross = {k: nanmean([spearman(values, r[:, i].double().numpy()) for r in losses]) for i, k in enumerate(keys)}
        layers[layer] = {
            "losses": [r.tolist() for r in losses],
            "normalized": [(L / L[0]).tolist() if L[0] > 0 else None for L in own],
            "rho_per_pair": rho,
            "rho_mean": nanmean(rho),
            "rho_median": nanmedian(rho),
            "ratio_median": nanmedian(ratios),
            "rho_pooled": spearman(pooled_x, pooled_y),
            "ratio_per_pair": ratios,
            "ratio_mean": nanmean(ratios),
            "ratio_geomean": float(np.exp(np.mean(np.log(ratios)))) if all(r > 0 for r in ratios) else float("nan"),
            "cross_rho_mean": cross,
        }
    return {"values": values, "others_at": mid, "keys": keys, "layers": layers}


def span_vs_base(st: Stylizer, pairs: Sequence[Pair], sheets: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Do the sliders span the base network on both sides? All style sliders at the top vs the base output (style
    losses), all at the bottom vs the base output (content loss), per pair; medians over pairs."""
    if not st.has_base:
        return {"available": False, "reason": "the model has no base network"}
    lo, hi = st.alpha_range
    keys = list(st.schema.keys)
    rows, tiles, labels = [], [], []
    for pair in pairs:
        base = st.stylize_base(pair.content, pair.style_path, max_size=None)
        ends = st.stylize_alphas(
            pair.content,
            pair.style_path,
            torch.cat([style_alpha(st, dict.fromkeys(st.style_layers, v)) for v in (lo, hi)]),
            max_size=None,
        )
        raw = layer_losses(
            st, torch.cat([pair.content, base, ends]), pair.content, pair.style_path
        )  # photo, base, 0, 1
        named = {m: dict(zip(keys, raw[i].tolist())) for i, m in enumerate(("photo", "base", "all_low", "all_high"))}
        rows.append(
            {
                "pair": pair.index,
                **named,
                "high_over_base": {k: ratio(named["all_high"][k], named["base"][k]) for k in keys},
                "low_over_base": {k: ratio(named["all_low"][k], named["base"][k]) for k in keys},
            }
        )
        if pair.index < 2:
            tiles += [pair.content, st.style_image(pair.style_path), base, ends[0:1], ends[1:2]]
            labels += [
                "content",
                "style",
                "base network (Magenta)",
                f"all style sliders {lo:g}",
                f"all style sliders {hi:g}",
            ]
    sheets["span.png"] = contact_sheet(tiles, labels, ncol=5, cell=192)
    med = {
        side: {k: nanmedian([r[side][k] for r in rows]) for k in keys} for side in ("high_over_base", "low_over_base")
    }
    style_keys = [k for k in keys if k.startswith("style/")]
    content_keys = [k for k in keys if k.startswith("content/")]
    return {
        "available": True,
        "rows": rows,
        "median": med,
        "style_at_top_le_base": all(med["high_over_base"][k] <= 1.0 for k in style_keys),
        "content_at_bottom_lt_base": all(med["low_over_base"][k] < 1.0 for k in content_keys),
    }
