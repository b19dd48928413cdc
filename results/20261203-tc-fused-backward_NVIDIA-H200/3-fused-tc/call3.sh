#!/usr/bin/env bash
# Call 3 (2026-12-03): the fused tensor-core backward (flash_tf32.cl FUSED_DQ), tf32 and
# 3xtf32: checks, then fused (auto) against split at B=1 T=8192/16384 and B=16 T=512.
set -u
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
mkdir -p /tmp/build-gpu && ln -sfn /tmp/build-gpu build-gpu
date -u > $OUT/start.txt
timeout 200 bash tools/gpu_speed.sh $OUT/b build > $OUT/build.log 2>&1
export LD_LIBRARY_PATH=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
A=build-gpu/attnscope
R=$OUT/r; mkdir -p $R
for p in tf32 3xtf32; do
  timeout 90 $A check --variant flash,gqa,mla,sliding_window --precision $p > $R/check-$p.log 2>&1
  echo "check-$p rc=$?" >> $R/phases.txt
done
timeout 150 $A check --shape 1,4096,768,12 --variant flash --precision tf32 > $R/check-4096-tf32.log 2>&1
echo "check-4096-tf32 rc=$?" >> $R/phases.txt
date -u >> $OUT/start.txt
bench() {  # bench NAME PRECISION BACKWARD B T MAXSEQ VARIANTS STEPS
  timeout 150 $A bench --model gpt2 --max-seq $6 --batch $4 --seq $5 --variants $7 --precision $2 \
    --attention-backward $3 --repeats 1 --warmup 1 --steps $8 --idle-seconds 1 --cooldown-max 5 \
    --out $R/$1 --tag $1 > $R/$1.log 2>&1
  echo "$1 rc=$?" >> $R/phases.txt
}
for p in tf32 3xtf32; do
  bench lt-$p-fused $p fused 1 8192,16384 16384 flash,gqa,mla,sliding_window 2
  bench lt-$p-split $p split 1 8192,16384 16384 flash,gqa 2
done
for p in tf32 3xtf32; do
  bench t512-$p-fused $p fused 16 512 1024 flash,gqa 10
  bench t512-$p-split $p split 16 512 1024 flash,gqa 10
done
date -u >> $OUT/start.txt
tar -czf $OUT/r.tar.gz -C $OUT r && rm -rf $R
