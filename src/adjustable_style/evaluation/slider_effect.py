"""What one slider does to the picture: agreement with the exact reference, visibility, and its own-layer effect
with the style measured at two scales.

For each style slider and pair, the slider's two ends are the model's outputs with that slider at the bottom and at
the top of the trained range and every other style slider in the middle.

- **Agreement**: the change between the ends in VGG statistics (per-channel mean and std of each style layer of the
  model's own VGG, concatenated over the layers), the model's against that of the exact reference: L-BFGS on the
  pixels (:func:`adjustable_style.gatys.optimize`) at the same weights, same size, started from the photo, under
  the model's training objective (its EMA normalisation and TV weight). Cosine (1 = the same direction) and
  magnitude ratio (model / reference; 1 = as far).
- **Visibility**: mean |end₁ − end₀| over pixels as a fraction of the stylization (mean |output − photo| with every
  slider in the middle), and the mean pairwise pixel difference of six seeded variations, in /255.
- **Two scales**: each slider is swept and its own layer's loss measured with the style image at the model's style
  size (as the training loss sees it) and at the content's scale (style longer side = content longer side); the
  own-layer ratio L(top) / L(bottom) and Spearman's ρ(α, L) at each scale (ρ = −1: the loss falls steadily), and
  the exact reference's own-layer ratio at each scale (how far the optimum of the same weights lowers that loss).

The references depend only on the pair, the weights, the size, the L-BFGS steps and the model's loss (VGG and EMA),
not on the sliders under test, so they are kept in a cache folder (:func:`reference_dir`) and a second evaluation
of another model or preparation on the same pairs reuses them.

Example:
    >>> slider_effect(st, pairs, sweep_steps=8, reference_steps=50, seed=0, sheets={})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import atomic
from ..gatys import GatysConfig, optimize
from ..image import resize
from ..losses import Targets
from ..model_files import cache_root
from ..sheet import contact_sheet
from ..stylizer import Stylizer
from .comparisons import reference_config, reference_objective
from .pairs import Pair, style_alpha
from .stats import nanmedian, ratio, spearman

N_VARIATIONS = 6
SCALES = ("style_size", "content_scale")


def reference_dir() -> Path:
    """Where the slider-effect section keeps its L-BFGS references: ``<cache>/references/`` (see
    :func:`adjustable_style.model_files.cache_root`)."""
    return cache_root() / "references"


def _digest(*parts: torch.Tensor | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(part.detach().cpu().float().contiguous().numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()


def _loss_digest(st: Stylizer, ema: tuple[torch.Tensor, float]) -> str:
    """The identity of the objective a reference minimises: the VGG weights, the EMA normalisers, the device."""
    vgg = [t for _, t in sorted(st.model.vgg.state_dict().items())]
    return _digest(*vgg, ema[0], str(ema[1]), st.device.type)


def cached_reference(
    folder: Path | None, loss_digest: str, content: torch.Tensor, style: torch.Tensor, cfg: GatysConfig, compute
) -> torch.Tensor:
    """``compute()`` (an L-BFGS result (1, 3, H, W)), read from ``folder`` when it was computed for the same
    photo, painting, config and objective, else computed and written there (atomically). ``folder`` None: no
    cache. A file that cannot be read is computed again and replaced."""
    if folder is None:
        return compute().detach().cpu().float()
    path = folder / f"{_digest(content, style, repr(cfg), loss_digest)}.safetensors"
    if path.is_file():
        try:
            out = load_file(str(path))["image"]
            if out.shape == content.shape:
                return out
        except (SafetensorError, OSError, KeyError):
            pass
    out = compute().detach().cpu().float()
    atomic.write_file(path, lambda tmp: save_file({"image": out.contiguous()}, str(tmp)))
    return out


def vgg_statistics(st: Stylizer, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per style layer, the per-channel mean and std of the model's VGG features: ``{layer: (N, 2C)}`` (CPU,
    float64), mean first."""
    layers = list(st.style_layers)
    with torch.inference_mode():
        feats = st.model.vgg(images.to(st.device, torch.float32), set(layers))
    return {
        n: torch.cat([feats[n].mean(dim=(2, 3)), feats[n].std(dim=(2, 3), unbiased=False)], dim=1).double().cpu()
        for n in layers
    }


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else float("nan")


