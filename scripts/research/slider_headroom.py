"""How strong could the sliders be on Magenta's frozen T? Two measurements on held-out pairs.

``ceiling``: for each held-out content/style pair and each style layer, optimise the CIN parameters for that one
pair directly (Adam on offsets of γ, β — or on a shift of the style embedding e, so that γ, β stay on Magenta's
own linear maps: ``--space embedding``) under the training objective with the layer's α at 0 and at 1 (the other
style α at 0.5, content 1), and report the layer's loss ratio. No network has to predict anything: this is the
best any Λ could do for that pair with T frozen.

``gatys``: the exact reference — L-BFGS on the pixels of the same objective at each α row (from Magenta's output,
``--steps`` iterations per row, default 50): the sliders a model retrained for each α would aim at.

``adapt``: fit slider directions for one painting at a time — γ, β = base(e) + D_0 + Σ_l (2α_l − 1)·D_l, the
(1 + L) × 2C matrix D learned by the training objective with α ~ U(0, 1) (antithetic pairs) on photos of the
*train* split — then measure the sliders on the held-out photo as ``evaluate`` does. This is what a per-painting
Λ, fitted at use time, would give.

Objective (both): per-sample losses divided by Magenta's own output's losses on the same pair, style terms × gain
(``loss.reference=base``, ``loss.style_gain`` of the shipped recipe).

Usage:
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python scripts/research/slider_headroom.py ceiling \\
        [--space params] [--pairs 3]
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python scripts/research/slider_headroom.py adapt [--steps 40] [--pairs 6]
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python scripts/research/slider_headroom.py gatys [--steps 50] [--pairs 4]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from adjustable_style.conditioning import apply_offsets, slider_coefficients
from adjustable_style.evaluation import EvalSettings, choose_pairs, find_images, shared_data_dir
from adjustable_style.image import load_image, resize
from adjustable_style.losses import Targets
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[2]


def ceiling(
    st: Stylizer, pairs: list, size: int, steps: int, gains: torch.Tensor, space: str
) -> dict[str, list[float]]:
    m, loss, keys, style = st.model, st.exported.loss_module(), list(st.schema.keys), st.style_layers
    own: dict[str, list[float]] = {n: [] for n in style}
    for c_path, s_path in pairs:
        c, e = load_image(c_path, size=size, device=st.device), st.embed(s_path)
        tg = Targets(loss.content_targets(c), loss.style_targets(st.style_image(s_path)))
        with torch.no_grad():
            g0, b0 = m.conditioning.base(e)
            ref = loss.raw_losses(m.net(c, g0, b0), tg)[0]
        for n in style:
            ends = []
            for v in (0.0, 1.0):
                w = torch.tensor([1.0] + [v if k == n else 0.5 for k in style], device=st.device) * gains
                if space == "params":
                    dg, db = torch.zeros_like(g0, requires_grad=True), torch.zeros_like(b0, requires_grad=True)
                    opt = torch.optim.Adam([dg, db], lr=0.02)

                    def make(g0=g0, dg=dg, b0=b0, db=db):
                        return g0 + dg, b0 + db
                else:
                    de = torch.zeros_like(e, requires_grad=True)
                    opt = torch.optim.Adam([de], lr=0.05)

                    def make(e=e, de=de):
                        return m.conditioning.base(e + de)

                for _ in range(steps):
                    obj = (w * loss.raw_losses(m.net(c, *make()), tg)[0] / ref).sum()
                    opt.zero_grad()
                    obj.backward()
                    opt.step()
                with torch.no_grad():
                    ends.append(loss.raw_losses(m.net(c, *make()), tg)[0] / ref)
            j = keys.index(f"style/{n}")
            own[n].append(float(ends[1][j] / ends[0][j]))
            print(
                f"  {c_path.name[:18]:18} x {s_path.name[:24]:24} {n}: own {own[n][-1]:.3f}; losses / Magenta's at α=0 "
                f"{[round(float(x), 2) for x in ends[0]]}, at α=1 {[round(float(x), 2) for x in ends[1]]}",
                flush=True,
            )
    return own


def gatys(st: Stylizer, pairs: list, size: int, iters: int, gains: torch.Tensor) -> dict:
    """The exact reference: L-BFGS on the pixels (sigmoid-parametrised, from Magenta's output) of the same objective
    at each probe row — what a model retrained for those weights would aim at, with no network in the way."""
    m, loss, style = st.model, st.exported.loss_module(), st.style_layers
    rows = [[1.0] + [v if k == n else 0.5 for k in style] for n in style for v in (0.0, 1.0)]
    rows += [[1.0] + [0.0] * len(style), [1.0] + [1.0] * len(style)]
    out: dict[str, dict[str, list[float]] | list[float]] = {
        "own": {n: [] for n in style},
        "top": {n: [] for n in style},
        "bottom": [],
    }
    for c_path, s_path in pairs:
        t0 = time.time()
        x = load_image(c_path, size=size, device=st.device)
        e, tg = st.embed(s_path), Targets(loss.content_targets(x), loss.style_targets(st.style_image(s_path)))
        with torch.no_grad():
            y0 = m.net(x, *m.conditioning.base(e))
            ref = loss.raw_losses(y0, tg)[0]
        ends = []
        for r in rows:
            w = torch.tensor(r, device=st.device) * gains
            z = torch.logit(y0.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
            opt = torch.optim.LBFGS([z], max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

            def closure(opt=opt, w=w, z=z, tg=tg, ref=ref) -> torch.Tensor:
                opt.zero_grad()
                obj = (w * loss.raw_losses(torch.sigmoid(z), tg)[0] / ref).sum()
                obj.backward()
                return obj

            opt.step(closure)
            with torch.no_grad():
                ends.append(loss.raw_losses(torch.sigmoid(z), tg)[0])
        raw = torch.stack([*ends, ref])
        for i, n in enumerate(style):
            out["own"][n].append(float(raw[2 * i + 1, 1 + i] / raw[2 * i, 1 + i]))
            out["top"][n].append(float(raw[-2, 1 + i] / raw[-1, 1 + i]))
        out["bottom"].append(float(raw[-3, 0] / raw[-1, 0]))
        print(
            f"  {c_path.name[:18]:18} x {s_path.name[:24]:24} own "
            + " ".join(f"{v[-1]:.3f}" for v in out["own"].values())
            + " | top/base "
            + " ".join(f"{v[-1]:.3f}" for v in out["top"].values())
            + f" | bottom/base {out['bottom'][-1]:.3f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    return out


def train_photos(n: int, crop: int, seed: int) -> list[torch.Tensor]:
    data = shared_data_dir()
    if data is None:
        raise SystemExit("error: ../shared/data not found; the adapt measurement needs its train photos")
    split = json.loads((ROOT / "configs" / "splits" / "shared_data.json").read_text())
    photos = []
    for name in random.Random(seed).sample(sorted(split["content"]["train"]), n):
        x = load_image(data / "content" / name)
        h, w = x.shape[-2:]
        k = crop / min(h, w)
        photos.append(resize(x, (max(crop, round(h * k)), max(crop, round(w * k))))[..., :crop, :crop])
    return photos


def fit_directions(
    st: Stylizer,
    s_path: Path,
    photos: list[torch.Tensor],
    steps: int,
    gains: torch.Tensor,
    batch: int,
    rng: random.Random,
) -> torch.Tensor:
    """One painting's slider directions D ((1 + L) × 2C): γ, β = base(e) + [1, 2α − 1] · D, fitted by the objective."""
    m, loss, n_a = st.model, st.exported.loss_module(), len(st.schema.keys)
    e, sg = st.embed(s_path), loss.style_targets(st.style_image(s_path))
    g0, b0 = m.conditioning.base(e)
    t0 = time.time()
    d = torch.zeros(1 + n_a, 2 * m.net.cin_channels, device=st.device, requires_grad=True)
    opt = torch.optim.Adam([d], lr=0.02)
    for _ in range(steps):
        c = torch.cat([photos[i] for i in rng.sample(range(len(photos)), batch // 2) for _ in (0, 1)]).to(st.device)
        a = torch.rand(batch // 2, n_a).to(st.device)
        a = torch.stack([x for row in a for x in (row, 1 - row)])  # antithetic: α and 1 − α on the same pair
        tg = Targets(loss.content_targets(c), {k: v.expand(len(c), *v.shape[1:]) for k, v in sg.items()})
        with torch.no_grad():
            ref = loss.raw_losses(m.net(c, g0.expand(len(c), -1), b0.expand(len(c), -1)), tg)
        gamma, beta = apply_offsets(g0.expand(len(c), -1), b0.expand(len(c), -1), a, d)
        obj = (a * gains * loss.raw_losses(m.net(c, gamma, beta), tg) / ref).sum(1).mean()
        opt.zero_grad()
        obj.backward()
        opt.step()
    print(
        f"  fitted {s_path.name}: {steps} steps, {time.time() - t0:.0f} s, last objective {obj.item():.3f}", flush=True
    )
    return d.detach()


def fit_all(
    st: Stylizer,
    out: Path,
    steps: int,
    gains: torch.Tensor,
    crop: int,
    batch: int,
    seed: int,
    shard: str = "0/1",
    limit: int = 0,
) -> None:
    """Fit D for every train-split painting, one file each (skipped when present): teachers for an amortised Λ.

    ``shard`` "i/n": only the paintings whose index is i mod n (n processes can share the list).
    """
    from safetensors.torch import save_file

    data = shared_data_dir()
    split = json.loads((ROOT / "configs" / "splits" / "shared_data.json").read_text())
    photos = train_photos(16, crop, seed)
    out.mkdir(parents=True, exist_ok=True)
    i, n = (int(v) for v in shard.split("/"))
    for name in sorted(split["style"]["train"])[i::n][: limit or None]:
        dest = out / (Path(name).stem + ".safetensors")
        if dest.exists():
            continue
        d = fit_directions(st, data / "style" / name, photos, steps, gains, batch, random.Random(f"{seed}:{name}"))
        tmp = dest.with_suffix(".tmp")
        save_file(
            {"D": d.cpu().contiguous(), "embedding": st.embed(data / "style" / name)[0].cpu().contiguous()},
            str(tmp),
            metadata={"style": name, "steps": str(steps), "crop": str(crop), "batch": str(batch)},
        )
        tmp.replace(dest)


def distill(st: Stylizer, teachers: Path, out: Path, steps: int, seed: int) -> None:
    """Train the model's Δ to reproduce per-painting fits: Δ(α, e) ≈ [1, 2α − 1] · D(e) (no images), then export.

    A fifth of the teachers (every fifth file) is held out and reported as the relative error of Δ's γ, β offsets.
    """
    from safetensors import safe_open

    from adjustable_style.export import write_export

    lam = st.model.conditioning
    if (
        getattr(lam, "delta_params", None) is None
        or getattr(lam, "delta_embedding", None) is not None
        or lam.terms == 1
    ):
        raise SystemExit("error: distill needs a model with model.delta=params and model.delta_form=bilinear")
    files = sorted(teachers.glob("*.safetensors"))
    if len(files) < 2:
        raise SystemExit(f"error: {teachers} holds {len(files)} teacher fits; run `fit --out {teachers}` first")
    e_all, d_all = [], []
    for f in files:
        with safe_open(str(f), "pt") as t:
            e_all.append(t.get_tensor("embedding"))
            d_all.append(t.get_tensor("D"))
    e_all, d_all = torch.stack(e_all).to(st.device), torch.stack(d_all).to(st.device)  # (N, 100), (N, 1 + L, 2C)
    held = torch.arange(len(files)) % 5 == 4 if len(files) >= 5 else torch.zeros(len(files), dtype=torch.bool)
    params = [
        p
        for p in lam.parameters()
        if p is not lam.base_gamma.weight
        and p is not lam.base_gamma.bias
        and p is not lam.base_beta.weight
        and p is not lam.base_beta.bias
    ]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    n_a = d_all.shape[1] - 1

    def error(which: torch.Tensor, n: int = 64) -> float:
        e, d = e_all[which], d_all[which]
        a = torch.rand(len(e) * n, n_a, generator=g).to(st.device)
        e, d = e.repeat_interleave(n, 0), d.repeat_interleave(n, 0)
        target = torch.einsum("bk,bkc->bc", slider_coefficients(a), d)
        gamma, beta = lam(a, e)
        g0, b0 = lam.base(e)
        pred = torch.cat([gamma - g0, beta - b0], 1)
        return float((pred - target).norm() / target.norm())

    train = ~held
    for step in range(1, steps + 1):
        idx = torch.nonzero(train)[:, 0][torch.randint(int(train.sum()), (64,), generator=g)].to(st.device)
        e, d = e_all[idx], d_all[idx]
        a = torch.rand(len(idx), n_a, generator=g).to(st.device)
        target = torch.einsum("bk,bkc->bc", slider_coefficients(a), d)
        gamma, beta = lam(a, e)
        g0, b0 = lam.base(e)
        loss = ((torch.cat([gamma - g0, beta - b0], 1) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % max(steps // 10, 1) == 0 or step == steps:
            with torch.no_grad():
                msg = f"step {step}: relative error train {error(train):.3f}"
                if held.any():
                    msg += f", held-out teachers {error(held):.3f}"
            print("  " + msg, flush=True)
    config = {
        **st.exported.config,
        "distilled_from": f"{len(files)} per-painting fits in {teachers.name} "
        f"({int(held.sum())} held out), scripts/research/slider_headroom.py distill --steps {steps}",
    }
    write_export(config, st.model.state_dict(), out)
    print(f"wrote {out}")


def adapt(
    st: Stylizer, pairs: list, size: int, steps: int, gains: torch.Tensor, crop: int, batch: int, seed: int
) -> dict:
    m, loss, keys, style = st.model, st.exported.loss_module(), list(st.schema.keys), st.style_layers
    rng = random.Random(seed)
    photos = train_photos(16, crop, seed)
    out: dict[str, dict[str, list[float]] | list[float]] = {
        "own": {n: [] for n in style},
        "top": {n: [] for n in style},
        "bottom": [],
    }
    fitted: dict[Path, torch.Tensor] = {}
    for c_path, s_path in pairs:
        e, sg = st.embed(s_path), loss.style_targets(st.style_image(s_path))
        g0, b0 = m.conditioning.base(e)
        if s_path not in fitted:
            fitted[s_path] = fit_directions(st, s_path, photos, steps, gains, batch, rng)
        x = load_image(c_path, size=size, device=st.device)
        rows = [[1.0] + [v if k == n else 0.5 for k in style] for n in style for v in (0.0, 1.0)]
        a = torch.tensor(rows + [[1.0] + [0.0] * len(style), [1.0] + [1.0] * len(style)], device=st.device)
        with torch.no_grad():
            gamma, beta = apply_offsets(g0.expand(len(a), -1), b0.expand(len(a), -1), a, fitted[s_path])
            outs = m.net(x.expand(len(a), -1, -1, -1), gamma, beta)
            ct = loss.content_targets(x)
            raw = loss.raw_losses(outs, Targets({k: v.expand(len(a), *v.shape[1:]) for k, v in ct.items()}, sg))
            base = loss.raw_losses(m.net(x, g0, b0), Targets(ct, sg))[0]
        for i, n in enumerate(style):
            j = keys.index(f"style/{n}")
            out["own"][n].append(float(raw[2 * i + 1, j] / raw[2 * i, j]))
            out["top"][n].append(float(raw[-1, j] / base[j]))
        out["bottom"].append(float(raw[-2, 0] / base[0]))
        print(
            f"  {c_path.name[:18]:18} x {s_path.name[:24]:24} own "
            + " ".join(f"{v[-1]:.3f}" for v in out["own"].values())
            + " | top/base "
            + " ".join(f"{v[-1]:.3f}" for v in out["top"].values())
            + f" | bottom/base {out['bottom'][-1]:.3f}",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ceiling", "adapt", "fit", "distill", "gatys"])
    ap.add_argument("--out", default="", help="fit: folder for one D per train painting; distill: the exported model")
    ap.add_argument("--shard", default="0/1", help="fit: i/n, this process's share of the paintings")
    ap.add_argument("--teachers", default="", help="distill: the folder `fit` wrote")
    ap.add_argument("--model", default="default", help="a base_delta model: its base maps, T and P are used, not its Δ")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--size", type=int, default=None, help="held-out photo size (default: ceiling 192, adapt 256)")
    ap.add_argument(
        "--steps", type=int, default=None, help="Adam steps (default: ceiling 60 per α, adapt 40 per painting)"
    )
    ap.add_argument("--space", choices=["params", "embedding"], default="params", help="ceiling: what is optimised")
    ap.add_argument("--style-gain", type=float, default=3.0)
    ap.add_argument("--crop", type=int, default=160, help="adapt: train-photo crop")
    ap.add_argument("--batch", type=int, default=4, help="adapt: images per step (even)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto…")
    ap.add_argument("--limit", type=int, default=0, help="fit: at most this many paintings (0: all; smoke tests)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    st = Stylizer.load(args.model, device=args.device, backend="torch")
    if not st.has_base:
        raise SystemExit(f"error: {args.model} is not built on a base network (conditioning base_delta)")
    for p in st.model.parameters():
        p.requires_grad_(False)
    contents, styles, where = find_images(EvalSettings())
    pairs = choose_pairs(contents, styles, args.pairs, args.seed)
    gains = torch.tensor([1.0] * len(st.schema.content) + [args.style_gain] * len(st.style_layers), device=st.device)
    med = statistics.median
    if args.what in ("ceiling", "adapt", "gatys"):
        print(f"{args.what}: {len(pairs)} held-out pairs from {where}; medians over pairs", flush=True)
    if args.what == "ceiling":
        own = ceiling(st, pairs, args.size or 192, args.steps or 60, gains, args.space)
        print(f"ceiling ({args.space}) own ratio " + " / ".join(f"{n} {med(v):.3f}" for n, v in own.items()))
    elif args.what == "fit":
        if not args.out:
            raise SystemExit("error: fit needs --out DIR")
        fit_all(st, Path(args.out), args.steps or 40, gains, args.crop, args.batch, args.seed, args.shard, args.limit)
    elif args.what == "distill":
        if not args.out or not args.teachers:
            raise SystemExit("error: distill needs --teachers DIR and --out MODEL_DIR")
        distill(st, Path(args.teachers), Path(args.out), args.steps or 2000, args.seed)
    else:
        if args.what == "gatys":
            r = gatys(st, pairs, args.size or 256, args.steps or 50, gains)
        else:
            r = adapt(st, pairs, args.size or 256, args.steps or 40, gains, args.crop, args.batch, args.seed)
        print(
            f"{args.what} own ratio "
            + " / ".join(f"{n} {med(v):.3f}" for n, v in r["own"].items())
            + " | top/base "
            + " / ".join(f"{med(v):.3f}" for v in r["top"].values())
            + f" | bottom/base {med(r['bottom']):.3f}"
        )


if __name__ == "__main__":
    main()
