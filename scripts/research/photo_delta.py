"""Λ that also sees the photo: Δ's first layer gets the photo's own style embedding as a further input.

The shipped Δ(α, e) predicts each slider's move from the painting's embedding alone, though the move L-BFGS makes
for the same weights depends on the photo too. This probe adds ``photo_in`` (a 100 → hidden linear map, started
at zero, so step 0 is the shipped model exactly) on the normalised embedding that Magenta's style predictor gives
for the photo itself, and fine-tunes Δ with it on the paper's EMA objective (``adapt.fit_offsets``'s loop, train
split only, the three α designs). The photo embedding is computed from whatever content the model is given (the
crop in training, the whole photo at use), without gradient. Judge with the cached L-BFGS references:

    python scripts/research/photo_delta.py train --out /work/long_run/photo/run1 --steps 1500
    python scripts/research/photo_delta.py judge --state /work/long_run/photo/run1/step1500.pt --pairs 8
    python scripts/research/photo_delta.py judge --state none --continue-only ...   # Δ without the photo input
"""

from __future__ import annotations

import argparse
import time
import types
from pathlib import Path

import torch
from calibrate_sliders import fit_on_paintings, train_images
from slider_agreement import judge, load_pairs, show
from torch import nn

from adjustable_style.adapt import FitSettings
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[2]


class PhotoInput(nn.Module):
    """Δ's first layer plus a zero-started map of the photo's normalised embedding (``photo``, set per call)."""

    def __init__(self, first: nn.Linear, norm: nn.Module, dim: int) -> None:
        super().__init__()
        self.first, self.norm = first, norm
        self.photo_in = nn.Linear(dim, first.out_features, bias=False)
        nn.init.zeros_(self.photo_in.weight)
        self.photo: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.first(x)
        if self.photo is None:
            return pre
        return pre + self.photo_in(self.norm(self.photo.to(pre))).expand(pre.shape[0], -1)


def add_photo_input(st: Stylizer) -> nn.Linear:
    """Give Λ's Δ a zero-started input for the photo's embedding; the model computes it from its content."""
    model, lam = st.model, st.model.conditioning
    layer = PhotoInput(lam.body[0], lam.in_norm, lam.in_norm.normalized_shape[0])
    lam.body[0] = layer
    original = model.forward

    def model_forward(self, content, embedding, alpha, offsets=None, delta=True):
        with torch.no_grad():
            p = self.embed(content.float()).float()
        layer.photo = p if p.shape[0] == content.shape[0] else p[:1]
        try:
            return original(content, embedding, alpha, offsets=offsets, delta=delta)
        finally:
            layer.photo = None

    model.forward = types.MethodType(model_forward, model)
    return layer.photo_in


def delta_state(st: Stylizer) -> dict:
    return {k: v.detach().clone() for k, v in st.model.conditioning.state_dict().items()}


def cmd_train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    torch.set_num_threads(args.threads)
    photos, styles = train_images()
    st = Stylizer.load(args.model, backend="torch")
    lam = st.model.conditioning
    tune = [*lam.body.parameters(), *lam.delta_params.parameters()]
    if not args.no_photo:
        tune.append(add_photo_input(st).weight)
    t0 = time.time()

    def progress(step: int, steps: int, obj: float) -> None:
        if step % 10 == 0:
            print(f"step {step}/{steps}: objective {obj:.3f} ({time.time() - t0:.0f} s)", flush=True)
        if step % args.every == 0 or step == steps:
            torch.save(delta_state(st), out / f"step{step}.pt")

    settings = FitSettings(
        steps=args.steps,
        crop=args.crop,
        batch=args.batch,
        lr=0.0,  # no painting-independent offsets: only Δ (and its photo input) learn
        seed=args.seed,
        objective="ema",
        tune_lr=args.lr,
    )
    fit_on_paintings(st, photos, styles, settings, 1.0, progress, tune)
    print(f"done ({time.time() - t0:.0f} s)")


def cmd_judge(args) -> None:
    torch.set_num_threads(args.threads)
    st = Stylizer.load(args.model, backend="torch")
    if args.state != "none":
        state = torch.load(args.state, weights_only=True)
        if "photo_in.weight" in state:  # saved before Δ's first layer was wrapped
            old = {"photo_in.weight": "photo_in.weight", "body.0.weight": "first.weight", "body.0.bias": "first.bias"}
            state = {("body.0." + old[k] if k in old else k): v for k, v in state.items()}
        if "body.0.photo_in.weight" in state:
            add_photo_input(st)
        st.model.conditioning.load_state_dict(state)
    pairs = load_pairs(args.pairs, first=args.first)
    show(judge(st, "ema", args.cache, pairs), f"{args.state} vs ema, pairs {args.first}-{args.first + args.pairs - 1}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--every", type=int, default=100)
    t.add_argument("--crop", type=int, default=192)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-photo", action="store_true", help="the same fine-tune without the photo input (control)")
    j = sub.add_parser("judge")
    j.add_argument("--state", required=True, help="a saved Δ state, or none for the model as shipped")
    j.add_argument("--cache", default="/work/long_run/refs")
    j.add_argument("--pairs", type=int, default=8)
    j.add_argument("--first", type=int, default=0)
    for q in (t, j):
        q.add_argument("--model", default="default")
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    {"train": cmd_train, "judge": cmd_judge}[args.cmd](args)


if __name__ == "__main__":
    main()
