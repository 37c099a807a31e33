"""How the stages of a pair preparation's fit change what each fitted point reaches, on one pair at 256 px.

Fits E (the rows of ``adjustable_style.prepare``'s sum) with one of these stage plans, in bfloat16 autocast as the
product does, then prints each fitted point's objective (eq. 9 with the model's EMA) and every layer's raw loss as
a multiple of the middle's (a single slider's end should move its own layer; the others moving as much means the
end carries a gain the middle lacks, and the middle is a bump):

* ``joint``: M and the single sliders' ends together (10 steps), then the corners alone (6);
* ``middle-first`` (shipped): M alone (16 steps, one image each), then ``joint``'s two stages;
* ``middle-fixed``: M alone (16), then the ends with M fixed (10), then the corners (6).

    python scripts/research/prep_stages.py examples/photo_cat.jpg examples/painting_kandinsky_small_worlds_i.jpg joint
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from adjustable_style import prepare as P
from adjustable_style.adapt import frozen_weights
from adjustable_style.image import resize
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer


def setup(photo: str, painting: str) -> SimpleNamespace:
    """What every fit of the pair needs (256 px): the Stylizer ``st``, model ``m`` and ``loss``, the photo ``c``,
    the painting's Gram targets ``stg``, the fitted points' α ``a`` (``n`` of them) and row weights ``w``, the
    EMA normalisers ``ema``, Λ's γ, β at each point, the bf16 autocast ``fast`` and the photo's content targets
    ``ct`` (computed under it)."""
    st = Stylizer.load()
    m, loss = st.model, st.exported.loss_module()
    c = resize(st.image(photo, "content"), max_size=256)
    emb, stg = st.embed(painting), loss.style_targets(st.style_image(painting))
    a = P.end_alphas(m, st.alpha_range)
    n = a.shape[0]
    w = P.end_weights(a, P.style_columns(m), st.alpha_range)
    with torch.no_grad():
        gamma, beta = m.cin_params(a, emb.expand(n, -1))
    fast = torch.autocast("cpu", dtype=torch.bfloat16)
    with fast:
        ct = loss.content_targets(c)
    ema = loss.ema.clamp_min(1e-12).reshape(1, -1)
    return SimpleNamespace(
        st=st, m=m, loss=loss, c=c, stg=stg, a=a, n=n, w=w, ema=ema, gamma=gamma, beta=beta, fast=fast, ct=ct
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("painting")
    ap.add_argument("plan", choices=("joint", "middle-first", "middle-fixed"))
    ap.add_argument("--lr", type=float, default=0.03)
    args = ap.parse_args()
    torch.set_num_threads(1)
    f = setup(args.photo, args.painting)
    st, m, loss, c, stg, a, n, w, ema = f.st, f.m, f.loss, f.c, f.stg, f.a, f.n, f.w, f.ema
    gamma, beta, fast, ct = f.gamma, f.beta, f.fast, f.ct
    e = torch.zeros(n, gamma.shape[1] * 2)

    def stage(points: list[int], rows: list[int], steps: int) -> None:
        free = e[rows].clone().requires_grad_(True)
        opt = torch.optim.Adam([free], lr=args.lr)
        b = len(points)
        tg = Targets({k: v.expand(b, *v.shape[1:]) for k, v in ct.items()}, stg)
        for _ in range(steps):
            ef = e.clone()
            ef[rows] = free
            dg, db = (w[points] @ ef).chunk(2, 1)
            with fast:
                raw = loss.raw_losses(m.net(c.expand(b, -1, -1, -1), gamma[points] + dg, beta[points] + db), tg)
            obj = (a[points] * raw.float() / ema).sum(1).mean()
            opt.zero_grad()
            obj.backward()
            opt.step()
        e[rows] = free.detach()

    single, corners = list(range(n - 2)), [n - 2, n - 1]
    t0 = time.time()
    with frozen_weights(m):
        if args.plan != "joint":
            stage([0], [0], 16)
        stage(single, single if args.plan != "middle-fixed" else single[1:], 10)
        stage(corners, corners, 6)
    seconds = time.time() - t0
    with torch.no_grad():
        dg, db = (w @ e).chunk(2, 1)
        tg = Targets({k: v.expand(n, *v.shape[1:]) for k, v in loss.content_targets(c).items()}, stg)
        raw = loss.raw_losses(m.net(c.expand(n, -1, -1, -1), gamma + dg, beta + db), tg)
    obj = (a * raw / ema).sum(1)
    print(f"{args.plan}: fitted in {seconds:.0f} s; objective per point " + " ".join(f"{v:.3f}" for v in obj.tolist()))
    names = ["content", *st.style_layers]
    for i in range(1, n):
        print(f"  point {i}: loss / middle's " + " ".join(f"{k} {v:.2f}" for k, v in zip(names, (raw[i] / raw[0]))))


if __name__ == "__main__":
    main()
