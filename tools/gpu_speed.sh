#!/usr/bin/env bash
# The speed measurements on a GPU machine, in one bounded pass:
#   tools/gpu_speed.sh OUT PHASE...
# Each phase runs under `timeout -s INT` (an over-long phase ends like Ctrl-C and keeps its
# rows), logs to OUT/<phase>.log and appends "<phase> rc=<status> <seconds>s" to
# OUT/phases.txt. Phases:
#   build       unpack .debs (tools/offline-debs.sh) into a prefix, build build-gpu/attnscope
#   gemm        `attnscope gemm` on GPT-2 124M B=16 T=512 (OUT/gemm.csv), PTX under OUT/ptx
#   torch-gemm  the same products with PyTorch/cuBLAS, fp32 and TF32 (OUT/torch_gemm.csv)
#   tune        `attnscope gemm --tune` → OUT/gemm_tuning.json (later phases use it)
#   gemm-tuned  `attnscope gemm` with that table (OUT/gemm_tuned.csv)
#   train       20 steps of GPT-2 124M, baseline, B=16 T=512
# ATTNSCOPE=path picks the binary; TUNE_SECONDS the sweep's budget (default 240).
set -uo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_speed.sh OUT PHASE...}"); shift
mkdir -p "$out"
cd "$(dirname "$0")/.."
attnscope=${ATTNSCOPE:-build-gpu/attnscope}
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
[[ -f $out/gemm_tuning.json ]] && export ATTNSCOPE_GEMM_TUNING=$out/gemm_tuning.json

phase() {  # phase NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout -s INT "$limit" bash -c '"$@"' phase "$@" >"$out/$name.log" 2>&1
  local status=$?
  echo "$name rc=$status $((SECONDS - start))s" | tee -a "$out/phases.txt"
  tail -n 45 "$out/$name.log"
}

build() {
  local prefix=/tmp/attnscope-deps lib=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu
  mkdir -p "$prefix"
  for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$lib/cmake;$prefix/usr/share/cmake" \
    -DOpenCL_INCLUDE_DIR="$prefix/usr/include" -DOpenCL_LIBRARY="$lib/libOpenCL.so" &&
    cmake --build build-gpu -j"$(nproc)" --target attnscope
}

gemm_table() {  # gemm_table CSV [extra options]: the table, with the compiler's output kept
  local csv=$1
  shift
  mkdir -p "$out/ptx"
  ATTNSCOPE_DUMP_BINARIES=$out/ptx "$attnscope" gemm --model gpt2 --batch 16 --seq 512 --csv "$csv" "$@"
}

export -f build gemm_table
export out attnscope
for p in "$@"; do
  case $p in
    build) phase build 400 build ;;
    gemm) phase gemm 240 gemm_table "$out/gemm.csv" ;;
    torch-gemm) phase torch-gemm 120 python3 tools/torch_gemm.py "$out/gemm.csv" --out "$out/torch_gemm.csv" ;;
    tune)
      phase tune $((${TUNE_SECONDS:-240} + 120)) "$attnscope" gemm --model gpt2 --batch 16 --seq 512 --tune \
        --tune-seconds "${TUNE_SECONDS:-240}" --tune-out "$out/gemm_tuning.json" --tune-csv "$out/tune_trials.csv"
      [[ -f $out/gemm_tuning.json ]] && export ATTNSCOPE_GEMM_TUNING=$out/gemm_tuning.json ;;
    gemm-tuned) phase gemm-tuned 240 gemm_table "$out/gemm_tuned.csv" ;;
    train) phase train 240 "$attnscope" train --model gpt2 --batch 16 --seq 512 --steps 20 --variant baseline ;;
    *) echo "unknown phase $p" >&2 ;;
  esac
done
tar -czf "$out/ptx.tar.gz" -C "$out" ptx 2>/dev/null && rm -rf "$out/ptx"
cat "$out/phases.txt"
