"""`adjustable-style serve`: the web page with the sliders (logic in ``adjustable_style.ui``)."""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import sys

from .. import ui
from ..model_files import resolve_model
from ..prepare import DEFAULT_PRESET, PRESETS
from .common import UsageError, check_prepare, device, device_arg, quiet_arg

# gradio's startup hint speaks to Python callers; the command line has a flag for it.
GRADIO_SHARE_HINT = "To create a public link, set `share=True` in `launch()`."
SHARE_HINT = "To create a public link, start again with --share."


class _ShareHint(io.TextIOBase):
    """stdout, with gradio's ``share=True`` hint naming ``--share`` instead."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text.replace(GRADIO_SHARE_HINT, SHARE_HINT))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    check_prepare(args.prepare)
    model = resolve_model(args.model)  # fail on a wrong --model before gradio and the model load
    # `kill` (SIGTERM) stops the page like Ctrl-C does: gradio closes the server and the interpreter exits
    # normally, so the page's temporary folder is removed (a plain SIGTERM would skip every cleanup).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.redirect_stdout(_ShareHint(sys.stdout)):
            ui.serve(
                model,
                host=args.host,
                port=args.port,
                device=device(args.device),
                share=args.share,
                max_upload_mb=args.max_upload_mb,
                quiet=args.quiet,
                backend=args.backend,
                adapters=args.adapters,
                prepare_fit=args.prepare,
                auto_prepare=not args.no_prepare,
            )
    except ImportError as e:
        if str(e) != ui.GRADIO_MISSING:
            raise
        raise UsageError(ui.GRADIO_MISSING) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="the web page: one slider per style layer, live preview, variations (needs the [ui] extra)",
        description="Serve the slider page (gradio) on HOST:PORT until interrupted. It binds to loopback by "
        "default; --host 0.0.0.0 makes it reachable from the network.",
    )
    p.add_argument(
        "--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default: %(default)s)")
    device_arg(p)
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="what runs the network;"
        " auto: onnxruntime on the CPU when installed (graphs exported once, ~25 s), else torch",
    )
    p.add_argument("--max-upload-mb", type=float, default=20, help="larger uploads are refused (default: %(default)s)")
    p.add_argument(
        "--adapters",
        default=None,
        metavar="DIR",
        help="a folder of slider adapters (adjustable-style adapt): an "
        "uploaded painting with one gets its stronger sliders; the page's Tune button saves new ones there "
        "(default: the per-user adapter store that adjustable-style adapt without -o writes)",
    )
    p.add_argument(
        "--prepare",
        default=DEFAULT_PRESET,
        metavar="FIT",
        help="the fit the page runs for each new photo and painting, and its Prepare button: "
        f"{' or '.join(PRESETS)} (default %(default)s: about 6 s on a CPU; medium and full: closer to the exact "
        "optimum of the sliders' weights, about 4 and 8 times as long), or a number of steps of the full fit",
    )
    p.add_argument(
        "--no-prepare",
        action="store_true",
        help="do not prepare each new pair (the page's box starts unticked; its Prepare button still does it)",
    )
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    quiet_arg(p)
    p.set_defaults(func=cmd_serve)
