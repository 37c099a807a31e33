"""`adjustable-style optimize`: Gatys et al.'s optimisation on the pixels (L-BFGS)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from tqdm import tqdm

from ..gatys import GatysConfig, check_memory, optimize
from ..image import load_image, resize, save_image, target_size
from ..layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from ..model_files import load_model
from ..tiling import DEFAULT_MEMORY_LIMIT_GB
from . import common
from .common import UsageError, check_output, layers_arg, quiet_arg, say, seed_arg, size_arg, weights_arg


def _print_losses(title: str, keys: Sequence[str], raw: Sequence[float], weighted: Sequence[float]) -> None:
    print(title)
    print(f"  {'layer':<16} {'raw':>12} {'weighted':>12}")
    for k, r, w in zip(keys, raw, weighted):
        print(f"  {k:<16} {r:>12.4g} {w:>12.4g}")


def cmd_optimize(args: argparse.Namespace) -> int:
    out_path = check_output(args.output)
    if args.size < 16 or (args.style_size is not None and args.style_size < 16):
        raise UsageError(f"--size and --style-size must be >= 16 px, got {args.size} and {args.style_size}")
    if not args.memory_limit > 0:  # also rejects nan
        raise UsageError(f"--memory-limit must be a positive number of GB, got {args.memory_limit}")
    content_layers, style_layers, ema = _optimize_normalizers(args)
    cfg = GatysConfig(
        content_layers=content_layers,
        style_layers=style_layers,
        style_weights=weights_arg(args.style_weights),
        content_weight=args.content_weight,
        tv_weight=args.tv_weight,
        steps=args.steps,
        init=args.init,
        seed=args.seed,
        preserve_color=args.preserve_color,
    )
    cfg.alpha()  # validates style-weight names against the style layers before any work
    device = common.device(args.device)
    # Decode at the files' own size (bounded by image.MAX_PIXELS), check the memory the requested sizes need,
    # and only then resize: --size 100000 is refused before anything that large is allocated.
    content, style = load_image(args.content), load_image(args.style)
    style_size = args.size if args.style_size is None else args.style_size
    check_memory(target_size(content, args.size), target_size(style, style_size), args.memory_limit, cfg.history_size)
    content, style = resize(content, args.size).to(device), resize(style, style_size).to(device)
    torch.manual_seed(args.seed)
    keys = cfg.schema.keys
    bar = tqdm(total=cfg.steps, desc="L-BFGS", unit="step", disable=args.quiet, dynamic_ncols=True)

    def progress(step: int, br) -> None:
        means = br.layer_means(cfg.schema, "raw")
        bar.set_postfix(
            {k.split("/")[1] + ("c" if k.startswith("content") else ""): f"{v:.3g}" for k, v in means.items()}
        )
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
    say(args, f"wrote {out_path}")
    return 0


def _optimize_normalizers(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...], tuple | None]:
    """Layers and normalisers for ``optimize``: the flags', or a trained model's (``--normalizers MODEL``)."""
    if args.normalizers is None:  # an empty flag is a mistake, not "the default"
        return (
            layers_arg(",".join(DEFAULT_CONTENT_LAYERS) if args.content_layers is None else args.content_layers),
            layers_arg(",".join(DEFAULT_STYLE_LAYERS) if args.style_layers is None else args.style_layers),
            None,
        )
    if args.content_layers is not None or args.style_layers is not None:
        raise UsageError("--normalizers takes the layers from the model; drop --content-layers/--style-layers")
    m = load_model(args.normalizers)
    if not (bool((m.ema > 0).all()) and m.ema_tv > 0):
        raise UsageError(
            f"model '{args.normalizers}' has no training EMA to normalise with; use the default normalisers"
        )
    return m.schema.content, m.schema.style, (m.ema, m.ema_tv)


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="Gatys et al.: optimise the pixels with L-BFGS (slow, exact reference for any weights)",
        description="Stylize CONTENT with STYLE by L-BFGS on the pixels, using the same per-layer losses "
        "as the adjustable network (EMA-normalised, weighted per layer).",
    )
    p.add_argument("content", help="content image (photo)")
    p.add_argument("style", help="style image (painting or texture)")
    p.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    size_arg(p, 512, help="longer side of the output in px: the content is resized to it")
    p.add_argument(
        "--style-size", type=int, default=None, metavar="N", help="longer side of the style image (default: --size)"
    )
    p.add_argument("--steps", type=int, default=300, metavar="N", help="L-BFGS iterations (default %(default)s)")
    p.add_argument(
        "--style-weights",
        default=None,
        metavar="L=W,...",
        help="per-layer style weights, e.g. relu2_2=1,relu3_4=0.5,relu4_4=1 (unnamed layers: 1)",
    )
    p.add_argument("--content-weight", type=float, default=1.0, help="content weight (default 1)")
    p.add_argument(
        "--tv-weight",
        type=float,
        default=0.05,
        help="total-variation weight, as a share of one layer's normalised loss (default 0.05, as in training)",
    )
    p.add_argument("--content-layers", default=None, help=f"default: {','.join(DEFAULT_CONTENT_LAYERS)}")
    p.add_argument("--style-layers", default=None, help=f"default: {','.join(DEFAULT_STYLE_LAYERS)}")
    p.add_argument(
        "--normalizers",
        default=None,
        metavar="MODEL",
        help="normalise each layer by this trained model's loss EMA (export folder, .ckpt or bundled name), so "
        "the weights mean what that model's sliders mean; default: each layer's distance between the two images",
    )
    p.add_argument("--init", choices=("content", "style", "noise"), default="content", help="starting image")
    seed_arg(p, "the starting image of --init noise")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    common.device_arg(p)
    p.add_argument(
        "--memory-limit",
        type=float,
        default=DEFAULT_MEMORY_LIMIT_GB,
        metavar="GB",
        help="refuse sizes whose estimated memory exceeds this (default %(default)g GB)",
    )
    quiet_arg(p)
    p.set_defaults(func=cmd_optimize)