def _agreement(model: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Cosine and magnitude ratio of two statistics changes (each ``{layer: (2C,)}``), overall and per layer."""
    m, r = torch.cat(list(model.values())), torch.cat(list(ref.values()))
    return {
        "cosine": _cosine(m, r),
        "magnitude_ratio": ratio(float(m.norm()), float(r.norm())),
        "cosine_per_layer": {n: _cosine(model[n], ref[n]) for n in model},
        "magnitude_ratio_per_layer": {n: ratio(float(model[n].norm()), float(ref[n].norm())) for n in model},
    }


def _style_targets(st: Stylizer, style: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return st.exported.loss_module().style_targets(style.to(st.device))


def _raw_losses(
    st: Stylizer, outputs: torch.Tensor, content: torch.Tensor, style_t: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Raw per-layer losses (N, L) of ``outputs`` against ``content`` (same size) and the style Grams ``style_t``."""
    loss = st.exported.loss_module()
    with torch.inference_mode():
        content_t = loss.content_targets(content.to(st.device))
        b = outputs.shape[0]
        t = Targets({k: v.expand(b, *v.shape[1:]) for k, v in content_t.items()}, style_t)
        return loss.raw_losses(outputs.to(st.device, torch.float32), t).cpu()


def _pixel_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |a − b| over pixels and channels, images in [0, 1]."""
    return float((a.double() - b.double()).abs().mean())


def slider_effect(
    st: Stylizer,
    pairs: Sequence[Pair],
    sweep_steps: int,
    reference_steps: int,
    seed: int,
    sheets: dict[str, torch.Tensor],
    cache: Path | None = None,
) -> dict[str, Any]:
    """Agreement, visibility and two-scale own-layer effect of every style slider on every pair.

    Args:
        st: the model (with any adapters it holds).
        pairs: the pairs; outputs are made at each pair's content size.
        sweep_steps: slider values of the two-scale sweep (the ends are its first and last).
        reference_steps: L-BFGS steps per end of the exact reference; 0 skips the agreement.
        seed: seeds of the variations (``seed + pair index``, as the diversity section).
        sheets: receives ``slider_effect.png`` (the first pair's ends, model and reference).
        cache: a folder of L-BFGS references (:func:`cached_reference`); None: compute every one.

    Returns:
        JSON-ready numbers: ``rows`` (one per pair and slider), ``variations`` (one per pair) and ``summary``
        (medians over pairs per slider).
    """
    lo, hi = st.alpha_range
    mid = (lo + hi) / 2
    keys = list(st.schema.keys)
    ema, tv_weight = reference_objective(st) if reference_steps > 0 else (None, 0.0)
    loss_digest = _loss_digest(st, ema) if ema is not None and cache is not None else ""
    rows: list[dict[str, Any]] = []
    variations: list[dict[str, Any]] = []
    tiles: list[torch.Tensor] = []
    labels: list[str] = []
    for pair in pairs:
        content = pair.content
        h, w = content.shape[-2:]
        style_sized = st.style_image(pair.style_path)
        styles = {
            "style_size": style_sized,
            "content_scale": resize(st.image(pair.style_path, "style"), max(int(h), int(w))),
        }
        grams = {scale: _style_targets(st, style) for scale, style in styles.items()}
        middle = st.stylize_alphas(
            content, pair.style_path, style_alpha(st, dict.fromkeys(st.style_layers, mid)), max_size=None
        )
        stylization = _pixel_change(middle, content)
        for layer in st.style_layers:
            j = keys.index(f"style/{layer}")
            others = {n: mid for n in st.style_layers if n != layer}
            images, values = st.sweep(
                content, pair.style_path, layer, steps=sweep_steps, weights=others, low=lo, high=hi, max_size=None
            )
            ends = torch.cat([images[:1], images[-1:]])
            row: dict[str, Any] = {"pair": pair.index, "slider": layer}
            for scale, style in styles.items():
                own = _raw_losses(st, images, content, grams[scale])[:, j].double().numpy()
                row[scale] = {
                    "style_size_px": list(style.shape[-2:]),
                    "own_ratio": ratio(float(own[-1]), float(own[0])),
                    "rho": spearman(values, own),
                    "losses": own.tolist(),
                }
            change = _pixel_change(ends[1:], ends[:1])
            row["ends_change_255"] = 255 * change
            row["stylization_255"] = 255 * stylization
            row["ends_over_stylization"] = ratio(change, stylization)
            if reference_steps > 0:
                ref = []
                for v in (lo, hi):
                    cfg = reference_config(st, {**others, layer: v}, reference_steps, tv_weight)
                    ref.append(
                        cached_reference(
                            cache,
                            loss_digest,
                            content,
                            style_sized,
                            cfg,
                            lambda cfg=cfg, c=content, s=style_sized: optimize(
                                c.to(st.device), s.to(st.device), cfg, vgg=st.model.vgg, ema=ema
                            )[0],
                        )
                    )
                ref_ends = torch.cat(ref)
                for scale in SCALES:
                    own = _raw_losses(st, ref_ends, content, grams[scale])[:, j].double()
                    row[scale]["reference_own_ratio"] = ratio(float(own[1]), float(own[0]))
                sm, sr = vgg_statistics(st, ends), vgg_statistics(st, ref_ends)
                row["agreement"] = _agreement(
                    {n: s[1] - s[0] for n, s in sm.items()}, {n: s[1] - s[0] for n, s in sr.items()}
                )
                row["reference_ends_change_255"] = 255 * _pixel_change(ref_ends[1:], ref_ends[:1])
                if pair.index == 0:
                    tiles += [ends[:1], ends[1:], ref_ends[:1], ref_ends[1:]]
                    labels += [
                        f"ours, {layer}={lo:g}",
                        f"ours, {layer}={hi:g}\ncosine {row['agreement']['cosine']:.2f}",
                        f"L-BFGS, {layer}={lo:g}",
                        f"L-BFGS, {layer}={hi:g}\n{reference_steps} steps",
                    ]
            elif pair.index == 0:
                tiles += [ends[:1], ends[1:]]
                labels += [f"ours, {layer}={lo:g}", f"ours, {layer}={hi:g}"]
            rows.append(row)
        imgs, _ = st.variations(content, pair.style_path, n=N_VARIATIONS, seed=seed + pair.index, max_size=None)
        diffs = [
            _pixel_change(imgs[a : a + 1], imgs[b : b + 1]) for a, b in itertools.combinations(range(N_VARIATIONS), 2)
        ]
        variations.append(
            {"pair": pair.index, "seed": seed + pair.index, "mean_pairwise_255": 255 * sum(diffs) / len(diffs)}
        )
    if tiles:
        # One row per slider; the first column holds the content, then the style, then blank (background) cells.
        per_row = 4 if reference_steps > 0 else 2
        first = pairs[0]
        side = [(first.content, "content"), (st.style_image(first.style_path), "style")]
        grid, grid_labels = [], []
        for k in range(len(tiles) // per_row):
            img, text = side[k] if k < len(side) else (torch.ones(1, 3, 8, 8), "")
            grid += [img, *tiles[k * per_row : (k + 1) * per_row]]
            grid_labels += [text, *labels[k * per_row : (k + 1) * per_row]]
        sheets["slider_effect.png"] = contact_sheet(grid, grid_labels, ncol=per_row + 1, cell=192)
    summary: dict[str, dict[str, float]] = {}
    for layer in st.style_layers:
        sel = [r for r in rows if r["slider"] == layer]
        s = {
            "ends_over_stylization": nanmedian([r["ends_over_stylization"] for r in sel]),
            "ends_change_255": nanmedian([r["ends_change_255"] for r in sel]),
        }
        for scale in SCALES:
            s[f"own_ratio_{scale}"] = nanmedian([r[scale]["own_ratio"] for r in sel])
            s[f"rho_{scale}"] = nanmedian([r[scale]["rho"] for r in sel])
        if reference_steps > 0:
            s["cosine"] = nanmedian([r["agreement"]["cosine"] for r in sel])
            s["magnitude_ratio"] = nanmedian([r["agreement"]["magnitude_ratio"] for r in sel])
            s["reference_ends_change_255"] = nanmedian([r["reference_ends_change_255"] for r in sel])
            for scale in SCALES:
                s[f"reference_own_ratio_{scale}"] = nanmedian([r[scale]["reference_own_ratio"] for r in sel])
        summary[layer] = s
    return {
        "values_low_high": [lo, hi],
        "others_at": mid,
        "sweep_steps": sweep_steps,
        "reference_steps": reference_steps,
        "tv_weight": tv_weight,
        "n_variations": N_VARIATIONS,
        "rows": rows,
        "variations": variations,
        "variations_255_median": nanmedian([v["mean_pairwise_255"] for v in variations]),
        "summary": summary,
    }
