"""The per-pair ceiling of one slider on the paper's objective: free γ, β offsets (one constant offset of every CIN
parameter, fitted for this pair alone) at the slider's two ends, the other sliders at 0.5, content 1, objective
Σ_l α_l · L_l / EMA_l (eq. 9, the one `optimize` and `adapt` use). Reports the own-layer ratio L(1) / L(0) with and
without the fit, on evaluate's held-out pairs at 256 px.

    python scripts/research/ema_ceiling.py --first 0 --pairs 1 --layer relu4_4 [--steps 80] [--fit-size 128]
"""

from __future__ import annotations

import argparse
import time

import torch
from slider_agreement import load_pairs

from adjustable_style.evaluation.pairs import style_alpha
from adjustable_style.evaluation.slider_effect import _raw_losses, _style_targets
from adjustable_style.image import resize
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer


def fit_end(st: Stylizer, content, s, alpha, grams, steps: int, lr: float, fit_size: int | None = None) -> torch.Tensor:
    """The output at ``alpha`` with a constant γ, β offset fitted for this pair by eq. 9 (on the photo resized to
    ``fit_size`` when given: a cheaper preparation, applied at full size)."""
    full = content
    if fit_size is not None:
        content = resize(content, max_size=fit_size)
    loss = st.exported.loss_module()
    model = st.model
    e = st.embed(s)
    ema = loss.ema.clamp_min(1e-12).reshape(1, -1)
    tg = Targets(loss.content_targets(content), grams)
    for p in model.parameters():
        p.requires_grad_(False)
    d = torch.zeros(1 + alpha.shape[1], 2 * model.net.cin_channels, requires_grad=True)
    opt = torch.optim.Adam([d], lr=lr)
    mask = torch.zeros_like(d)
    mask[0] = 1  # only the constant row: free γ, β for this one α
    for _ in range(steps):
        obj = (alpha * loss.raw_losses(model(content, e, alpha, offsets=d * mask), tg) / ema).sum()
        opt.zero_grad()
        obj.backward()
        opt.step()
    with torch.no_grad():
        return model(full, e, alpha, offsets=d * mask).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--layer", default="relu4_4")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--fit-size", type=int, default=None, help="fit on the photo at this longer side (default: 256)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    st = Stylizer.load("default")
    j = list(st.schema.keys).index(f"style/{args.layer}")
    for k, _, s, content in load_pairs(args.pairs, first=args.first):
        t0 = time.time()
        grams = _style_targets(st, st.style_image(s))
        a = style_alpha(st, dict.fromkeys(st.style_layers, 0.5)).repeat(2, 1)
        a[0, j], a[1, j] = 0.0, 1.0
        with torch.no_grad():
            model_ends = st.stylize_alphas(content, s, a, max_size=None)
        free = torch.cat(
            [fit_end(st, content, s, a[i : i + 1], grams, args.steps, args.lr, args.fit_size) for i in (0, 1)]
        )
        own_model = _raw_losses(st, model_ends, content, grams)[:, j]
        own_free = _raw_losses(st, free, content, grams)[:, j]
        print(
            f"pair {k} ({s.name}) {args.layer}: model {float(own_model[1] / own_model[0]):.2f}, "
            f"free γ, β per end {float(own_free[1] / own_free[0]):.2f} ({time.time() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
