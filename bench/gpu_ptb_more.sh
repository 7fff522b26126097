#!/bin/bash
# A second, short GPU session of the PTB table: the named 2x200 fine-tunes from the committed
# dense baseline (models/ptb-h200-dense), results tarred into $OUT every 10 s.
#   OUT=build/gpu_out DEADLINE=170 bash bench/gpu_ptb_more.sh RUN...
set -u
OUT=${OUT:-build/gpu_out}
DEADLINE=${DEADLINE:-170}
mkdir -p "$OUT" /tmp/runs
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
(while true; do sleep 10; tar czf "$OUT/runs.tmp" -C /tmp/runs --exclude='*.pt' . 2>/dev/null && mv "$OUT/runs.tmp" "$OUT/runs.tar.gz"; done) &
python3 bench/ptb_table.py run --data build/ptb --runs /tmp/runs --device cuda --jobs $# --deadline "$DEADLINE" \
  --hidden 200 --only "$@" 2>&1 | tee /tmp/runs/orchestrator2.txt
tar czf "$OUT/runs.tmp" -C /tmp/runs --exclude='*.pt' . && mv "$OUT/runs.tmp" "$OUT/runs.tar.gz"
python3 bench/ptb_compact.py --runs /tmp/runs --out "$OUT/ckpt" --models h200/dkp_share0.5_none_r25_s0 >/dev/null 2>&1
mv "$OUT"/ckpt/*.pt "$OUT"/ 2>/dev/null; rm -rf "$OUT/ckpt"
ls -la "$OUT"
