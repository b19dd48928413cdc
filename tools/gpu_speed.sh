#!/usr/bin/env bash
# The speed measurements on a GPU machine, in one bounded pass:
#   tools/gpu_speed.sh OUT PHASE...
# Each phase runs under `timeout -s INT` (an over-long phase ends like Ctrl-C and keeps its
# rows), logs to OUT/<phase>.log and appends "<phase> rc=<status> <seconds>s" to
# OUT/phases.txt. Phases:
#   build       unpack .debs (tools/offline-debs.sh) into a prefix, build build-gpu/attnscope
#   gemm        `attnscope gemm` on GPT-2 124M B=16 T=512 (OUT/gemm.csv), PTX under OUT/ptx
#   torch-gemm  the same products with PyTorch/cuBLAS, fp32 and TF32 (OUT/torch_gemm.csv)
#   tune        `attnscope gemm --tune` (precision TUNE_PRECISION, default fp32), merged into
#               a copy of model/gemm_tuning.json at OUT/gemm_tuning.json (later phases use it)
#   gemm-tuned  `attnscope gemm` with that table (OUT/gemm_tuned.csv)
#   gemm-tf32   `attnscope gemm --precision tf32` (OUT/gemm_tf32.csv)
#   gemm-tf32-tuned  the same after a tf32 tune (OUT/gemm_tf32_tuned.csv)
#   gemm-3xtf32 `attnscope gemm --precision 3xtf32` (OUT/gemm_3xtf32.csv)
#   tf32-registers   the same with ptxas's register and spill counts in the log
#   sass        the attention kernels' PTX too (a short `check` of flash, gqa, sdpa and lsh,
#               and of flash with --precision tf32), then every PTX under OUT/ptx through the
#               CUDA toolkit's ptxas (sm_90, registers and spills in OUT/sass/*.ptxas.txt) and
#               cuobjdump (OUT/sass/*.sass)
#   mma-peak    tools/mma_sync_peak.cu (CUDA, built with the machine's nvcc): the TF32
#               mma.sync instruction's own ceiling, back to back from registers
#   check       `attnscope check --variant all` in each precision of CHECK_PRECISIONS
#               (default "fp32 tf32")
#   train       20 steps of GPT-2 124M, baseline, B=16 T=512 (losses to hold against the
#               committed pre-change run); the tiny model's 50 steps (against PoCL's)
#   bench       `attnscope bench`, all variants, gpt2 B=16 T=512, fp32 then tf32
#               (OUT/bench-fp32, OUT/bench-tf32)
#   energy      40 steps of `train` (gpt2 B=16 T=512) beside tools/nvml_energy.py polling
#               every 10 ms (OUT/nvml_energy.csv), to hold the train window's figures against
#   torch-bench tools/torch_twin.py bench, all variants, eager and SDPA, fp32 and TF32
#   long-t      the long-sequence matrix (B=1, T = LONG_T_SEQS, ascending, default
#               8192,16384, every variant, 2 steps after 1), once per precision of
#               LONG_T_PRECISIONS (default fp32; OUT/long-t-<precision>): baseline at 16384
#               and beyond must be refused up front, every other cell ok
#   long-t-fused  the exact tiled variants (flash, gqa, mla, sliding_window) with
#               --attention-backward fused: `check` (the device's atomics), then the long-T
#               bench at LONG_T_SEQS in fp32 (OUT/long-t-fused)
#   long-t-torch  PyTorch's SDPA on the same shapes (tools/torch_twin.py bench, flash's twin:
#               exact causal attention), fp32 and TF32 (OUT/long-t-torch-<precision>-<T>)
#   torch-attention  tools/torch_attention.py at LONG_T_SEQS: PyTorch's fp32 causal SDPA alone
#               (one layer of GPT-2 124M's heads, B=1), forward and backward ms, and the CUDA
#               kernels it ran (OUT/torch-attention)
#   t4096       gqa and lsh at T=4096, B=1, 8 steps with bench's default warm-up and
#               validation every step (the loss spike at lr 6e-4 without warm-up)
#   check-4096  `attnscope check --shape 1,4096,768,12` for every variant in fp32 and tf32,
#               in parallel (each case's device work and serial parts overlap the others';
#               the CPU reference threads itself: all eight took 386 s on 2 cores, 2026-12-02);
#               CHECK_4096="variant:precision ..." picks the cases
#   sweep       every variant at T = SWEEP_SEQS (ascending, default 2048,4096,8192,16384;
#               baseline to 8192: it needs ≈ 184 GB at 16384), B=1, 2 steps after 1; one
#               bench per variant (a failed cell cannot stop another variant), merged into
#               OUT/sweep for scaling.png
#   flash-tiles the flash kernels under several tile configurations at T=8192
#               (tools/gpu_flash_tiles.sh, OUT/flash-tiles/flash_tiles.csv)
#   energy-bench  baseline and flash, gpt2 B=16 T=512, 30 measured steps (windows over 2 s,
#               so each run has a counter and a sampled figure to hold against each other)
#   twin        all eight variants at gpt2 B=16 T=512: attnscope bench and tools/torch_twin.py
#               bench (eager and SDPA) in fp32 and TF32, merged into OUT/twin with its figures
#   twin-losses 20 steps of attnscope and the twin (CUDA, fp32) from one step-0 checkpoint
#               on the exported built-in corpus, gpt2 B=16 T=512, every variant, lr warmed up
#               over 10 steps then cosine (at a constant 6e-4 the loss spikes within 20
#               steps and both sides' rounding grows chaotically); the table of relative
#               loss differences against 1e-5 (OUT/twin-losses/*.csv). lsh runs twice on the
#               twin's side: on its own buckets, and on those attnscope used (dumped through
#               ATTNSCOPE_LSH_BUCKETS), with the near-tie flips per step (lsh_flips.csv)
# ATTNSCOPE=path picks the binary; TUNE_SECONDS the sweep's budget (default 240);
# BENCH_ARGS replaces the bench phases' step counts (default: 1 repeat, 10 steps after 2);
# BENCH_PRECISIONS the precisions benched (default "fp32 tf32"); TWIN_STEPS the twin phase's
# step options (default "--steps 10 --warmup 2"), TWIN_PRECISIONS its precisions (default
# "fp32 tf32") and TWIN_BENCH_VARIANTS its variants (default all); TWIN_VARIANTS the
# twin-losses phase's variants (default all); LONG_T_TORCH_PRECISIONS the long-t-torch
# phase's precisions (default "fp32 tf32").
# Everything ends up in OUT/speed.tar.gz (the lent machine returns few files).
set -uo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_speed.sh OUT PHASE...}"); shift
mkdir -p "$out"
cd "$(dirname "$0")/.." || exit 1
attnscope=${ATTNSCOPE:-build-gpu/attnscope}
long_t_seqs=${LONG_T_SEQS:-8192,16384}  # ascending: the last is the model's --max-seq
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
[[ -f $out/gemm_tuning.json ]] && export ATTNSCOPE_GEMM_TUNING=$out/gemm_tuning.json

