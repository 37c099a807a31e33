"""The ``adjustable-style`` command line: argument parsing and wiring only, one module per command family.

A mistake in the input (a bad file, layer name, weight or output path) is one line on stderr naming the
subcommand, and exit code 1; set ``ADJUSTABLE_STYLE_DEBUG=1`` to see its traceback. Any other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..checks import InputError
from . import adapt, bench, evaluate, export, optimize, serve, stylize, train, video
from .common import PROG, UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "main", "subcommands"]

# The command families, in the order `--help` lists them; each module has add_parsers(sub).
COMMANDS = (optimize, train, export, stylize, adapt, video, evaluate, bench, serve)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming the subcommand, and exit code 1 like every input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Adjustable real-time neural style transfer: one slider per loss layer, no retraining.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for family in COMMANDS:
        family.add_parsers(sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name (``stylize``, ``sweep``, …)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``adjustable-style``; returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top-level command; the subcommand is the one that got them
        subcommands(parser)[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if os.environ.get("ADJUSTABLE_STYLE_DEBUG"):
        return int(args.func(args))
    try:
        return int(args.func(args))
    except InputError as e:  # every module's user-facing error class subclasses it
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{PROG} {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except OSError as e:  # the system refused (disk full, permission denied): the machine's state, not a bug
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"{PROG} {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
