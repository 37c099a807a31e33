#!/bin/bash
# Evaluate a variant of a named pair preparation on the held-out split, the way the shipped fits are judged:
# 16 pairs of controllability, the first 8 of them with the slider-effect section (L-BFGS references from the
# user cache when they are there), one core.
#
#   scripts/research/prep_candidate.sh OUT "steps=4, lr=0.05"            # overrides of the quick fit
#   BASE=full scripts/research/prep_candidate.sh OUT "steps=6"            # ... of the full fit
#
# OUT gets report.md and results.json; the overrides are PrepareSettings fields (a patch such as
# prep_small_crops_mirror.patch or prep_row_adam.patch adds the ones its experiment needs).
set -euo pipefail
out=$1
overrides=${2:-}
OMP_NUM_THREADS=1 python -c "
import dataclasses, adjustable_style.prepare as p
p.PRESETS['quick'] = dataclasses.replace(p.PRESETS['${BASE:-quick}'], $overrides)
from adjustable_style.cli import main
raise SystemExit(main(['evaluate', '--pairs', '16', '--slider-pairs', '8', '--prepare', 'quick', '--gatys-pairs', '0',
                       '--no-peer', '--threads', '1', '-o', '$out']))
"
