"""Diversity: how different the seeded ``variations`` of one pair are, in VGG feature space, against the
baseline of the same α stylized twice (which should differ only by float rounding).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from ..losses import gram
from ..sheet import contact_sheet, format_weights
from ..stylizer import Stylizer
from .pairs import Pair
from .stats import nanmean


def _feature_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖₂ / mean(‖a‖₂, ‖b‖₂), in float64; 0 for identical inputs."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    scale = (a.norm() + b.norm()) / 2
    return float((a - b).norm() / scale) if scale > 0 else 0.0


def diversity(
    st: Stylizer, pairs: Sequence[Pair], n: int, seed: int, sheets: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Mean pairwise VGG distance between seeded variations, and the same for two identical-α runs."""
    feat_layer = st.content_layers[0] if st.content_layers else st.style_layers[0]
    gram_layer = [x for x in st.schema.all_layers if x in st.style_layers][-1]

    def features(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            f = st.model.vgg(images.to(st.device), {feat_layer, gram_layer})
            return f[feat_layer].cpu(), gram(f[gram_layer]).cpu()

    def distance(fa: tuple, fb: tuple, i: int, j: int) -> tuple[float, float]:
        return _feature_distance(fa[0][i], fb[0][j]), _feature_distance(fa[1][i], fb[1][j])

    rows = []
    for pair in pairs:
        images, alphas = st.variations(pair.content, pair.style_path, n=n, seed=seed + pair.index, max_size=None)
        f = features(images)
        d = [distance(f, f, i, j) for i, j in itertools.combinations(range(n), 2)]
        st.clear_cache()  # the repeat goes through the whole path again, embedding included
        again = st.stylize_alphas(pair.content, pair.style_path, alphas[:1], max_size=None)
        g = features(again)
        base = distance(f, g, 0, 0)
        rows.append(
            {
                "pair": pair.index,
                "seed": seed + pair.index,
                "feature": nanmean([x[0] for x in d]),
                "gram": nanmean([x[1] for x in d]),
                "score": nanmean([(x[0] + x[1]) / 2 for x in d]),
                "baseline_feature": base[0],
                "baseline_gram": base[1],
                "baseline_score": (base[0] + base[1]) / 2,
                "max_abs_pixel_diff_repeat": float((again[0] - images[0]).abs().max()),
            }
        )
        style_w = [st.schema.to_dicts(a)[0] for a in alphas]
        tiles = [pair.content, st.style_image(pair.style_path), *images]
        labels = ["content", "style", *(f"#{k} {format_weights(w, 2)}" for k, w in enumerate(style_w))]
        sheets[f"diversity_{pair.index}.png"] = contact_sheet(tiles, labels, ncol=5, cell=192)
    return {
        "n": n,
        "feature_layer": feat_layer,
        "gram_layer": gram_layer,
        "rows": rows,
        "score": nanmean([r["score"] for r in rows]),
        "baseline_score": nanmean([r["baseline_score"] for r in rows]),
        "feature": nanmean([r["feature"] for r in rows]),
        "gram": nanmean([r["gram"] for r in rows]),
        "definition": (
            f"for two outputs a, b: d_feat = ||phi(a) - phi(b)|| / mean(||phi(a)||, ||phi(b)||) at {feat_layer}, "
            f"d_gram = the same on Gram matrices at {gram_layer}; "
            "score = mean over all output pairs of (d_feat + d_gram) / 2"
        ),
    }
