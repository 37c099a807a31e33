"""What the command modules share: the flags with one meaning everywhere, and the checks that turn a mistake in
how a command was called into a one-line :class:`UsageError`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..adapt import load_adapter
from ..checks import InputError
from ..image import IMAGE_EXTENSIONS, is_image_file, writable_parent
from ..layers import check_layer, parse_weights
from ..model_files import DEFAULT_MODEL_DIR, resolve_model
from ..prepare import DEFAULT_PRESET, PRESETS, preset, solo_phrase
from ..stylizer import Stylizer
from ..tiling import DEFAULT_MEMORY_LIMIT_GB

PROG = "adjustable-style"

# Bundled models trained on one painting: whatever style image is given, the output is that painting's style.
SINGLE_STYLE_MODELS = {"starry_night": "Van Gogh's The Starry Night"}

WEIGHTS_HELP = "style weights in [0, 1], e.g. relu2_2=0.2,relu4_4=1 (unnamed layers: 1)"


class UsageError(InputError):
    """A mistake in how the command was called; printed as one line."""


# ---------------------------------------------------------------------------------------------------- flags
SHRINK_HELP = "longer side of the output in px: larger inputs are shrunk to it, 0 keeps their size"


def size_arg(p: argparse.ArgumentParser, default: int, help: str = SHRINK_HELP) -> None:
    """``--size N``: the longer side in px of what the command renders (every rendering command)."""
    p.add_argument("--size", type=int, default=default, metavar="N", help=f"{help} (default %(default)s)")


def quiet_arg(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` (every command)."""
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or status lines (errors and warnings still print)"
    )


def seed_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--seed N``; ``what`` says what it draws."""
    p.add_argument("--seed", type=int, default=0, help=f"random seed for {what} (default %(default)s)")


def device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 … (default %(default)s)")


def model_args(p: argparse.ArgumentParser, size: int) -> None:
    """The flags every command that runs a trained model takes."""
    p.add_argument(
        "--model", default="default", help="export folder, .ckpt file or bundled model name (default: %(default)s)"
    )
    size_arg(p, size)
    p.add_argument("--strength", type=float, default=1.0, help="style strength in [0, 1] (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    device_arg(p)
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="what runs the network: "
        "auto = onnxruntime on the CPU when installed and the model has ONNX graphs (export --onnx, or "
        "cached by an earlier --backend onnxruntime), else torch (default %(default)s)",
    )
    p.add_argument(
        "--adapter",
        default=None,
        metavar="FILE",
        help="a slider adapter for the painting, from "
        "adjustable-style adapt -o FILE (stronger per-layer sliders for that painting); without it, the adapter "
        "adjustable-style adapt stored for the painting is used when there is one",
    )
    p.add_argument(
        "--no-adapter",
        action="store_true",
        help="ignore the painting's stored slider adapter and the pair's stored preparation: the model's own sliders",
    )
    p.add_argument(
        "--memory-limit",
        type=float,
        default=DEFAULT_MEMORY_LIMIT_GB,
        metavar="GB",
        help="images whose network activations "
        "would need more run in overlapping tiles with whole-image statistics (slower, same result); "
        "default %(default)s",
    )
    quiet_arg(p)


def prepare_arg(p: argparse.ArgumentParser, default_note: str = "") -> None:
    """``--prepare [quick|medium|full|STEPS]`` and ``--no-prepare``: whether the sliders are fitted to the pair first
    (commands that render one photo and painting). Without either, the quick fit runs where :func:`default_fit` says
    so (``default_note`` tells where it does not)."""
    p.add_argument(
        "--prepare",
        nargs="?",
        const=DEFAULT_PRESET,
        default=None,
        metavar="FIT",
        help="how the sliders are fitted to this photo and painting first, at the output size (sliders closer to the "
        f"exact optimum of their weights): {' or '.join(PRESETS)} (the default, {DEFAULT_PRESET}: ~3 s at 256 px on "
        "one CPU core, ~6 s at 384 px, 4–6 s above, where its pixel step is skipped; medium: ~10 s, closer; full: "
        "~20 s), or a number of steps of the full fit; kept in the per-user store, so the same pair and size later "
        "start at once" + (f"; {default_note}" if default_note else ""),
    )
    p.add_argument(
        "--no-prepare",
        action="store_true",
        help="no fit and no stored one: the model's own sliders (Λ alone; an adapter still applies)",
    )


# ---------------------------------------------------------------------------------------------------- checks
def say(args: argparse.Namespace, line: str) -> None:
    """A status line on stdout, unless ``-q``."""
    if not getattr(args, "quiet", False):
        print(line, flush=True)


def warn(args: argparse.Namespace, line: str) -> None:
    """A warning on stderr (also with ``-q``): the command runs, but not quite as asked."""
    print(f"{PROG} {args.command}: warning: {line}", file=sys.stderr, flush=True)


def device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name} asked for, but no CUDA device is available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return name


def check_output(path: str | Path) -> Path:
    """Fail early (before any compute) if ``path`` cannot be written as an image."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"output {str(p)!r} must end in one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    if p.is_dir():
        raise UsageError(f"output {str(p)!r} is a directory; give a file name such as {p / 'out.png'}")
    if writable_parent(p) is None:
        raise UsageError(f"cannot write {str(p)!r}: {p.parent} is not a writable directory; choose another output path")
    return p


