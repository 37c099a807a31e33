"""Calibrate a model's sliders with one painting-independent set of offsets, then export it.

The shipped Λ was trained with α ~ U(0, 1): every slider near 0 at once is rare, so at "all sliders 0" the default
stays more stylized than Magenta's own output, and one slider moved alone (others 0.5) moves its layer little.
This fits offsets D ((1 + L) × 2C; γ, β += [1, 2α − 1]·D, the slider-adapter form of ``adjustable_style.adapt``)
shared by *all* paintings, with the same objective (per-pair base-network normalisation, the recipe's style gain)
and α designs that include those uses ("random" U(0, 1) antithetic pairs, "one" slider 0 → 1 with the others at
0.5, "corners" all 0 / all 1), on the train split of ../shared/data only (train photos × train paintings). D is
folded exactly into Δ's output bias (``fold_offsets``) and the model is written as an fp16 export (+ its LICENSE
and NOTICE). Measure it on held-out pairs with ``python scripts/research/slider_probe.py OUT --pairs 16``.

Usage:
    OMP_WAIT_POLICY=PASSIVE python scripts/research/calibrate_sliders.py --out runs/calibrated \\
        [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from scale_sliders import set_half_gains, write_model

from adjustable_style.adapt import FitSettings, fit_offsets
from adjustable_style.evaluation import shared_data_dir
from adjustable_style.losses import PerceptualLoss
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[2]


def train_images() -> tuple[list[Path], list[Path]]:
    """(photos, paintings) of the train split of ../shared/data; exits with a one-line error when it is absent."""
    data = shared_data_dir()
    if data is None:
        raise SystemExit("error: ../shared/data not found; this uses its train split")
    split = json.loads((ROOT / "configs" / "splits" / "shared_data.json").read_text())
    photos = [data / "content" / n for n in sorted(split["content"]["train"])]
    styles = [data / "style" / n for n in sorted(split["style"]["train"])]
    return photos, styles


def fit_inputs(
    st: Stylizer, loss: PerceptualLoss, photos: list[Path], styles: list[Path]
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """What ``adapt.fit_offsets`` takes from the images: each painting's embedding and Gram targets under ``loss``,
    and each photo (1, 3, H, W) at the model's photo size."""
    embeddings = [st.embed(s) for s in styles]
    targets = [loss.style_targets(st.style_image(s)) for s in styles]
    return embeddings, targets, [st.image(p, "photo") for p in photos]


def fit_on_paintings(
    st: Stylizer,
    photos: list[Path],
    styles: list[Path],
    settings: FitSettings,
    style_gain: float,
    progress: Callable[[int, int, float], None],
    tune: list[torch.nn.Parameter],
) -> torch.Tensor:
    """``adapt.fit_offsets`` on ``st``'s model over these paintings and photos, with its loss module; returns D."""
    loss = st.exported.loss_module()
    return fit_offsets(st.model, loss, *fit_inputs(st, loss, photos, styles), settings, style_gain, progress, tune)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", required=True, help="folder for the calibrated export (must not exist)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--design", default="random,one,corners")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--objective", choices=("base", "ema"), default="base", help="adapt.FitSettings.objective")
    ap.add_argument("--tune-delta", type=float, default=0.0, help="also fine-tune Λ's Δ at this Adam lr (0: only D)")
    ap.add_argument("--gains", default=None, help="set the half gains first: LOW/HIGH, e.g. 1,1,1/1,1,1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists; give a new folder (nothing is overwritten)")
    torch.set_num_threads(args.threads)
    photos, styles = train_images()
    st = Stylizer.load(args.model, device=args.device, backend="torch")
    t0 = time.time()
    print(
        f"{len(photos)} train photos, {len(styles)} train paintings; "
        f"{args.steps} steps of {args.batch} x {args.crop} px",
        flush=True,
    )

    def progress(step: int, steps: int, obj: float) -> None:
        if step % 10 == 0 or step == steps:
            print(f"  step {step}/{steps}: objective {obj:.3f} ({time.time() - t0:.0f} s)", flush=True)

    settings = FitSettings(
        steps=args.steps,
        crop=args.crop,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        design=args.design.split(","),
        objective=args.objective,
        tune_lr=args.tune_delta,
    )
    if args.gains:
        set_half_gains(st, *[[float(x) for x in half.split(",")] for half in args.gains.split("/")])
    lam = st.model.conditioning
    tune = [*lam.body.parameters(), *lam.delta_params.parameters()] if args.tune_delta > 0 else []
    d = fit_on_paintings(st, photos, styles, settings, float(st.exported.config["train"]["style_gain"]), progress, tune)
    st.fold_offsets(d)
    recipe = (
        f"scripts/research/calibrate_sliders.py --steps {args.steps} --crop {args.crop} --batch {args.batch} "
        f"--lr {args.lr} --design {args.design} --seed {args.seed} --objective {args.objective} "
        f"--tune-delta {args.tune_delta} --gains {args.gains} on {args.model}: "
        f"{len(styles)} train paintings x {len(photos)} train photos"
    )
    write_model(st, args.model, recipe, out)
    print(f"wrote {out} ({time.time() - t0:.0f} s); |D| = {float(d.norm()):.3f}")


if __name__ == "__main__":
    main()
