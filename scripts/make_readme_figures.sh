#!/usr/bin/env bash
# Regenerate every picture and number in the README from the commands themselves (run from the repo root).
#   bash scripts/make_readme_figures.sh            # everything (~30 min on a 2-core CPU)
#   bash scripts/make_readme_figures.sh optimize   # one part: optimize | sweep | starry | evaluate
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

if [[ $part == all || $part == sweep ]]; then
  # The shipped model: one slider at a time, with the per-layer losses the sweep prints.
  for layer in relu2_2 relu4_4; do
    adjustable-style sweep $photo $painting --layer $layer --steps 6 --max-size 384 --cell 192 \
        -o docs/sweep_$layer.jpg | tee docs/sweep_$layer.txt
  done
  adjustable-style variations $photo $painting -n 6 --seed 0 --max-size 384 --cell 192 -o docs/variations.jpg \
      | tee docs/variations.txt
fi

if [[ $part == all || $part == starry ]]; then
  # The single-style model (configs/train/cpu_starry_night.yaml): each style slider swept with the others low,
  # the losses each output has, seeded variations, and all style sliders moved together (--layer all).
  for layer in relu2_2 relu3_4 relu4_4; do
    others=$(python -c "print(','.join(f'{l}=0.1' for l in ('relu2_2', 'relu3_4', 'relu4_4') if l != '$layer'))")
    adjustable-style sweep $photo $painting --model starry_night --layer $layer --style-weights "$others" \
        --steps 6 --max-size 384 --cell 192 -o docs/starry_sweep_$layer.jpg | tee docs/starry_sweep_$layer.txt
  done
  adjustable-style variations $photo $painting --model starry_night -n 6 --seed 0 --max-size 384 --cell 192 \
      -o docs/starry_variations.jpg | tee docs/starry_variations.txt
  adjustable-style sweep $photo $painting --model starry_night --layer all --steps 6 --max-size 384 --cell 192 \
      -o docs/starry_sweep_all.jpg | tee docs/starry_sweep_all.txt
fi

if [[ $part == all || $part == evaluate ]]; then
  adjustable-style evaluate -o reports/eval --readme README.md
fi
