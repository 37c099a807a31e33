"""How far apart six seeded variations are with independent uniform slider draws and with a Latin hypercube (each
slider's range in six strata, one draw each): mean pairwise |difference|/255, 4 seeds, on 6 held-out pairs of the
shared data and the README's two pairs, each prepared (quick fit) at 256 px.

    python scripts/research/variation_spread.py
"""

from __future__ import annotations

import itertools
import json
import statistics

import torch

from adjustable_style.evaluation import shared_data_dir
from adjustable_style.stylizer import Stylizer


def spread(images: torch.Tensor) -> float:
    d = [255 * float((images[a] - images[b]).abs().mean()) for a, b in itertools.combinations(range(len(images)), 2)]
    return sum(d) / len(d)


def main() -> None:
    torch.set_num_threads(1)
    st = Stylizer.load("default", device="cpu", backend="torch")
    data = shared_data_dir()
    split = json.loads(open("configs/splits/shared_data.json").read())
    contents = [data / "content" / n for n in split["content"]["val"]][:6]
    styles = [data / "style" / n for n in split["style"]["val"]][:6]
    cat = "examples/photo_cat.jpg"
    pairs = [*zip(contents, styles), (cat, "examples/painting_kandinsky_small_worlds_i.jpg")]
    pairs.append((cat, "examples/painting_monet_water_lilies.jpg"))
    found: dict[bool, list[float]] = {False: [], True: []}
    for content, style in pairs:
        st.prepare(content, style, max_size=256)
        row = {}
        for stratified in (False, True):
            values = []
            for seed in range(4):
                g = torch.Generator().manual_seed(seed)
                lo, hi = st.alpha_range
                alphas = st.schema.sample(6, g, low=lo, high=hi, stratified=stratified)
                values.append(spread(st.stylize_alphas(content, style, alphas, max_size=256)))
            row[stratified] = statistics.mean(values)
            found[stratified].append(row[stratified])
        print(
            f"{str(content).split('/')[-1][:24]:<24} {str(style).split('/')[-1][:28]:<28} "
            f"independent {row[False]:.1f}/255, stratified {row[True]:.1f}/255",
            flush=True,
        )
    for stratified, values in found.items():
        name = "stratified" if stratified else "independent"
        print(f"{name}: median {statistics.median(values):.2f}/255, mean {statistics.mean(values):.2f}/255")


if __name__ == "__main__":
    main()
