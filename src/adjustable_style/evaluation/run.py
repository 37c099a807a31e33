"""Running the evaluation: load the model and pairs, run every measurement, write the report folder atomically
(``report.md``, ``results.json``, plots, contact sheets) and, if asked, the README block.

Example:
    >>> run_evaluation(EvalSettings(model="models/quick", pairs=1))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_directory
from ..image import load_image, save_image, writable_parent
from ..model_files import resolve_model
from ..prepare import preset
from ..stylizer import Stylizer
from .comparisons import against_peer, quality_vs_gatys
from .diversity import diversity
from .pairs import Pair
from .readme import check_readme, update_readme
from .report import plot_controllability, report_markdown, summary_lines, summary_markdown
from .settings import FORMAT, FORMAT_VERSION, EvalError, EvalSettings
from .slider_effect import reference_dir, slider_effect
from .sliders import controllability, span_vs_base
from .splits import choose_pairs, find_images


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


def _write_report(out: Path, results: dict[str, Any], sheets: dict[str, torch.Tensor]) -> None:
    """Write results.json, report.md, the plot and the contact sheets into a fresh folder, then swap it in."""

    def fill(folder: Path) -> None:
        (folder / "results.json").write_bytes(
            (json.dumps(results, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        )
        (folder / "report.md").write_bytes((report_markdown(results) + "\n").encode("utf-8"))
        plot_controllability(results["controllability"], folder / "controllability.png")
        for name, img in sheets.items():
            save_image(img, folder / name)

    write_directory(out, fill, check=_check_output_dir)


@dataclass
class EvalResult:
    """What :func:`run_evaluation` produced: the numbers and where they were written."""

    results: dict[str, Any]
    output: Path
    readme: Path | None = None
    summary: list[str] = field(default_factory=list)


def _add_adapters(st: Stylizer, folder: str, pairs: Sequence[Pair]) -> list[str]:
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
    pairs = [Pair(k, c, s, load_image(c, size=settings.size)) for k, (c, s) in enumerate(chosen)]
    for p in pairs:
        st.embed(p.style_path)  # a bad style file fails here, before the long sections
    adapted = _add_adapters(st, settings.adapters, pairs) if settings.adapters is not None else None
    if adapted is not None:
        n_styles = len({p.style_path for p in pairs})
        say(f"slider adapters from {settings.adapters}: {len(adapted)} of {n_styles} painting(s)")
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

    fit_name = settings.fit(st.has_base)
    if fit_name:

        def prepare_all() -> dict[str, Any]:
            seconds = []
            for p in pairs:
                prep = st.prepare(p.content, p.style_path, max_size=None, preset=fit_name)
                seconds.append(float(prep.meta["seconds"]))
            fit = preset(fit_name)
            return {
                "fit": str(fit_name),
                "steps": fit.steps,
                "corner_steps": fit.corner_steps,
                "solo_ends": list(fit.solo_ends),
                "solo_steps": fit.solo_steps if fit.solo_ends else 0,
                "crop": fit.crop_side(settings.size),
                "seconds": seconds,
            }

        results["prepared"] = section("prepare", prepare_all)
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
    if settings.slider_effect:
        results["slider_effect"] = section(
            "slider_effect",
            lambda: slider_effect(
                st,
                pairs[: settings.slider_pairs],
                settings.sweep_steps,
                settings.reference_steps,
                settings.seed,
                sheets,
                reference_dir() if settings.reference_cache else None,
            ),
        )
    else:
        results["slider_effect"] = None
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

    _write_report(out, results, sheets)
    readme = update_readme(settings.readme, readme_text) if settings.readme is not None and readme_text else None
    return EvalResult(results=results, output=out, readme=readme, summary=summary_lines(results))
