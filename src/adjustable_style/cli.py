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
    from .image import IMAGE_EXTENSIONS  # noqa: PLC0415

    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"output {str(p)!r} must end in one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    if p.is_dir():
        raise UsageError(f"output {str(p)!r} is a directory; give a file name such as {p / 'out.png'}")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {str(p)!r}: {parent} is not a writable directory; choose another output path")
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
    cfg = GatysConfig(
        content_layers=_layers(args.content_layers),
        style_layers=_layers(args.style_layers),
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
    out, final = optimize(content, style, cfg, callback=progress)
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
    p.add_argument("--tv-weight", type=float, default=0.0, help="total-variation weight (default 0)")
    p.add_argument("--content-layers", default=",".join(DEFAULT_CONTENT_LAYERS), help="default: %(default)s")
    p.add_argument("--style-layers", default=",".join(DEFAULT_STYLE_LAYERS), help="default: %(default)s")
    p.add_argument("--init", choices=("content", "style", "noise"), default="content", help="starting image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_optimize)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from .image import ImageError  # noqa: PLC0415

    return (UsageError, ImageError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError)


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
