#!/bin/bash
# The PTB table on one CUDA machine (issue 10): 2x200 in full (but for the elementwise-dropout CMR
# runs, which have no fused kernel) and a 2x650 subset, many one-thread training processes sharing
# the GPU (through MPS where it starts). Results and compact checkpoints go to $OUT.
#   OUT=build/gpu_out DEADLINE=440 bash bench/gpu_ptb.sh      (PTB text files in build/ptb)
set -u
OUT=${OUT:-build/gpu_out}
DEADLINE=${DEADLINE:-440}
mkdir -p "$OUT" /tmp/runs
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p /tmp/mps /tmp/mps-log
if timeout 20 nvidia-cuda-mps-control -d && timeout 45 python3 -c "import torch; torch.zeros(1, device='cuda')"; then
  echo "MPS on"
else
  echo quit | timeout 10 nvidia-cuda-mps-control; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; echo "MPS off"
fi
if ! python3 bench/gpu_check.py; then
  echo "fused path differs with cuDNN: training with cuDNN disabled"; export DOPING_DISABLE_CUDNN=1
  python3 bench/gpu_check.py || exit 1
fi
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$OUT/gpu_util.csv" &
python3 bench/ptb_table.py run --data build/ptb --runs /tmp/runs --device cuda --jobs 14 --deadline "$DEADLINE" \
  --hidden 200 650 --skip '*dropout-*' 'h650/*share0.25*' 'h650/*share0.75*' 'h650/*sharerule*' 'h650/*fixed*' \
  'h650/*dropconnect*' 'h650/*_r10_*' 'h650/*_r50_*' 'h650/*_s1' 'h650/hmd_split0.25*' 'h650/hmd_split0.75*' \
  --late 'h200/*_r10_*' 'h200/*_r50_*' 'h200/*_s1' 2>&1 | tee /tmp/runs/orchestrator.txt
python3 bench/ptb_compact.py --runs /tmp/runs --out "$OUT" \
  --models h200/dense:half-all best:h200/r25 h200/prune_r25_s0 h200/lmf_r25_s0
ls -la "$OUT"
