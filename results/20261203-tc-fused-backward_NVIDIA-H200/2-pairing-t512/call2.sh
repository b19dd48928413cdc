#!/usr/bin/env bash
# Call 2 (2026-12-03): 3xtf32 at B=16 T=512 and B=4 T=2048 with the fused fp32 backward (the
# default) and with the split tensor-core one; the 3xtf32 GEMM's GPU test.
set -u
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
mkdir -p /tmp/build-gpu && ln -sfn /tmp/build-gpu build-gpu
date -u > $OUT/start.txt
timeout 200 bash tools/gpu_speed.sh $OUT/b build > $OUT/build.log 2>&1
export LD_LIBRARY_PATH=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
P=/tmp/attnscope-deps; L=$P/usr/lib/x86_64-linux-gnu
( timeout 200 cmake -S . -B /tmp/build-gpu-tests -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON \
    -DCMAKE_PREFIX_PATH="$P/usr;$L/cmake;$P/usr/share/cmake" -DOpenCL_INCLUDE_DIR="$P/usr/include" \
    -DOpenCL_LIBRARY="$L/libOpenCL.so" && timeout 200 cmake --build /tmp/build-gpu-tests -j16 --target test_tf32 ) \
  > $OUT/test-build.log 2>&1
date -u >> $OUT/start.txt
mkdir -p $OUT/bench
bench() {  # bench NAME B T BACKWARD VARIANTS
  timeout 150 build-gpu/attnscope bench --model gpt2 --batch $2 --seq $3 --variants $5 --precision 3xtf32 \
    --attention-backward $4 --repeats 1 --warmup 2 --steps 10 --idle-seconds 1 --cooldown-max 5 \
    --out $OUT/bench/$1 --tag $1 > $OUT/bench/$1.log 2>&1
  echo "$1 rc=$?" >> $OUT/bench/phases.txt
}
bench t512-fused 16 512 fused flash,gqa,mla,sliding_window
bench t512-split 16 512 split flash,gqa,mla,sliding_window
bench t512-fused-again 16 512 fused flash,gqa
bench t2048-fused 4 2048 fused flash,gqa
bench t2048-split 4 2048 split flash,gqa
date -u >> $OUT/start.txt
ATTNSCOPE_TEST_DEVICE=NVIDIA timeout 300 /tmp/build-gpu-tests/tests/test_tf32 \
  --gtest_filter='Tf32Gemm.SplitTensorCoresAreFp32Accurate:Tf32Probe.*' > $OUT/test_tf32_gpu.log 2>&1
echo "test_tf32 rc=$?" >> $OUT/test_tf32_gpu.log
date -u >> $OUT/start.txt
tar -czf $OUT/bench.tar.gz -C $OUT bench && rm -rf $OUT/bench
