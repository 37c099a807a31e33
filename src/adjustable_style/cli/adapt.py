"""`adjustable-style adapt`: fit slider adapters for paintings (logic in ``adjustable_style.adapt``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..adapt import BUNDLED_PHOTOS, save_adapter, store_dir, store_path
from ..image import writable_parent
from ..measure import slider_strength
from ..model_files import resolve_model
from ..stylizer import Stylizer
from .common import UsageError, at_least, device, device_arg, existing, images_in, quiet_arg, say, seed_arg


def cmd_adapt(args: argparse.Namespace) -> int:
    at_least("--steps", args.steps, 1)
    at_least("--crop", args.crop, 64)
    style = existing(args.style, "style")
    styles = images_in(style, "style") if style.is_dir() else [style]
    dests: list[Path] = []
    if args.output is not None:
        out = Path(args.output)
        if style.is_dir():  # one adapter per painting: -o is a folder
            if out.exists() and not out.is_dir():
                raise UsageError(f"-o '{out}' is a file; with a folder of paintings, -o must be a folder")
            dests = [out / f"{s.stem}.safetensors" for s in styles]
        else:
            if out.suffix != ".safetensors":
                raise UsageError(f"-o '{out}' must end in .safetensors (or give a folder of paintings)")
            dests = [out]
        if writable_parent(dests[0]) is None:  # checked before any compute; the folder is made with the first file
            raise UsageError(
                f"cannot write '{dests[0]}': a folder above it is a file or not writable; choose another -o"
            )
    photos: list[Path] = []
    for p in args.photos or []:
        q = existing(p, "photo")
        photos += images_in(q, "photo") if q.is_dir() else [q]
    check = existing(args.check, "check photo") if args.check else BUNDLED_PHOTOS[0]
    st = Stylizer.load(resolve_model(args.model), device=device(args.device))
    if not st.has_base:
        raise UsageError(
            f"--model {args.model} was trained from scratch; slider adapters need a model on a base network (default)"
        )
    if not dests:  # the adapter store, where the other commands find each painting's adapter
        store = store_dir(st.model)
        if writable_parent(store / "x.safetensors") is None:
            raise UsageError(
                f"cannot write into the adapter store '{store}'; give -o FILE (or set ADJUSTABLE_STYLE_CACHE)"
            )
        dests = [store_path(store, st.style_digest(s)) for s in styles]
    for s, dest in zip(styles, dests):
        if dest.exists() and not args.force:
            say(args, f"{dest} exists; skipped (use --force to fit it again)")
            continue
        st.embed(s)  # a bad painting fails here, before the fit
        t0 = time.time()

        def progress(step: int, steps: int, obj: float, t0: float = t0, name: str = s.name) -> None:
            if not args.quiet and (step % 10 == 0 or step == steps):
                print(
                    f"  {name}: step {step}/{steps}, objective {obj:.3f}, {time.time() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

        before = slider_strength(st, check, s) if args.report else None
        ad = st.fit_adapter(
            s, photos or None, progress, steps=args.steps, crop=args.crop, seed=args.seed, objective=args.objective
        )
        save_adapter(ad, dest)
        line = f"wrote {dest} ({time.time() - t0:.0f} s)"
        if before is not None:
            st.add_adapter(ad)
            after = slider_strength(st, check, s)
            st.remove_adapters()
            line += (
                f"; slider strength on {Path(check).name} (own-layer loss at 1 / at 0, lower = stronger): "
                + ", ".join(f"{n} {before[n]:.2f} -> {after[n]:.2f}" for n in st.style_layers)
            )
        say(args, line)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "adapt",
        help="tune the sliders to a painting once (minutes on a CPU), then use them in real time",
        description="Fit a slider adapter for STYLE: per-painting offsets of the CIN parameters, trained with the "
        "paper's α-weighted objective on a few photos, that make each slider move its own layer more. "
        "Without -o it goes into the per-user adapter store, and stylize, sweep, variations, video and serve use "
        "it whenever this painting is the style (--no-adapter ignores it). With -o FILE, use it with --adapter "
        "FILE, or evaluate --adapters DIR. STYLE may be a folder: then -o is a folder and each painting gets "
        "OUT/<name>.safetensors.",
    )
    p.add_argument("style", help="painting, or a folder of paintings")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="adapter file (.safetensors), or a folder for a folder of paintings "
        "(default: the adapter store, ~/.cache/adjustable-style/adapters)",
    )
    p.add_argument(
        "--photos", nargs="+", default=None, help="photos or folders to fit on (default: the 3 bundled photos)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=60,
        metavar="N",
        help="Adam steps (default %(default)s; ~4 min on one CPU core; 30 halves it)",
    )
    p.add_argument(
        "--crop", type=int, default=192, metavar="PX", help="side of the photo crops it fits on (default %(default)s)"
    )
    p.add_argument(
        "--objective",
        choices=("ema", "base"),
        default="ema",
        help="ema: the paper's objective, the one optimize and evaluate use (default); base: each layer's loss "
        "divided by the base network's own loss on the crop",
    )
    seed_arg(p, "the photo crops and slider values it fits on")
    p.add_argument("--check", default=None, help="photo for the before/after slider report (default: the bundled cat)")
    p.add_argument("--no-report", dest="report", action="store_false", help="skip the before/after slider report")
    p.add_argument("--force", action="store_true", help="fit again even when the adapter file exists")
    p.add_argument("--model", default="default", help="model with a base network (default: %(default)s)")
    device_arg(p)
    quiet_arg(p)
    p.set_defaults(func=cmd_adapt)
