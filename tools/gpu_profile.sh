#!/usr/bin/env bash
# Nsight Compute on attnscope's own kernels, on an NVIDIA GPU machine:
#   tools/gpu_profile.sh OUT CASE...
# Nsight Compute does not see OpenCL kernels. So each case dumps the PTX that NVIDIA's OpenCL
# compiled for attnscope (ATTNSCOPE_DUMP_BINARIES), runs one kernel of it through the CUDA
# driver API (tools/ptx_profile.cpp: the same PTX, the same register cap, GPT-2 124M's
# shapes, random data), times it there, and profiles it with `ncu --set full`. Per case,
# under OUT: CASE.time (registers, occupancy, median ms: hold it against attnscope's own
# kernels.csv time), CASE.ncu-rep, CASE.details.txt and CASE.sass.csv (samples per SASS
# instruction, where ncu gives them). Cases:
#   tf32-tuned     gemm_tf32, the qkv forward (8192 x 2304 x 768, nt) with the tuned table's tiles
#   tf32-default   the same with the default tiles (empty table: 128x128x16/2x4w, capped)
#   fp32-tuned     matmul.cl's gemm (fp32), the same product with the tuned table's tiles
#   flash-forward  flash.cl's forward, fp32, B=1 T=16384, the GPU tiles
#   flash-dkdv     flash.cl's fused dK/dV (+ dQ atomics) kernel, the same shape
# ATTNSCOPE=path picks the binary (default build-gpu/attnscope); NCU_SET (default full).
set -uo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_profile.sh OUT CASE...}"); shift
mkdir -p "$out"
attnscope=$(realpath "${ATTNSCOPE:-build-gpu/attnscope}")
PATH=$PATH:/usr/local/cuda/bin
g++ -O2 -std=c++17 tools/ptx_profile.cpp -I/usr/local/cuda/include -lcuda -o /tmp/ptx_profile ||
  exit 1

# dump NAME COMMAND...: the programs COMMAND builds, into OUT/NAME-ptx.
dump() {
  local name=$1
  shift
  rm -rf "$out/$name-ptx" && mkdir -p "$out/$name-ptx"
  ATTNSCOPE_DUMP_BINARIES=$out/$name-ptx "$@" >"$out/$name.dump.log" 2>&1
}

# program NAME FILE_STEM PATTERN: the dumped program of FILE_STEM whose options match PATTERN.
program() {
  local txt
  txt=$(grep -l -- "$3" "$out/$1-ptx/$2"_*.txt 2>/dev/null | head -1)
  [[ -n $txt ]] || { echo "no $2 program with '$3' in $out/$1-ptx" >&2; return 1; }
  echo "${txt%.txt}"
}

option() {  # option STEM NAME: the value of -DNAME= (or -cl-nv-maxrregcount=) in its options
  grep -o -- "$2=[0-9]*" "$1.txt" | head -1 | cut -d= -f2
}

# profile NAME STEM KERNEL GRID BLOCK FLOPS ARG...
profile() {
  local name=$1 stem=$2 kernel=$3 grid=$4 block=$5 flops=$6
  shift 6
  local regs
  regs=$(option "$stem" -cl-nv-maxrregcount)
  cp "$stem.txt" "$out/$name.options.txt"
  timeout 120 /tmp/ptx_profile "$stem.bin" "$kernel" "$grid" "$block" ${regs:+--regs "$regs"} \
    --flops "$flops" -- "$@" | tee "$out/$name.time"
  timeout 300 ncu --clock-control none --set "${NCU_SET:-full}" --import-source no \
    --launch-skip 2 --launch-count 1 -f -o "$out/$name" \
    /tmp/ptx_profile "$stem.bin" "$kernel" "$grid" "$block" ${regs:+--regs "$regs"} \
    --repeat 1 -- "$@" >"$out/$name.ncu.log" 2>&1 || { tail -5 "$out/$name.ncu.log"; return 1; }
  ncu --import "$out/$name.ncu-rep" --page details >"$out/$name.details.txt" 2>&1
  ncu --import "$out/$name.ncu-rep" --page source --csv --print-source sass \
    >"$out/$name.sass.csv" 2>&1 || true
  grep -E "Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Compute \(SM\) Throughput|Memory Throughput" \
    "$out/$name.details.txt" | head -12
}

# The qkv forward: A (8192 x 768) times B (2304 x 768) transposed, + bias, with KERNEL
# (gemm_tf32 or matmul.cl's gemm: the same arguments) in work-groups of BLOCK items.
gemm_qkv() {
  local name=$1 stem=$2 kernel=$3 block=$4
  local tm tn
  tm=$(option "$stem" -DTILE_M) tn=$(option "$stem" -DTILE_N)
  profile "$name" "$stem" "$kernel" "$(((2304 + tn - 1) / tn)),$(((8192 + tm - 1) / tm)),1" \
    "$block" "$((2 * 8192 * 2304 * 768))" \
    i:8192 i:2304 i:768 f:1 f:0 buf:a:$((8192 * 768)) l:0 l:0 buf:b:$((2304 * 768)) l:0 l:0 \
    buf:c:$((8192 * 2304)) l:0 l:0 buf:bias:2304 i:1
}

