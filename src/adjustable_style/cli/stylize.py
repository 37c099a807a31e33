"""`adjustable-style stylize | variations | sweep`: running a trained model on images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..image import IMAGE_EXTENSIONS, ImageError, load_image, save_image
from ..measure import layer_losses
from ..sheet import contact_sheet, format_weights
from .common import (
    PROG,
    WEIGHTS_HELP,
    UsageError,
    at_least,
    check_adapter_for,
    check_output,
    default_fit,
    existing,
    images_in,
    load_stylizer,
    model_args,
    output_names,
    prepare_arg,
    prepare_pair,
    save_dir_arg,
    say,
    seed_arg,
    size_value,
    strength_arg,
    warn_if_style_ignored,
    weights_arg,
)

SWEEP_OTHERS = 0.5  # where sweep holds the sliders it does not move


def cmd_stylize(args: argparse.Namespace) -> int:
    weights = weights_arg(args.style_weights)
    strength = strength_arg(args.strength)
    max_size = size_value(args.size)
    content, style = existing(args.content, "content"), existing(args.style, "style")
    kw = {"weights": weights, "strength": strength, "preserve_color": args.preserve_color, "max_size": max_size}
    warn_if_style_ignored(args)
    if not (content.is_dir() or style.is_dir()):
        out = check_output(args.output)
        st = load_stylizer(args)
        check_adapter_for(st, args, style)
        prepare_pair(st, args, content, style, max_size, default_fit(st, args, style))
        save_image(st.stylize(content, style, **kw), out)
        say(args, f"wrote {out}")
        return 0

    # Folder mode: every content × style pair; a bad image is reported and skipped, exit 1 at the end.
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o '{out_dir}' is a file; with a folder of inputs, -o must be a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in IMAGE_EXTENSIONS:
        raise UsageError(f"-o '{out_dir}' looks like an image file; with a folder of inputs, -o must be a folder")
    save_dir_arg(str(out_dir), "-o")  # writable (or creatable) before any image is read
    contents = images_in(content, "content") if content.is_dir() else [content]
    styles = images_in(style, "style") if style.is_dir() else [style]
    c_names, s_names = output_names(contents), output_names(styles)
    st = load_stylizer(args)
    failed: list[Path] = []  # the folder appears with the first image: a bad weight leaves nothing behind

    def report(e: Exception) -> None:
        print(f"{PROG} stylize: error: {' '.join(str(e).split())}", file=sys.stderr)

    good_styles = []
    for s in styles:
        try:
            st.embed(s)  # cached: each style is read and embedded once for all contents
            good_styles.append(s)
        except ImageError as e:
            report(e)
            failed.append(s)
    if args.adapter and not any(st.has_adapter(s) for s in good_styles):
        raise UsageError(f"--adapter '{args.adapter}' was fitted for none of the paintings in '{style}'")
    written = 0
    for c in contents:
        for s in good_styles:
            name = f"{c_names[c]}__{s_names[s]}.png" if style.is_dir() else f"{c_names[c]}.png"
            try:
                prepare_pair(st, args, c, s, max_size, args.prepare)  # folders: only when asked
                save_image(st.stylize(c, s, **kw), out_dir / name)
                written += 1
            except ImageError as e:
                report(e)
                failed.append(c)
                break  # a bad content file fails for every style alike
    say(args, f"wrote {written} image(s) to {out_dir}" + (f"; {len(failed)} input(s) failed" if failed else ""))
    return 1 if failed else 0


def _sheet_tiles(content: Path, style: Path, max_size: int | None) -> list:
    return [load_image(content, max_size=max_size), load_image(style, max_size=max_size)]


def _check_sheet(args: argparse.Namespace) -> None:
    at_least("--cell", args.cell, 16)
    if args.ncol is not None:
        at_least("--ncol", args.ncol, 1)


def cmd_variations(args: argparse.Namespace) -> int:
    at_least("-n", args.n, 1)
    strength, max_size = strength_arg(args.strength), size_value(args.size)
    content, style = existing(args.content, "content"), existing(args.style, "style")
    out = check_output(args.output)
    _check_sheet(args)
    save_dir = save_dir_arg(args.save_dir)
    warn_if_style_ignored(args)
    st = load_stylizer(args)
    check_adapter_for(st, args, style)
    prepare_pair(st, args, content, style, max_size, default_fit(st, args, style))
    images, alphas = st.variations(
        content,
        style,
        n=args.n,
        seed=args.seed,
        strength=strength,
        preserve_color=args.preserve_color,
        max_size=max_size,
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
        say(args, f"wrote {len(images)} image(s) to {save_dir}")
    say(args, f"wrote {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    given = weights_arg(args.style_weights)
    if args.layer == "all" and given:
        raise UsageError("--layer all moves every style slider; drop --style-weights")
    strength, max_size = strength_arg(args.strength), size_value(args.size)
    at_least("-n", args.n, 2)
    content, style = existing(args.content, "content"), existing(args.style, "style")
    out = check_output(args.output)
    _check_sheet(args)
    warn_if_style_ignored(args)
    st = load_stylizer(args)
    check_adapter_for(st, args, style)
    prepare_pair(st, args, content, style, max_size, default_fit(st, args, style))
    swept = st.style_layers if args.layer == "all" else (args.layer,)
    given.pop(args.layer, None)  # the swept layer takes the sweep's values
    base = {n: SWEEP_OTHERS for n in st.style_layers if n not in swept} | given
    images, values = st.sweep(
        content,
        style,
        args.layer,
        args.n,
        weights=base,
        low=args.low,
        high=args.high,
        strength=strength,
        preserve_color=args.preserve_color,
        max_size=max_size,
    )
    labels = ["content", "style", *(f"{args.layer}={v:.2f}" for v in values)]
    tiles = _sheet_tiles(content, style, max_size) + list(images)
    save_image(contact_sheet(tiles, labels, ncol=args.ncol, cell=args.cell), out)

    losses = layer_losses(st, images, content, style)  # (n, L), raw: comparable across α
    keys = st.schema.keys
    others = {n: base[n] for n in st.style_layers if n not in swept}
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
        print(
            f"style/{name} loss {first:.4g} -> {last:.4g} ({change:+.1f}%) "
            f"as {args.layer} goes {values[0]:.2f} -> {values[-1]:.2f}"
        )
    say(args, f"wrote {out}")
    return 0


def sheet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cell", type=int, default=256, metavar="PX", help="longer side of each tile in the sheet (default 256)"
    )
    p.add_argument("--ncol", type=int, default=None, metavar="N", help="tiles per row (default: all in one row)")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "stylize",
        help="stylize an image (or folders of images) with a trained model",
        description="Stylize CONTENT with STYLE. Either may be a folder: then -o is a folder and every "
        "content (× style) pair is written as OUT/<content>.png (OUT/<content>__<style>.png).",
    )
    p.add_argument("content", help="content image or folder")
    p.add_argument("style", help="style image or folder")
    p.add_argument("-o", "--output", required=True, help="output image, or folder in folder mode")
    p.add_argument("--style-weights", default=None, metavar="L=W,...", help=WEIGHTS_HELP)
    model_args(p, 1024)
    prepare_arg(p, "with folders of images, only when given")
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
    p.add_argument("-n", type=int, default=8, metavar="N", help="number of variations (default %(default)s)")
    seed_arg(p, "the weight vectors (the same seed gives the same sheet)")
    p.add_argument("--save-dir", default=None, help="also save each output into this folder")
    model_args(p, 512)
    prepare_arg(p)
    sheet_args(p)
    p.set_defaults(func=cmd_variations)

    p = sub.add_parser(
        "sweep",
        help="one slider's effect: a labelled strip and the per-layer losses of each value",
        description="Move one style layer's weight from --low to --high in N values, the other style sliders "
        f"held at {SWEEP_OTHERS} (or at --style-weights); write a labelled strip and print each output's raw "
        "per-layer losses (VGG19 loss network).",
    )
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image")
    p.add_argument("-o", "--output", required=True, help="strip image")
    p.add_argument(
        "--layer", required=True, help="style layer to sweep, e.g. relu4_4; all: every style slider together"
    )
    p.add_argument("-n", type=int, default=6, metavar="N", help="number of slider values (default %(default)s)")
    p.add_argument("--low", type=float, default=0.0, help="first value (default 0)")
    p.add_argument("--high", type=float, default=1.0, help="last value (default 1)")
    p.add_argument(
        "--style-weights",
        default=None,
        metavar="L=W,...",
        help=f"the other style layers' weights in [0, 1], e.g. relu2_2=0.2 (unnamed layers: {SWEEP_OTHERS})",
    )
    model_args(p, 512)
    prepare_arg(p)
    sheet_args(p)
    p.set_defaults(func=cmd_sweep)
