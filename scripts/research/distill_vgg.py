"""Distil VGG19's blocks 3 and 4 into a low-rank network, as a cheaper loss network for the pair preparation.

The preparation's cost is VGG19 arithmetic: three quarters of VGG19's multiply-adds up to relu4_4 are in blocks 3
and 4. The student keeps VGG19 exactly up to relu2_2 (so the relu2_2 loss is exact) and factors each 3×3
convolution of blocks 3 and 4 into a 3×3 one to ``--rank3`` / ``--rank4`` channels and a 1×1 one back to VGG19's
width, initialised from the top principal directions of VGG19's responses (Zhang et al., "Accelerating very deep
convolutional networks", 2015), then distilled on 128-px crops of the split's train photos, train paintings and the
default model's stylizations of them at random α (what the fit sees), to match VGG19's features and Gram matrices.
Every layer keeps its meaning, so Gram matrices, losses and the model's loss EMA do too. ``--first 1_2`` factors
``conv1_2`` and block 2 as well (``--rank1``, ``--rank2``; then relu2_2 is approximate too).

    python scripts/research/distill_vgg.py --out /work/long_run/distill --minutes 40 --lr 3e-5   # the shipped factors
    python scripts/research/distill_vgg.py --out DIR --eval-only    # each layer's gradient w.r.t. γ, β vs VGG19's
    python scripts/research/distill_vgg.py --out DIR --eval-ends    # each slider end's objective gradient - middle's
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from adjustable_style.image import load_image
from adjustable_style.layers import VGG19_LAYERS
from adjustable_style.losses import gram
from adjustable_style.stylizer import Stylizer
from adjustable_style.vgg import VGG19Features

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SPLIT = Path(__file__).resolve().parents[2] / "configs" / "splits" / "shared_data.json"
LAYERS = ("relu2_2", "relu3_4", "relu4_4")


class LowRankVGG(nn.Module):
    """VGG19 to relu2_2 exactly (the teacher's frozen weights), then blocks 3 and 4 with each 3×3 convolution
    factored into a 3×3 one to ``rank`` channels and a 1×1 one back to VGG19's width (initialised from the top
    principal directions of the teacher's responses, :meth:`init_from`), so that every layer keeps its meaning.

    ``forward(x, layers)`` takes [0, 1] RGB like :class:`VGG19Features` and returns the named layers."""

    def __init__(
        self,
        teacher: VGG19Features,
        rank3: int = 64,
        rank4: int = 128,
        first: str = "3_1",
        rank1: int = 24,
        rank2: int = 48,
    ) -> None:
        super().__init__()
        self.teacher = [teacher]  # not a submodule: its buffers are not ours to save
        convs = [n.removeprefix("relu") for n in VGG19_LAYERS[: VGG19_LAYERS.index("relu4_4") + 1]]
        self.names = convs[convs.index(first) :]  # the factored convolutions; the teacher's own before them
        self.prefix = f"relu{convs[convs.index(first) - 1]}"
        ranks = {"1": rank1, "2": rank2, "3": rank3, "4": rank4}
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for n in self.names:
            cin, cout = getattr(teacher, f"conv{n}_weight").shape[1], getattr(teacher, f"conv{n}_weight").shape[0]
            r = ranks[n[0]]
            self.down[n] = nn.Conv2d(cin, r, 3, padding=1, bias=False)
            self.up[n] = nn.Conv2d(r, cout, 1)
        self.layer_names = tuple(VGG19_LAYERS[: VGG19_LAYERS.index("relu4_4") + 1])

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Each layer's 1×1 convolution spans the top principal directions of the teacher's responses on ``x``."""
        t = self.teacher[0]
        h = t(x, [self.prefix])[self.prefix].float()
        for n in self.names:
            if n.endswith("_1"):
                h = F.max_pool2d(h, 2)
            w, b = getattr(t, f"conv{n}_weight").float(), getattr(t, f"conv{n}_bias").float()
            y = F.conv2d(h, w, padding=1)  # responses without the bias
            flat = y.permute(1, 0, 2, 3).reshape(y.shape[1], -1)
            mean = flat.mean(1)
            cov = torch.cov(flat)
            _, vecs = torch.linalg.eigh(cov)
            p = vecs[:, -self.down[n].out_channels :]  # (cout, r)
            self.down[n].weight.copy_(torch.einsum("or,oikl->rikl", p, w))
            self.up[n].weight.copy_(p[:, :, None, None])
            self.up[n].bias.copy_(b + mean - p @ (p.T @ mean))
            h = F.relu(y + b[None, :, None, None])  # the teacher's own input to the next layer

    def tail(self, r22: torch.Tensor, layers=("relu3_4", "relu4_4")) -> dict[str, torch.Tensor]:
        """The factored layers from the teacher's ``self.prefix`` activations ``r22``."""
        out, h = {self.prefix: r22}, r22
        for n in self.names:
            if n.endswith("_1"):
                h = F.max_pool2d(h, 2)
            h = F.relu(self.up[n](self.down[n](h)))
            out[f"relu{n}"] = h
            if all(k in out for k in layers):
                break
        return out

    def forward(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        shallow = [k for k in wanted if VGG19_LAYERS.index(k) < VGG19_LAYERS.index(self.prefix)]
        t = self.teacher[0](x, [*shallow, self.prefix])
        out = {**t, **self.tail(t[self.prefix], tuple(wanted))}
        return {k: v for k, v in out.items() if k in wanted}


def split_files(kind: str, part: str) -> list[Path]:
    names = set(json.loads(SPLIT.read_text())[kind][part])
    return sorted(p for p in (DATA / kind).iterdir() if p.name in names)


def crop(x: torch.Tensor, side: int, g: random.Random) -> torch.Tensor:
    h, w = x.shape[-2:]
    if min(h, w) < side:
        x = F.interpolate(x, scale_factor=side / min(h, w) + 1e-3, mode="bilinear", align_corners=False)
        h, w = x.shape[-2:]
    i, j = g.randrange(h - side + 1), g.randrange(w - side + 1)
    return x[..., i : i + side, j : j + side]


class Samples:
    """128-px crops: a quarter photos, a quarter paintings, half the default model's stylizations at random α."""

    def __init__(self, st: Stylizer, part: str, seed: int, side: int = 128) -> None:
        self.st, self.side, self.g = st, side, random.Random(seed)
        self.photos = [load_image(p, max_size=256) for p in split_files("content", part)]
        paintings = split_files("style", part)
        self.paintings = [load_image(p, max_size=256) for p in paintings]
        with torch.no_grad():
            self.embeddings = [st.embed(p) for p in paintings]
        print(f"{part}: {len(self.photos)} photos, {len(self.paintings)} paintings", flush=True)

    def batch(self, n: int) -> torch.Tensor:
        g, s, out = self.g, self.side, []
        for k in range(n):
            r = k % 4
            if r == 0:
                out.append(crop(g.choice(self.photos), s, g))
            elif r == 1:
                out.append(crop(g.choice(self.paintings), s, g))
            else:
                out.append(self.stylized(crop(g.choice(self.photos), s, g), g.choice(self.embeddings)))
        return torch.cat(out)

    def stylized(self, c: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        m = self.st.model
        a = torch.rand(1, len(m.schema.keys), generator=torch.Generator().manual_seed(self.g.randrange(2**31)))
        a[:, 0] = 1.0
        with torch.no_grad():
            gamma, beta = m.cin_params(a, e)
            # a random γ, β offset as large as the fits' (they move γ, β well beyond Λ's range)
            gamma = gamma + 0.1 * self.g.random() * torch.randn_like(gamma)
            beta = beta + 0.1 * self.g.random() * torch.randn_like(beta)
            return m.net(c, gamma, beta).clamp(0, 1)


def distill_loss(student: LowRankVGG, teacher: VGG19Features, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    deep = [f"relu{n}" for n in student.names]
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        t = teacher(x, [student.prefix, *deep])
    t = {k: v.float() for k, v in t.items()}
    with torch.autocast("cpu", torch.bfloat16):
        s = student.tail(t[student.prefix], tuple(deep))
    parts = {}
    outputs = [k for k in LAYERS if k in deep]
    inner = [k for k in deep if k not in outputs]
    parts["feat_inner"] = sum((s[k].float() - t[k]).pow(2).mean() / t[k].pow(2).mean() for k in inner) / len(inner)
    for k in outputs:
        sf = s[k].float()
        parts[f"feat_{k}"] = (sf - t[k]).pow(2).mean() / t[k].pow(2).mean()
        gs, gt = gram(sf), gram(t[k])
        parts[f"gram_{k}"] = ((gs - gt).pow(2).sum((1, 2)) / gt.pow(2).sum((1, 2))).mean()
    return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    st = Stylizer.load("default", device="cpu")
    teacher = st.model.vgg
    student = LowRankVGG(teacher, args.rank3, args.rank4, args.first, args.rank1, args.rank2)
    ckpt = out / "student.safetensors"
    step = 0
    if ckpt.exists():
        student.load_state_dict(load_file(ckpt))
        step = int(json.loads((out / "state.json").read_text())["step"])
        print(f"resumed at step {step}", flush=True)
    data = Samples(st, "train", args.seed + step)
    if step == 0:
        student.init_from(data.batch(48))
        with torch.no_grad():
            print("at init", distill_loss(student, teacher, data.batch(32))[1], flush=True)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    t0, last_save, hist = time.time(), time.time(), []
    while time.time() - t0 < args.minutes * 60 and args.minutes > 0:
        lr = args.lr * (0.5 * (1 + math.cos(math.pi * min(1.0, (time.time() - t0) / (args.minutes * 60)))))
        for group in opt.param_groups:
            group["lr"] = max(lr, args.lr * 0.05)
        loss, parts = distill_loss(student, teacher, data.batch(args.batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        hist.append(parts)
        if step % 25 == 0:
            mean = {k: sum(h[k] for h in hist) / len(hist) for k in hist[0]}
            print(step, f"{time.time() - t0:.0f}s", " ".join(f"{k} {v:.3f}" for k, v in mean.items()), flush=True)
            hist = []
        if time.time() - last_save > 180:
            save(student, out, step)
            last_save = time.time()
    save(student, out, step)


def save(student: LowRankVGG, out: Path, step: int) -> None:
    tmp = out / "student.tmp"
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, tmp)
    tmp.replace(out / "student.safetensors")
    (out / "state.json").write_text(json.dumps({"step": step}))


def evaluate(args: argparse.Namespace) -> None:
    """Cosine between the teacher's and the student's gradients of each layer's loss with respect to T's γ, β
    (what the fit follows), on held-out photos × paintings at α = 0.5, 128-px crops."""
    st = Stylizer.load("default", device="cpu")
    teacher = st.model.vgg
    student = LowRankVGG(teacher, args.rank3, args.rank4, args.first, args.rank1, args.rank2)
    student.load_state_dict(load_file(Path(args.out) / "student.safetensors"))
    m = st.model
    g = random.Random(1)
    photos = split_files("content", "val")
    paintings = split_files("style", "val")
    cos = {k: [] for k in ("content/relu3_4",) + tuple(f"style/{k}" for k in LAYERS)}
    for i in range(args.eval_pairs):
        c = crop(load_image(photos[i % len(photos)], max_size=256), 128, g)
        sp = paintings[(i * 5) % len(paintings)]
        s = load_image(sp, max_size=256)
        e = st.embed(sp)
        a = torch.full((1, len(m.schema.keys)), 0.5)
        a[:, 0] = 1
        with torch.no_grad():
            gamma0, beta0 = m.cin_params(a, e)
        grads = {}
        for name, net in (("t", teacher), ("s", student)):
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
                ct = net(c, ["relu3_4"])["relu3_4"].float()
                sf = net(s, LAYERS)
                sg = {k: gram(v.float()) for k, v in sf.items()}
            for key in cos:
                kind, layer = key.split("/")
                gamma = gamma0.clone().requires_grad_(True)
                beta = beta0.clone().requires_grad_(True)
                with torch.autocast("cpu", torch.bfloat16):
                    f = net(m.net(c, gamma, beta), [layer])[layer].float()
                loss = (f - ct).pow(2).mean() if kind == "content" else (gram(f) - sg[layer]).pow(2).sum()
                gg, gb = torch.autograd.grad(loss, [gamma, beta])
                grads[(name, key)] = torch.cat([gg.flatten(), gb.flatten()])
        for key in cos:
            cos[key].append(float(F.cosine_similarity(grads[("t", key)], grads[("s", key)], 0)))
        print(i, " ".join(f"{k} {v[-1]:+.2f}" for k, v in cos.items()), flush=True)
    print("median", " ".join(f"{k} {sorted(v)[len(v) // 2]:+.2f}" for k, v in cos.items()), flush=True)


def evaluate_ends(args: argparse.Namespace) -> None:
    """What the fit's first step follows: per held-out pair and slider, the gradient of the paper's objective
    (Σ α_l L_l / EMA_l) with respect to γ, β at the slider's bottom and top ends minus the gradient at the middle
    (relative ends), teacher against student: cosine."""
    import adjustable_style.prepare as pm  # noqa: PLC0415

    st = Stylizer.load("default", device="cpu")
    base = st.exported.loss_module()
    teacher = base.vgg
    student = LowRankVGG(teacher, args.rank3, args.rank4, args.first, args.rank1, args.rank2)
    student.load_state_dict(load_file(Path(args.out) / "student.safetensors"))
    m = st.model
    ema = base.ema.clamp_min(1e-12).reshape(1, -1)
    g = random.Random(1)
    photos, paintings = split_files("content", "val"), split_files("style", "val")
    a = pm.end_alphas(m, st.alpha_range)[:7]
    res = {k: [] for k in ("mid", "relu2_2", "relu3_4", "relu4_4")}
    for i in range(args.eval_pairs):
        c = crop(load_image(photos[i % len(photos)], max_size=256), 128, g)
        sp = paintings[(i * 5) % len(paintings)]
        s = load_image(sp, max_size=256)
        e = st.embed(sp)
        with torch.no_grad():
            gamma0, beta0 = m.cin_params(a, e.expand(7, -1))
        grads = {}
        for name, net in (("t", teacher), ("s", student)):
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
                ct = net(c, ["relu3_4"])["relu3_4"].float()
                sg = {k: gram(v.float()) for k, v in net(s, LAYERS).items()}
            gamma, beta = gamma0.clone().requires_grad_(True), beta0.clone().requires_grad_(True)
            with torch.autocast("cpu", torch.bfloat16):
                f = net(m.net(c.expand(7, -1, -1, -1), gamma, beta), LAYERS)
            f = {k: v.float() for k, v in f.items()}
            raw = [(f["relu3_4"] - ct).pow(2).mean((1, 2, 3))]
            raw += [(gram(f[k]) - sg[k]).pow(2).sum((1, 2)) for k in LAYERS]
            obj = (a * torch.stack(raw, 1) / ema).sum()
            gg, gb = torch.autograd.grad(obj, [gamma, beta])
            grads[name] = torch.cat([gg, gb], 1)
        cos = lambda u, v: float(F.cosine_similarity(u.flatten(), v.flatten(), 0))  # noqa: E731
        res["mid"].append(cos(grads["t"][0], grads["s"][0]))
        for j, k in enumerate(LAYERS):
            rows = [1 + 2 * j, 2 + 2 * j]
            res[k].append(cos(grads["t"][rows] - grads["t"][:1], grads["s"][rows] - grads["s"][:1]))
        print(i, " ".join(f"{k} {v[-1]:+.2f}" for k, v in res.items()), flush=True)
    print("median", " ".join(f"{k} {sorted(v)[len(v) // 2]:+.2f}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rank3", type=int, default=64)
    ap.add_argument("--rank4", type=int, default=128)
    ap.add_argument(
        "--first", default="3_1", help="the first factored convolution (3_1: blocks 3-4; 1_2: from conv1_2)"
    )
    ap.add_argument("--rank1", type=int, default=24)
    ap.add_argument("--rank2", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--eval-ends", action="store_true")
    ap.add_argument("--eval-pairs", type=int, default=12)
    a = ap.parse_args()
    evaluate_ends(a) if a.eval_ends else evaluate(a) if a.eval_only else train(a)