phase() {  # phase NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  # In the background and waited for, so that the trap below runs at once on a signal.
  timeout -s INT "$limit" bash -c '"$@"' phase "$@" >"$out/$name.log" 2>&1 &
  phase_pid=$!
  wait "$phase_pid"
  local status=$?
  phase_pid=
  echo "$name rc=$status $((SECONDS - start))s" | tee -a "$out/phases.txt"
  tail -n 45 "$out/$name.log"
}

build() {
  local prefix=/tmp/attnscope-deps lib=/tmp/attnscope-deps/usr/lib/x86_64-linux-gnu
  mkdir -p "$prefix"
  for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
  # A snapshot made with git archive carries its commit's time, which can be older than a
  # build-gpu left by an earlier call on a warm machine: make then kept that build's
  # embedded kernels (seen 2026-12-03). Touched, every source counts as changed.
  find CMakeLists.txt cmake cl_kernels host model telemetry -type f -exec touch {} +
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

check_long() {  # each CHECK_4096 case (variant:precision) at T=4096, in parallel, one log each
  local pids=() case variant precision status=0
  local all=""
  for variant in baseline sdpa flash gqa mla linear sliding_window lsh; do
    all+=" $variant:fp32 $variant:tf32"
  done
  for case in ${CHECK_4096:-$all}; do
    variant=${case%%:*} precision=${case##*:}
    "$attnscope" check --variant "$variant" --precision "$precision" --shape 1,4096,768,12 \
      >"$out/check-4096-$variant-$precision.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  tail -n 2 "$out"/check-4096-*.log
  return $status
}

sweep() {  # one bench per variant over the sequence lengths, then one merged directory
  local variant seqs status=0 dirs=()
  local all_seqs=${SWEEP_SEQS:-2048,4096,8192,16384}
  local max_seq=${all_seqs##*,}
  for variant in flash sdpa gqa mla linear sliding_window lsh baseline; do
    seqs=$all_seqs
    [[ $variant == baseline ]] && seqs=$(tr , '\n' <<<"$all_seqs" | awk '$1 <= 8192' | paste -sd,)
    "$attnscope" bench --model gpt2 --max-seq "$max_seq" --batch 1 --seq "$seqs" --variants "$variant" \
      --repeats 1 --warmup 1 --steps 2 --idle-seconds 1 --cooldown-max 5 \
      --out "$out/sweep-$variant" --tag "sweep-$variant" || status=1
    dirs+=("$out/sweep-$variant"/*/)  # bench --out DIR writes DIR/<timestamp>_<device>_<tag>/
  done
  "$attnscope" merge --out "$out/sweep" "${dirs[@]}" && rm -rf "$out"/sweep-*/
  return $status
}

twin() {  # attnscope's and PyTorch's figures side by side in one merged directory
  local precision impl status=0 dirs=()
  for precision in ${TWIN_PRECISIONS:-fp32 tf32}; do
    # shellcheck disable=SC2086  # TWIN_STEPS is a list of options
    "$attnscope" bench --model gpt2 --batch 16 --seq 512 --precision "$precision" --repeats 1 \
      --variants "${TWIN_BENCH_VARIANTS:-all}" \
      ${TWIN_STEPS:---steps 10 --warmup 2} --idle-seconds 1 --cooldown-max 5 --out "$out/twin-attnscope-$precision" \
      --tag "$precision" || status=1
    dirs+=("$out/twin-attnscope-$precision"/*/)
    for impl in eager sdpa; do
      # shellcheck disable=SC2086
      python3 tools/torch_twin.py bench --model gpt2 --batch 16 --seq 512 \
        --variants "${TWIN_BENCH_VARIANTS:-all}" \
        ${TWIN_STEPS:---steps 10 --warmup 2} --precision "$precision" --attn-impl "$impl" --out "$out/twin-torch-$precision-$impl" ||
        status=1
      dirs+=("$out/twin-torch-$precision-$impl")
    done
  done
  "$attnscope" merge --out "$out/twin" "${dirs[@]}" && python3 tools/plot_results.py "$out/twin" || status=1
  return $status
}

disassemble() {  # every PTX under OUT/ptx through ptxas and cuobjdump, into OUT/sass
  local ptx stem
  PATH=$PATH:/usr/local/cuda/bin
  command -v ptxas cuobjdump || { echo "no ptxas/cuobjdump on this machine"; return 1; }
  mkdir -p "$out/ptx"
  ATTNSCOPE_DUMP_BINARIES=$out/ptx "$attnscope" check --variant flash,gqa,sdpa,lsh --shape 1,1024,768,12
  ATTNSCOPE_DUMP_BINARIES=$out/ptx "$attnscope" check --variant flash --shape 1,1024,768,12 --precision tf32
  mkdir -p "$out/sass"
  local cap
  for ptx in "$out"/ptx/*.bin; do
    stem=$out/sass/$(basename "$ptx" .bin)
    tr -d '\000' <"$ptx" >"$stem.ptx"  # the binary ends in NULs
    # The program's register cap, as the driver applies it (the PTX does not carry it).
    cap=$(grep -o 'maxrregcount=[0-9]*' "${ptx%.bin}.txt" 2>/dev/null | head -1 | cut -d= -f2)
    ptxas -arch=sm_90 -O3 -v ${cap:+-maxrregcount "$cap"} "$stem.ptx" -o "$stem.cubin" \
      >"$stem.ptxas.txt" 2>&1 &&
      cuobjdump -sass "$stem.cubin" >"$stem.sass"
    rm -f "$stem.cubin" "$stem.ptx"
  done
  grep -H "registers\|spill" "$out"/sass/*.ptxas.txt | head -80
}

pack() {  # everything under OUT into OUT/speed.tar.gz (the lent machine returns few files)
  tar -czf /tmp/speed.tar.gz -C "$out" . && rm -rf "${out:?}"/* && mv /tmp/speed.tar.gz "$out/"
}
# An outer limit's TERM (or Ctrl-C) stops the running phase as its own limit would, and what
# the earlier phases measured is still packed.
stop() {
  echo "gpu_speed.sh: stopped; packing what there is" >&2
  if [[ -n ${phase_pid:-} ]]; then
    kill -INT "$phase_pid" 2>/dev/null
    wait "$phase_pid"
  fi
  pack
  exit 124
}
trap stop TERM INT

export -f build gemm_table disassemble check_long sweep twin
export out attnscope
for p in "$@"; do
  case $p in
    build) phase build 400 build ;;
    gemm) phase gemm 240 gemm_table "$out/gemm.csv" ;;
    torch-gemm) phase torch-gemm 120 python3 tools/torch_gemm.py "$out/gemm.csv" --out "$out/torch_gemm.csv" ;;
    tune)
      [[ -f $out/gemm_tuning.json ]] || cp model/gemm_tuning.json "$out/gemm_tuning.json"
      phase tune $((${TUNE_SECONDS:-240} + 120)) "$attnscope" gemm --model gpt2 --batch 16 --seq 512 --tune \
        --precision "${TUNE_PRECISION:-fp32}" --tune-seconds "${TUNE_SECONDS:-240}" \
        --tune-out "$out/gemm_tuning.json" --tune-csv "$out/tune_trials.csv"
      [[ -f $out/gemm_tuning.json ]] && export ATTNSCOPE_GEMM_TUNING=$out/gemm_tuning.json ;;
    gemm-tuned) phase gemm-tuned 240 gemm_table "$out/gemm_tuned.csv" ;;
    gemm-tf32) phase gemm-tf32 240 gemm_table "$out/gemm_tf32.csv" --precision tf32 ;;
    gemm-tf32-tuned) phase gemm-tf32-tuned 240 gemm_table "$out/gemm_tf32_tuned.csv" --precision tf32 ;;
    gemm-3xtf32) phase gemm-3xtf32 240 gemm_table "$out/gemm_3xtf32.csv" --precision 3xtf32 ;;
    tf32-registers)  # ptxas's registers and spills of the default tf32 kernel, every layout
      ATTNSCOPE_TF32_VERBOSE=1 ATTNSCOPE_BUILD_LOG=1 phase tf32-registers 120 "$attnscope" gemm \
        --model gpt2 --batch 16 --seq 512 --precision tf32 ;;
    sass) phase sass 300 disassemble ;;
    mma-peak)
      phase mma-peak 90 bash -c 'PATH=$PATH:/usr/local/cuda/bin && nvcc -O3 -arch=sm_90 \
        tools/mma_sync_peak.cu -o /tmp/mma_sync_peak && /tmp/mma_sync_peak' ;;
    check)
      for precision in ${CHECK_PRECISIONS:-fp32 tf32}; do
        phase "check-$precision" 300 "$attnscope" check --variant all --precision "$precision"
      done ;;
    energy)  # 40 steps of train beside the independent NVML reader, over the same Unix time
      python3 tools/nvml_energy.py --period-ms 10 >"$out/nvml_energy.csv" 2>"$out/nvml_energy.err" &
      local_reader=$!
      sleep 1
      phase energy-train 240 "$attnscope" train --model gpt2 --batch 16 --seq 512 --steps 40 \
        --steps-csv "$out/energy_steps.csv"
      sleep 1
      kill -INT "$local_reader"
      wait "$local_reader" ;;
    train)
      phase train-gpt2 240 "$attnscope" train --model gpt2 --batch 16 --seq 512 --steps 20 --variant baseline
      phase train-tiny 240 "$attnscope" train --model tiny --steps 50 ;;
    bench)
      for precision in ${BENCH_PRECISIONS:-fp32 tf32}; do
        # shellcheck disable=SC2086
        phase "bench-$precision" 400 "$attnscope" bench --model gpt2 --batch 16 --seq 512 \
          --precision "$precision" --out "$out/bench-$precision" --tag "$precision" \
          ${BENCH_ARGS:---repeats 1 --steps 10 --warmup 2 --idle-seconds 1 --cooldown-max 5}
      done ;;
    torch-bench)
      for precision in fp32 tf32; do
        for impl in eager sdpa; do
          phase "torch-$precision-$impl" 300 python3 tools/torch_twin.py bench --model gpt2 \
            --batch 16 --seq 512 --variants all --steps 10 --warmup 2 --precision "$precision" \
            --attn-impl "$impl" --out "$out/torch-$precision-$impl"
        done
      done ;;
    long-t)
      for precision in ${LONG_T_PRECISIONS:-fp32}; do
        phase "long-t-$precision" 420 "$attnscope" bench --model gpt2 --max-seq "${long_t_seqs##*,}" \
          --batch 1 --seq "$long_t_seqs" --variants baseline,flash,linear,sliding_window,lsh,gqa,mla,sdpa \
          --precision "$precision" --repeats 1 --warmup 1 --steps 2 --idle-seconds 1 \
          --cooldown-max 5 --out "$out/long-t-$precision" --tag "long-t-$precision"
      done ;;
    long-t-fused)
      phase check-fused 240 "$attnscope" check --variant flash,gqa,mla,sliding_window \
        --attention-backward fused
      phase long-t-fused 300 "$attnscope" bench --model gpt2 --max-seq "${long_t_seqs##*,}" \
        --batch 1 --seq "$long_t_seqs" --variants flash,gqa,mla,sliding_window \
        --attention-backward fused --repeats 1 --warmup 1 --steps 2 --idle-seconds 1 \
        --cooldown-max 5 --out "$out/long-t-fused" --tag long-t-fused ;;
    long-t-torch)
      for precision in ${LONG_T_TORCH_PRECISIONS:-fp32 tf32}; do
        for seq in ${long_t_seqs//,/ }; do
          phase "long-t-torch-$precision-$seq" 200 python3 tools/torch_twin.py bench --model gpt2 \
            --max-seq "${long_t_seqs##*,}" --batch 1 --seq "$seq" --variants flash --steps 2 --warmup 1 \
            --precision "$precision" --attn-impl sdpa --out "$out/long-t-torch-$precision-$seq"
        done
      done ;;
    torch-attention)
      phase torch-attention 120 python3 tools/torch_attention.py --seq "$long_t_seqs" \
        --out "$out/torch-attention" ;;
    t4096)
      phase t4096 240 "$attnscope" bench --model gpt2 --max-seq 4096 --batch 1 --seq 4096 \
        --variants gqa,lsh --repeats 1 --steps 8 --val-every 1 --idle-seconds 1 --cooldown-max 5 \
        --out "$out/t4096" --tag t4096 ;;
    check-4096) phase check-4096 300 check_long ;;
    sweep) phase sweep 480 sweep ;;
    flash-tiles)
      phase flash-tiles 420 tools/gpu_flash_tiles.sh "$out/flash-tiles" 4,64,32,4,32,2 \
        8,64,32,4,32,4,4 4,64,32,4,32,4 8,64,32,4,32,2,4 4,64,32,8,32,4 8,64,32,4,32,2,8 \
        8,32,32,4,32,4,4 ;;
    energy-bench)
      phase energy-bench 240 "$attnscope" bench --model gpt2 --batch 16 --seq 512 \
        --variants baseline,flash --repeats 1 --warmup 2 --steps 30 --idle-seconds 2 \
        --cooldown-max 5 --out "$out/energy-bench" --tag energy-bench ;;
    twin) phase twin 570 twin ;;
    twin-losses)
      phase twin-losses 420 python3 tools/torch_twin_test.py --attnscope "$attnscope" --acceptance-only \
        --defaults-only --model gpt2 --batch 16 --seq 512 --steps 20 --tolerance 1e-5 --device cuda \
        --schedule="--warmup-steps 10 --lr-decay cosine --min-lr-frac 0.1" \
        --lsh-buckets-from-attnscope --variants "${TWIN_VARIANTS:-all}" --workdir "$out/twin-losses"
      # Checkpoints and shards (≈ 4 GB) and lsh's bucket dump (≈ 9 MB a forward pass, ≈ 340 MB)
      # are kept out of the tarball.
      rm -rf "$out"/twin-losses/*.bin "$out"/twin-losses/*_buckets ;;
    *) echo "unknown phase $p" >&2 ;;
  esac
done
cat "$out/phases.txt"
pack
