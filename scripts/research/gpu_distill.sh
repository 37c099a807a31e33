#!/usr/bin/env bash
# One run on a GPU machine without internet: fit slider
# directions for every train painting (`slider_headroom.py fit`, 200 steps of 8 at 256 px each), distil the shipped
# Δ from them (`distill`, every fifth painting held out), probe the distilled model against `default` on held-out
# pairs, and pack the teachers, the export and the logs into $OUT (at most 8 files come back).
#
# Carried as for scripts/research/gpu_session.sh: .whl/ (cp312 wheels) and .gpudata/ (the shared data, shorter side 288 px).
# Locally, as a CPU smoke test of this script:
#   OUT=out/distill_smoke SMOKE=1 bash scripts/research/gpu_distill.sh
set -u
OUT=${OUT:-out/gpu_distill}
RUNS=${RUNS:-/tmp/gpu_distill}
mkdir -p "$OUT"
rm -rf "$RUNS"; mkdir -p "$RUNS"
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
PY=${PY:-python3}
if [ -z "${SMOKE:-}" ]; then
  export ADJUSTABLE_STYLE_DATA=$PWD/.gpudata
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
  DEV=cuda; FIT=(--steps 200 --crop 256 --batch 8); DISTILL=3000; PAIRS=12; SHARDS=4
else
  DEV=cpu; FIT=(--steps 1 --crop 48 --batch 2 --limit 1); DISTILL=5; PAIRS=1; SHARDS=2
fi
H=scripts/research/slider_headroom.py
T0=$(date +%s)
echo "== fit ($SHARDS shards)"
for ((i = 0; i < SHARDS; i++)); do
  $PY $H fit --device $DEV --out "$RUNS/teachers" "${FIT[@]}" --shard $i/$SHARDS >"$RUNS/fit_$i.log" 2>&1 &
done
wait
echo "fit: $(ls "$RUNS/teachers" | wc -l) paintings, $(( $(date +%s) - T0 )) s"
tail -n 2 "$RUNS"/fit_*.log
echo "== distill"
$PY $H distill --device $DEV --teachers "$RUNS/teachers" --out "$RUNS/distilled" --steps $DISTILL 2>&1 | tee "$RUNS/distill.log"
echo "== held-out probe"
$PY scripts/research/slider_probe.py default "$RUNS/distilled" --device $DEV --pairs $PAIRS 2>&1 | tee "$OUT/probe.md"
echo "== pack"
tar -cf "$OUT/teachers.tar" -C "$RUNS" teachers
tar -cf "$OUT/distilled.tar" -C "$RUNS" distilled
tar -cf "$OUT/logs.tar" -C "$RUNS" --exclude teachers --exclude distilled .
echo "total $(( $(date +%s) - T0 )) s"
ls -la "$OUT"
