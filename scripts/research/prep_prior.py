"""A population prior for pair preparation: the mean fitted E over training pairs, as the sliders' correction without
any fit, or as the fit's starting point (fewer steps for the same result?).

    # fit the quick preparation on N training pairs (train split of configs/splits/shared_data.json) at 256 px
    python scripts/research/prep_prior.py collect --pairs 48 --out /work/long_run/prior.safetensors
    # how alike the pairs' fits are (cosine of each pair's rows with the mean), in E and in Z = E / column_scale
    python scripts/research/prep_prior.py show --prior /work/long_run/prior.safetensors
    # evaluate with the prior: alone (no fit), or as the start of a shorter fit (the rest passes to evaluate)
    python scripts/research/prep_prior.py evaluate --prior F --mode alone --space z -- --pairs 16 ...
    python scripts/research/prep_prior.py evaluate --prior F --mode start --set steps=2 -- --pairs 16 ...
    # a screen on the collected (training) pairs: each row's cosine of a variant's fit with the collected fit
    python scripts/research/prep_prior.py proxy --prior F --pairs 12 --set lr=0.05
    # a screen on the collected pairs in what the picture does: each slider's change between its ends in VGG
    # statistics, a variant's fit against the collected (medium) fit's; --own adds the model's own sliders
    python scripts/research/prep_prior.py agree --prior F --pairs 24 --set lr=0.05 [--own]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import adjustable_style.prepare as prep_mod
from adjustable_style.evaluation.splits import DEFAULT_SPLIT, REPO_ROOT, choose_pairs, shared_data_dir
from adjustable_style.image import resize
from adjustable_style.stylizer import Stylizer


def train_pairs(n: int, seed: int) -> list[tuple[Path, Path]]:
    root = shared_data_dir()
    if root is None:
        raise SystemExit("no shared data")
    split = json.loads((REPO_ROOT / DEFAULT_SPLIT).read_text())
    files = {}
    for kind in ("content", "style"):
        names = set(split[kind]["train"])
        files[kind] = sorted(p for p in (root / kind).iterdir() if p.name in names)
    return choose_pairs(files["content"], files["style"], n, seed)


def collect(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    st = Stylizer.load()
    ends, scales, names = [], [], []
    t0 = time.time()
    for i, (c, s) in enumerate(train_pairs(args.pairs, args.seed)):
        prep = st.prepare(c, s, max_size=args.size, preset=args.preset)
        scale = prep_mod.column_scale(st.model, st.embed(s), st.alpha_range)
        ends.append(prep.ends)
        scales.append(scale.cpu())
        names.append(f"{c.name}|{s.name}")
        print(f"{i} {c.name} × {s.name}: {prep.meta.get('seconds')} s ({time.time() - t0:.0f} s in all)", flush=True)
        st.clear_cache()
    save_file(
        {"ends": torch.stack(ends), "scales": torch.stack(scales)},
        args.out,
        metadata={"names": "\n".join(names), "preset": args.preset, "size": str(args.size)},
    )


def prior(path: str, space: str, stat: str) -> torch.Tensor:
    d = load_file(path)
    x = d["ends"] / d["scales"][:, None, :] if space == "z" else d["ends"]
    return x.median(0).values if stat == "median" else x.mean(0)


def show(args: argparse.Namespace) -> None:
    d = load_file(args.prior)
    for space in ("e", "z"):
        x = d["ends"] / d["scales"][:, None, :] if space == "z" else d["ends"]
        m = x.mean(0)
        cos = torch.nn.functional.cosine_similarity(x, m.expand_as(x), dim=2)  # (N, rows)
        norm = x.norm(dim=2).median(0).values
        print(f"{space}: cosine of each pair's row with the mean row (median over pairs), row norms, mean's norm")
        for r in range(x.shape[1]):
            print(f"  row {r}: cos {cos[:, r].median():.3f}  |pair| {norm[r]:.3f}  |mean| {m[r].norm():.3f}")


def _variant_fits(args: argparse.Namespace, st: Stylizer, n: int):
    """The variant (``args.preset`` with ``args.set``) fitted on the first ``args.pairs`` of the ``n`` collected
    pairs: yields (index, photo, painting's embedding, E, seconds)."""
    settings = _with_overrides(args.preset, args.set)
    loss = prep_mod.fit_loss(st.exported.loss_module(), settings)
    for i, (c, s) in enumerate(train_pairs(n, args.seed)[: args.pairs]):
        img = resize(st.image(c, "content"), max_size=args.size)
        emb = st.embed(s)
        t0 = time.time()
        with prep_mod.fit_autocast(st.device, settings):
            targets = loss.style_targets(st.style_image(s).to(st.device))
        e = prep_mod.fit_ends(st.model, loss, img, emb, targets, st.alpha_range, settings)
        yield i, img, emb, e, time.time() - t0
        st.clear_cache()


def proxy(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    d = load_file(args.prior)
    st = Stylizer.load()
    cos, secs = [], []
    for i, _, _, e, sec in _variant_fits(args, st, d["ends"].shape[0]):
        secs.append(sec)
        cos.append(torch.nn.functional.cosine_similarity(e, d["ends"][i], dim=1))
    med = torch.stack(cos).median(0).values
    print(f"{args.set}: {sum(secs) / len(secs):.1f} s a pair")
    print("  median cosine per row (M, then bottom/top per slider, corners):", " ".join(f"{v:.2f}" for v in med))
    print(f"  ends' mean {med[1:-2].mean():.3f}")


def agree(args: argparse.Namespace) -> None:
    from adjustable_style.evaluation.slider_effect import vgg_statistics

    torch.set_num_threads(args.threads)
    d = load_file(args.prior)
    st = Stylizer.load()
    cols = prep_mod.style_columns(st.model)
    ends_a = prep_mod.end_alphas(st.model, st.alpha_range)[1:-2]  # each slider at its bottom, then its top

    def changes(img, emb, e):
        with torch.inference_mode():
            gamma, beta = st.model.cin_params(ends_a, emb.expand(len(ends_a), -1))
            if e is not None:
                sh = prep_mod.end_shift(ends_a, e, cols, st.alpha_range)
                gamma, beta = gamma + sh[:, : gamma.shape[1]], beta + sh[:, gamma.shape[1] :]
            out = st.model.net(img.expand(len(ends_a), -1, -1, -1), gamma, beta).float()
        stats = vgg_statistics(st, out)
        flat = torch.cat([stats[n] for n in stats], 1)
        return [flat[2 * i + 1] - flat[2 * i] for i in range(len(cols))]

    def cosines(xs, ys):
        return [float(torch.nn.functional.cosine_similarity(x, y, dim=0)) for x, y in zip(xs, ys)]

    cos, own, secs = [], [], []
    for i, img, emb, e, sec in _variant_fits(args, st, d["ends"].shape[0]):
        secs.append(sec)
        ref = changes(img, emb, d["ends"][i])
        cos.append(cosines(changes(img, emb, e), ref))
        if args.own:
            own.append(cosines(changes(img, emb, None), ref))
    med, mean = torch.tensor(cos).median(0).values, torch.tensor(cos).mean(0)
    print(f"{args.set}: {sum(secs) / len(secs):.1f} s a pair")
    print("  each slider's change against the collected fit's, median cosine:")
    print("  variant", " ".join(f"{v:.3f}" for v in med), " mean", " ".join(f"{v:.3f}" for v in mean))
    if own:
        print("  own    ", " ".join(f"{v:.3f}" for v in torch.tensor(own).median(0).values))


def _value(like, text: str):
    if isinstance(like, tuple):
        return tuple(float(x) for x in text.split(","))
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes")
    return type(like)(text)


def _with_overrides(name: str, items: list[str]) -> prep_mod.PrepareSettings:
    """The named fit's settings with ``K=V`` overrides, each value parsed as the field's type."""
    base = prep_mod.PRESETS[name]
    return dataclasses.replace(base, **{k: _value(getattr(base, k), v) for k, v in (kv.split("=") for kv in items)})


def evaluate(args: argparse.Namespace, rest: list[str]) -> None:
    p = prior(args.prior, args.space, args.stat)
    fit = prep_mod.fit_ends
    prep_mod.PRESETS["quick"] = _with_overrides("quick", args.set)

    def with_prior(model, loss, content, embedding, style_targets, alpha_range, settings, progress=None):
        scale = prep_mod.column_scale(model, embedding, alpha_range, settings.seed).cpu() if args.space == "z" else 1
        start = args.gain * p * scale
        if args.mode == "alone":
            return start.float()
        return fit(model, loss, content, embedding, style_targets, alpha_range, settings, progress, start=start)

    prep_mod.fit_ends = with_prior
    from adjustable_style.cli import main

    raise SystemExit(main(["evaluate", "--prepare", "quick", *rest]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--pairs", type=int, default=48)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--preset", default="quick")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    s = sub.add_parser("show")
    s.add_argument("--prior", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--prior", required=True)
    e.add_argument("--mode", choices=("alone", "start"), default="start")
    e.add_argument("--space", choices=("e", "z"), default="z")
    e.add_argument("--stat", choices=("mean", "median"), default="mean")
    e.add_argument("--gain", type=float, default=1.0, help="multiply the prior")
    e.add_argument("--set", nargs="*", default=[], help="quick preset overrides, K=V")
    for name, pairs in (("proxy", 12), ("agree", 24)):
        x = sub.add_parser(name)
        x.add_argument("--prior", required=True)
        x.add_argument("--pairs", type=int, default=pairs)
        x.add_argument("--seed", type=int, default=0)
        x.add_argument("--size", type=int, default=256)
        x.add_argument("--preset", default="quick")
        x.add_argument("--threads", type=int, default=1)
        x.add_argument("--set", nargs="*", default=[])
        if name == "agree":
            x.add_argument("--own", action="store_true")
    args, rest = ap.parse_known_args()
    rest = [r for r in rest if r != "--"]
    {
        "collect": lambda: collect(args),
        "show": lambda: show(args),
        "evaluate": lambda: evaluate(args, rest),
        "proxy": lambda: proxy(args),
        "agree": lambda: agree(args),
    }[args.cmd]()


if __name__ == "__main__":
    main()
