#!/usr/bin/env bash
# Call 1 (2026-12-03): 3xtf32 split forward + fused fp32 backward, long T, against PyTorch.
set -u
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
mkdir -p /tmp/build-gpu && ln -sfn /tmp/build-gpu build-gpu
date -u > $OUT/start.txt
timeout 200 bash tools/gpu_speed.sh $OUT/b build > $OUT/build.log 2>&1
export LD_LIBRARY_PATH=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/gpu.txt 2>&1
CHECK_PRECISIONS=3xtf32 LONG_T_PRECISIONS=3xtf32 LONG_T_TORCH_PRECISIONS=fp32 \
  timeout -s INT 430 bash tools/gpu_speed.sh $OUT/m check long-t torch-attention long-t-torch gemm-3xtf32 > $OUT/m.log 2>&1
timeout 60 build-gpu/attnscope bench --model gpt2 --max-seq 16384 --batch 1 --seq 16384 --variants flash \
  --precision fp32 --repeats 1 --warmup 1 --steps 2 --idle-seconds 1 --cooldown-max 5 \
  --out $OUT/lt-fp32 --tag lt-fp32 > $OUT/lt-fp32.log 2>&1
tar -czf $OUT/lt-fp32.tar.gz -C $OUT lt-fp32 && rm -rf $OUT/lt-fp32
date -u >> $OUT/start.txt
