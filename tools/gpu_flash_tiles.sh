#!/usr/bin/env bash
# Times the exact tiled-attention kernels (flash.cl) under each tile configuration on a GPU:
#   tools/gpu_flash_tiles.sh OUT TM,BR,BC,TN,BB,TNB[,TMB[,REGS]]...   (TMB, backward rows
#   per work-item, defaults to TM; REGS caps the registers of NVIDIA builds)
# For each configuration: `attnscope bench` of flash, GPT-2 124M, B=1, T=${SEQ:-8192}, 2 steps
# after 1, with ATTNSCOPE_FLASH_TILES set; prints the forward, dK/dV and dQ kernels' total
# ms and GFLOP/s from kernels.csv. A configuration that does not fit is refused by attnscope
# (the error is in OUT/<config>.log). ATTNSCOPE=path picks the binary.
set -uo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_flash_tiles.sh OUT TM,BR,BC,TN,BB,TNB[,TMB]...}"); shift
mkdir -p "$out"
attnscope=${ATTNSCOPE:-build-gpu/attnscope}
seq=${SEQ:-8192}
echo "tiles,kernel,calls,total_ms,gflops_per_s" >"$out/flash_tiles.csv"
for tiles in "$@"; do
  name=${tiles//,/_}
  ATTNSCOPE_FLASH_TILES=$tiles timeout 120 "$attnscope" bench --model gpt2 --max-seq "$seq" \
    --batch 1 --seq "$seq" --variants flash --repeats 1 --warmup 1 --steps 2 --idle-seconds 0.2 \
    --cooldown-max 1 --out "$out/$name" --tag "tiles-$name" >"$out/$name.log" 2>&1
  echo "$tiles rc=$?"
  # kernels.csv: variant,batch,seq,repeat,kernel,calls,total_ms,share,gflops_per_s,gb_per_s
  awk -F, -v t="$tiles" '$5 ~ /^flash_(forward|backward_dkdv|backward_dq)$/ {
      printf "%s,%s,%s,%s,%s\n", t, $5, $6, $7, $9 }' "$out/$name"/*/kernels.csv 2>/dev/null |
    tee -a "$out/flash_tiles.csv"
done
