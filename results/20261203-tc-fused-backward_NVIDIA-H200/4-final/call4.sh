#!/usr/bin/env bash
# Call 4 (2026-12-03): the long-T matrix at this commit in 3xtf32, tf32 and fp32, with
# PyTorch's fp32 SDPA (and its kernels) and eager attention beside it, one machine.
set -u
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
mkdir -p /tmp/build-gpu && ln -sfn /tmp/build-gpu build-gpu
date -u > $OUT/start.txt
timeout 200 bash tools/gpu_speed.sh $OUT/b build > $OUT/build.log 2>&1
export LD_LIBRARY_PATH=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/gpu.txt 2>&1
LONG_T_PRECISIONS="3xtf32 tf32" LONG_T_TORCH_PRECISIONS=fp32 timeout -s INT 330 \
  bash tools/gpu_speed.sh $OUT/m long-t long-t-torch torch-attention > $OUT/m.log 2>&1
date -u >> $OUT/start.txt
timeout 60 python3 tools/torch_twin.py bench --model gpt2 --max-seq 8192 --batch 1 --seq 8192 \
  --variants baseline --steps 2 --warmup 1 --precision fp32 --attn-impl eager \
  --out $OUT/torch-eager-8192 > $OUT/torch-eager-8192.log 2>&1
LONG_T_PRECISIONS=fp32 timeout -s INT 175 bash tools/gpu_speed.sh $OUT/f long-t > $OUT/f.log 2>&1
date -u >> $OUT/start.txt