tf32_block() {  # gemm_tf32's work-group: WARPS_M x WARPS_N warps, 1-D
  echo $((32 * $(option "$1" -DWARPS_M) * $(option "$1" -DWARPS_N)))
}

fp32_block() {  # matmul.cl's work-group: TILE_N/WPT_N x TILE_M/WPT_M items
  echo "$(($(option "$1" -DTILE_N) / $(option "$1" -DWPT_N))),$(($(option "$1" -DTILE_M) / $(option "$1" -DWPT_M)))"
}

# flash at B=1, T=16384, 12 heads of 64, the fused (B,T,3C) projections; FLOPs of the
# visited tiles (flash_core's count_tiled_pairs): the forward's BR x BC and dK/dV's BB x BB.
T=16384 H=12 D=64
flash_case() {
  local name=$1 stem=$2 kernel=$3
  local br bc bb pairs grid block flops
  br=$(option "$stem" -DBR) bc=$(option "$stem" -DBC) bb=$(option "$stem" -DBB)
  local tm tn tnb tmb
  tm=$(option "$stem" -DTM) tn=$(option "$stem" -DTN) tnb=$(option "$stem" -DTNB)
  tmb=$(option "$stem" -DTMB)
  tmb=${tmb:-$tm}
  if [[ $kernel == flash_forward ]]; then
    pairs=$(awk -v T=$T -v r="$br" -v c="$bc" 'BEGIN { for (q = 0; q < T; q += r) s += int((q + r + c - 1) / c) * r * c; print s }')
    grid="$((T / br)),$H" block=$(((br / tm) * (bc / tn))) flops=$(awk -v p="$pairs" -v h=$H -v d=$D 'BEGIN { print 4 * p * h * d }')
    profile "$name" "$stem" "$kernel" "$grid" "$block" "$flops" \
      buf:out:$((T * 768)) buf:lse:$((H * T)) buf:qkv:$((T * 2304)) i:2304 i:0 buf:qkv buf:qkv \
      i:2304 i:768 i:1536 i:$T i:$H i:0
  else
    pairs=$(awk -v T=$T -v b="$bb" 'BEGIN { for (k = 0; k < T; k += b) s += int((T - k + b - 1) / b) * b * b; print s }')
    grid="$((T / bb)),$H" block=$(((bb / tmb) * (bb / tnb))) flops=$(awk -v p="$pairs" -v h=$H -v d=$D 'BEGIN { print 10 * p * h * d }')
    profile "$name" "$stem" "$kernel" "$grid" "$block" "$flops" \
      buf:dkv:$((T * 2304)) buf:dq:$((T * 2304)) buf:qkv:$((T * 2304)) i:2304 i:0 buf:qkv buf:qkv \
      i:2304 i:768 i:1536 buf:dout:$((T * 768)) buf:lse:$((H * T)) buf:delta:$((H * T)) \
      i:$T i:$H i:0
  fi
}

status=0
echo '{"entries": []}' >/tmp/empty_tuning.json
for case in "$@"; do
  echo "== $case"
  case $case in
    tf32-tuned | tf32-default | fp32-tuned)
      tuning=${ATTNSCOPE_GEMM_TUNING:-}
      [[ $case == tf32-default ]] && tuning=/tmp/empty_tuning.json
      precision=${case%%-*}
      ATTNSCOPE_GEMM_TUNING=$tuning dump "$case" "$attnscope" gemm --precision "$precision" \
        --shape 8192,2304,768 || { status=1; continue; }
      file=matmul_cl kernel=gemm
      [[ $precision == tf32 ]] && file=matmul_tf32_cl kernel=gemm_tf32
      stem=$(program "$case" $file -DTRANS_B=1) &&
        gemm_qkv "$case" "$stem" $kernel "$("${precision}_block" "$stem")" ;;
    flash-forward | flash-dkdv)
      [[ -d $out/flash-ptx ]] || dump flash "$attnscope" check --variant flash --shape 1,256,768,12 \
        --attention-backward fused
      stem=$(program flash attention_flash_cl -DFUSED_DQ=1) &&
        flash_case "$case" "$stem" "$([[ $case == flash-forward ]] && echo flash_forward || echo flash_backward_dkdv)" ;;
    *) echo "unknown case $case" >&2; false ;;
  esac || status=1
done
exit $status
