#!/usr/bin/env bash
# Regenerate every picture and number in the README from the commands themselves (run from the repo root).
#   bash scripts/make_readme_figures.sh            # everything (~30 min on a 2-core CPU)
#   bash scripts/make_readme_figures.sh optimize   # one part: optimize | sweep | evaluate
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

if [[ $part == all || $part == evaluate ]]; then
  adjustable-style evaluate -o reports/eval --readme README.md
fi