def weights_arg(text: str | None, flag: str = "--style-weights") -> dict[str, float]:
    """``"relu2_2=0.5,relu4_4=1"`` as a dict; whether the names and values suit the model is the model's check."""
    if text is None:
        return {}
    if not text.strip():  # `--style-weights ""`: most likely an unset shell variable, not "all 1"
        raise UsageError(f"{flag} is empty; write e.g. relu2_2=0.5,relu4_4=1, or leave the flag out")
    return parse_weights(text)


def layers_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError(f"no layer names in {text!r}; write e.g. relu2_2,relu3_4")
    return tuple(check_layer(n) for n in names)


def existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} '{p}' not found; check the path")
    return p


def at_least(flag: str, value: int, low: int) -> int:
    if value < low:
        raise UsageError(f"{flag} must be >= {low}, got {value}")
    return value


def strength_arg(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise UsageError(f"--strength must be in [0, 1], got {value}")
    return value


def size_value(value: int) -> int | None:
    """``--size`` for the commands that shrink: 0 means no limit."""
    if value == 0:
        return None
    if value < 16:
        raise UsageError(f"--size must be >= 16 (or 0 for no limit), got {value}")
    return value


def save_dir_arg(text: str | None, flag: str = "--save-dir") -> Path | None:
    if text is None:
        return None
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} '{p}' is a file; give a folder")
    if writable_parent(p / "x.png") is None:  # checked before any compute, like -o
        raise UsageError(f"cannot write into {flag} '{p}': it or a folder above it is not a writable folder")
    return p


def check_prepare(fit: str) -> None:
    """Fail early (before the model loads) on a ``--prepare`` value that names no fit."""
    try:
        preset(fit)
    except InputError as e:
        raise UsageError(f"--prepare: {e}") from None


def load_stylizer(args: argparse.Namespace) -> Stylizer:
    if not args.memory_limit > 0:  # also rejects nan
        raise UsageError(f"--memory-limit must be a positive number of GB, got {args.memory_limit}")
    if getattr(args, "adapter", None) and getattr(args, "no_adapter", False):
        raise UsageError("--adapter and --no-adapter contradict each other; give one")
    if getattr(args, "prepare", None) is not None:
        if getattr(args, "no_prepare", False):
            raise UsageError("--prepare and --no-prepare contradict each other; give one")
        if getattr(args, "no_adapter", False):
            raise UsageError("--prepare and --no-adapter contradict each other; give one")
        check_prepare(args.prepare)
        if getattr(args, "strength", 1.0) != 1.0:
            raise UsageError("--prepare fits the sliders at full style strength; drop --strength or --prepare")
    path = resolve_model(args.model)  # cheap: fails on a wrong --model before anything is loaded
    st = Stylizer.load(path, device=device(args.device), backend=args.backend)
    st.memory_limit_gb = args.memory_limit
    if getattr(args, "adapter", None):
        st.add_adapter(load_adapter(args.adapter, st.model))
    elif not getattr(args, "no_adapter", False) and st.has_base:
        st.use_adapter_store()  # what adjustable-style adapt fitted for a painting, without -o
    if not (getattr(args, "no_adapter", False) or getattr(args, "no_prepare", False)) and st.has_base:
        st.use_preparation_store()  # pairs prepared before (--prepare, the web page's Prepare)
    elif getattr(args, "prepare", None) is not None:
        raise UsageError(f"--prepare needs a model on a base network (default); --model {args.model} has none")
    return st


