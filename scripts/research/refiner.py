"""A slider refiner: a small pixel-space network after T whose output each style slider signs.

y' = sigmoid(logit(y) + Σ_l (2α_l − 1) · R_l(y, e)), y = T's output at α (Λ and T frozen), R a two-scale CNN
(full resolution and ¼) with FiLM from the painting's embedding, its last convolutions zero-started: every slider
in the middle gives T's output exactly, and the refiner can only add what a slider changes. Trained on the
paper's EMA objective (Σ_l α_l · L_l / EMA_l) on the train split with the α designs of ``adapt``, then judged
against the cached L-BFGS references of ``slider_agreement.py``.

    python scripts/research/refiner.py train --out /work/long_run/refiner1 --steps 400
    python scripts/research/refiner.py judge --state /work/long_run/refiner1/refiner.pt --pairs 8
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from calibrate_sliders import fit_inputs, train_images
from slider_agreement import judge, load_pairs, show
from torch import nn

from adjustable_style.adapt import design_alphas, draw_crops, photo_pool
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer


class FiLMConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, e_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect")
        self.film = nn.Linear(e_dim, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        g, b = self.film(e)[..., None, None].chunk(2, 1)
        return F.relu(F.instance_norm(self.conv(x)) * (1 + g) + b)


class Refiner(nn.Module):
    def __init__(
        self, n_sliders: int, e_dim: int = 100, fine: int = 24, coarse: int = 32, init_std: float = 0.0
    ) -> None:
        super().__init__()
        self.n = n_sliders
        self.norm = nn.LayerNorm(e_dim, elementwise_affine=False)
        self.fine = nn.ModuleList([FiLMConv(3, fine, e_dim), FiLMConv(fine, fine, e_dim)])
        self.coarse = nn.ModuleList([FiLMConv(3, coarse, e_dim), *[FiLMConv(coarse, coarse, e_dim) for _ in range(2)]])
        self.fine_out = nn.Conv2d(fine, 3 * n_sliders, 3, padding=1, padding_mode="reflect")
        self.coarse_out = nn.Conv2d(coarse, 3 * n_sliders, 3, padding=1, padding_mode="reflect")
        for m in (self.fine_out, self.coarse_out):  # zero (or tiny) start: the model's own sliders at step 0
            nn.init.normal_(m.weight, std=init_std)
            nn.init.zeros_(m.bias)

    def forward(self, y: torch.Tensor, e: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """y (B, 3, H, W) in (0, 1), e (B, D), coef (B, n) = 2α − 1 of the style sliders."""
        e = self.norm(e)
        h = y
        for layer in self.fine:
            h = layer(h, e)
        r = self.fine_out(h)
        c = F.avg_pool2d(y, 4, ceil_mode=True)
        for layer in self.coarse:
            c = layer(c, e)
        r = r + F.interpolate(self.coarse_out(c), size=y.shape[-2:], mode="bilinear", align_corners=False)
        r = r.unflatten(1, (self.n, 3))  # (B, n, 3, H, W)
        z = torch.logit(y.clamp(1e-4, 1 - 1e-4)) + (coef[:, :, None, None, None] * r).sum(1)
        return torch.sigmoid(z)


def style_coef(st: Stylizer, a: torch.Tensor) -> torch.Tensor:
    cols = [i for i, k in enumerate(st.schema.keys) if k.startswith("style/")]
    return 2 * a[:, cols] - 1


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    st = Stylizer.load(args.model, backend="torch")
    for p in st.model.parameters():
        p.requires_grad_(False)
    loss = st.exported.loss_module()
    photos, styles = train_images()
    if args.style:  # one painting (any, e.g. a held-out one), as an adapter is fitted
        styles = [Path(args.style)]
    t0 = time.time()
    emb, grams, pics = fit_inputs(st, loss, photos, styles)
    pool = photo_pool(pics, args.crop)
    print(f"{len(styles)} paintings, {len(pool)} photos prepared ({time.time() - t0:.0f} s)", flush=True)
    keys = list(st.schema.keys)
    ref = loss.ema.clamp_min(1e-12)
    net = Refiner(len(st.style_layers), emb[0].shape[-1], args.fine, args.coarse, args.init_std)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / args.steps)))
    g = torch.Generator().manual_seed(args.seed)
    designs = args.design.split(",")
    for step in range(args.steps):
        c, which = draw_crops(pool, args.batch // 2, args.crop, len(styles), g)
        a = design_alphas(args.batch // 2, keys, designs[step % len(designs)], g=g)
        e = torch.cat([emb[w] for w in which])
        tg = Targets(loss.content_targets(c), {k: torch.cat([grams[w][k] for w in which]) for k in grams[0]})
        with torch.no_grad():
            y = st.model(c, e, a)
        z = net(y, e, style_coef(st, a))
        obj = (a * loss.raw_losses(z, tg) / ref).sum(1).mean()
        opt.zero_grad()
        obj.backward()
        opt.step()
        sched.step()
        if (step + 1) % 10 == 0:
            secs = time.time() - t0
            print(f"  step {step + 1}/{args.steps}: objective {float(obj.detach()):.3f} ({secs:.0f} s)", flush=True)
        if (step + 1) % 50 == 0 or step + 1 == args.steps:
            torch.save({"state": net.state_dict(), "args": vars(args), "step": step + 1}, out / "refiner.pt")


def refine_stylizer(st: Stylizer, state: dict) -> None:
    """Wrap ``st.stylize_alphas`` so that its outputs go through the refiner."""
    a = state["args"]
    net = Refiner(len(st.style_layers), st.model.config.embedding_dim, a["fine"], a["coarse"])
    net.load_state_dict(state["state"])
    net.eval()
    plain = st.stylize_alphas

    def stylize_alphas(content, style, alphas, max_size=None, **kw):
        y = plain(content, style, alphas, max_size=max_size, **kw)
        with torch.inference_mode():
            e = st.embed(style).expand(y.shape[0], -1)
            return net(y, e, style_coef(st, alphas))

    st.stylize_alphas = stylize_alphas


def cmd_judge(args) -> None:
    torch.set_num_threads(args.threads)
    st = Stylizer.load(args.model, backend="torch")
    if args.state:
        refine_stylizer(st, torch.load(args.state, weights_only=True))
    pairs = load_pairs(args.pairs, first=args.first)
    show(judge(st, args.objective, args.cache, pairs), f"{args.state or args.model} vs {args.objective}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", default="default")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=400)
    t.add_argument("--crop", type=int, default=192)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--fine", type=int, default=24)
    t.add_argument("--coarse", type=int, default=32)
    t.add_argument("--style", default=None, help="fit to this one painting instead of the train split's")
    t.add_argument("--init-std", type=float, default=0.0, help="std of the output convs' start (0: zeros)")
    t.add_argument("--design", default="random,one,corners")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    j = sub.add_parser("judge")
    j.add_argument("--model", default="default")
    j.add_argument("--state", default=None)
    j.add_argument("--objective", default="ema")
    j.add_argument("--cache", default="/work/long_run/refs")
    j.add_argument("--pairs", type=int, default=8)
    j.add_argument("--first", type=int, default=0)
    j.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    {"train": cmd_train, "judge": cmd_judge}[args.cmd](args)


if __name__ == "__main__":
    main()
