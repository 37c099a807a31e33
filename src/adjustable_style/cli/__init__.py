"""The ``adjustable-style`` command line: argument parsing and wiring only, one module per command family.

Every user error (bad file, bad layer name, bad weight, unwritable output) becomes one line on stderr and
exit code 1; set ``ADJUSTABLE_STYLE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import adapt, bench, evaluate, export, optimize, serve, stylize, train, video
from .common import UsageError

__all__ = ["UsageError", "build_parser", "main"]

# The command families, in the order `--help` lists them; each module has add_parsers(sub).
COMMANDS = (optimize, train, export, stylize, adapt, video, evaluate, bench, serve)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit code 1 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="adjustable-style",
        description="Adjustable real-time neural style transfer: one slider per loss layer, no retraining.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for family in COMMANDS:
        family.add_parsers(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..config import ConfigError
    from ..image import ImageError

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