def default_fit(st: Stylizer, args: argparse.Namespace, style: Path) -> str | None:
    """The fit a command runs for one pair: ``--prepare``'s when given; else the quick fit, unless the model has no
    base network, the style strength is below 1 (the fit is for full strength), an adapter is given or stored for
    this painting (the user chose it), or ``--no-prepare`` / ``--no-adapter`` asked for the model's own sliders."""
    if getattr(args, "prepare", None) is not None:
        return args.prepare
    if getattr(args, "no_prepare", False) or getattr(args, "no_adapter", False) or not st.has_base:
        return None
    if getattr(args, "strength", 1.0) != 1.0 or st.has_adapter(style):
        return None
    return DEFAULT_PRESET


def prepare_pair(
    st: Stylizer, args: argparse.Namespace, content: Path, style: Path, max_size: int | None, fit: str | None = None
) -> None:
    """Fit the sliders to this pair at this size with ``fit`` (or find the stored fit); without one, say when a
    stored preparation will be used."""
    if fit is None:
        if st.preparation_store is not None and getattr(args, "strength", 1.0) == 1.0:
            if st.find_preparation(content, style, max_size):
                say(args, f"sliders prepared for {content.name} × {style.name} (stored; --no-prepare ignores it)")
        return
    if st.find_preparation(content, style, max_size, preset=fit):
        say(args, f"sliders prepared for {content.name} × {style.name} earlier (stored)")
        return
    settings = preset(fit)
    steps = f"{settings.steps} + {settings.corner_steps} steps{solo_phrase(settings.solo_ends, settings.solo_steps)}"
    skip = "" if getattr(args, "prepare", None) is not None else "; --no-prepare skips it"
    say(args, f"preparing the sliders for {content.name} × {style.name} ({steps}{skip}) …")
    prep = st.prepare(content, style, max_size=max_size, preset=fit)
    say(
        args,
        f"prepared in {float(prep.meta['seconds']):.0f} s at {prep.meta['size']} px (kept in {st.preparation_store})",
    )


def warn_if_style_ignored(args: argparse.Namespace) -> None:
    """A model trained on one painting gives that painting's style whatever the style image: say so."""
    try:
        path = resolve_model(args.model).resolve()
    except InputError:
        return  # the model load reports it
    for name, painting in SINGLE_STYLE_MODELS.items():
        if path == (DEFAULT_MODEL_DIR / name).resolve():
            warn(
                args,
                f"--model {name} knows one painting ({painting}); the style image only nudges it "
                "(use --model default for any painting)",
            )


def check_adapter_for(st: Stylizer, args: argparse.Namespace, style: Path) -> None:
    """With ``--adapter``, fail (one line) unless it was fitted for this painting; say when a stored one is used."""
    if getattr(args, "adapter", None):
        if not st.has_adapter(style):
            raise UsageError(
                f"--adapter '{args.adapter}' was fitted for another painting, not '{style.name}'; fit one with: "
                f"adjustable-style adapt {style} -o {style.stem}.safetensors"
            )
    elif st.adapter_store is not None and st.has_adapter(style):
        say(
            args,
            f"sliders tuned to {style.name} by its stored adapter (adjustable-style adapt; --no-adapter ignores it)",
        )


def images_in(folder: Path, what: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise UsageError(f"{what} folder '{folder}' holds no images (.jpg, .png, …)")
    return files


def output_names(paths: list[Path]) -> dict[Path, str]:
    """File stems for outputs; inputs that share a stem (cat.jpg, cat.png) keep their extension in the name."""
    stems = [p.stem for p in paths]
    return {p: p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:]}" for p in paths}
