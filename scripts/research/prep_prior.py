"""A population prior for pair preparation: the mean fitted E over training pairs, as the sliders' correction without
any fit, or as the fit's starting point (fewer steps for the same result?).

    # fit the quick preparation on N training pairs (train split of configs/splits/shared_data.json) at 256 px
    python scripts/research/prep_prior.py collect --pairs 48 --out /work/long_run/prior.safetensors
    # how alike the pairs' fits are (cosine of each pair's rows with the mean), in E and in Z = E / column_scale
    python scripts/research/prep_prior.py show --prior /work/long_run/prior.safetensors
    # evaluate with the prior: alone (no fit), or as the start of a shorter fit (the rest passes to evaluate)
    python scripts/research/prep_prior.py evaluate --prior F --mode alone --space z -- --pairs 16 ...
    python scripts/research/prep_prior.py evaluate --prior F --mode start --set steps=2 -- --pairs 16 ...
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


def _value(like, text: str):
    if isinstance(like, tuple):
        return tuple(float(x) for x in text.split(","))
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes")
    return type(like)(text)


def evaluate(args: argparse.Namespace, rest: list[str]) -> None:
    p = prior(args.prior, args.space, args.stat)
    fit = prep_mod.fit_ends
    overrides = {k: _value(getattr(prep_mod.PRESETS["quick"], k), v) for k, v in (kv.split("=") for kv in args.set)}
    prep_mod.PRESETS["quick"] = dataclasses.replace(prep_mod.PRESETS["quick"], **overrides)

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
    args, rest = ap.parse_known_args()
    rest = [r for r in rest if r != "--"]
    {"collect": lambda: collect(args), "show": lambda: show(args), "evaluate": lambda: evaluate(args, rest)}[args.cmd]()


if __name__ == "__main__":
    main()
