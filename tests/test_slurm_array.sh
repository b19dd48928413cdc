#!/usr/bin/env bash
# tools/slurm/bench-array.sbatch on the test device: the matrix's cells in their fixed
# order (`bench --list-cells`), every array task run as Slurm would run it (SLURM_ARRAY_TASK_ID
# set, the device from ATTNSCOPE_DEVICE as no GPU is bound), then the merge job; the merged
# directory must hold each cell's run exactly once, with its repeat and rotated order.
# A task that sees several GPUs or none (and no ATTNSCOPE_DEVICE), and a cell outside the
# matrix, must fail. (tests/test_slurm_real.sh submits through a real Slurm.)
# Usage: test_slurm_array.sh ATTNSCOPE SOURCE_DIR
set -euo pipefail
attnscope=$1
script=$2/tools/slurm/bench-array.sbatch
work=$(mktemp -d /tmp/attnscope_test_slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
export ATTNSCOPE=$attnscope
device=${ATTNSCOPE_TEST_DEVICE:-0:0}
args=(--model tiny --variants "baseline,lsh" --repeats 2 --steps 2 --warmup 1 --idle-seconds 0.2
      --cooldown-max 0 --sample-ms 20 --tag slurmtest)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$attnscope" bench "${args[@]}" --list-cells >"$work/cells.txt"
expected=$'0 baseline auto auto 0\n1 lsh auto auto 0\n2 lsh auto auto 1\n3 baseline auto auto 1'
[[ $(cat "$work/cells.txt") == "$expected" ]] || fail "--list-cells printed:"$'\n'"$(cat "$work/cells.txt")"

set +e
"$attnscope" bench "${args[@]}" --cell 4 --out "$work/bad" >"$work/bad.log" 2>&1
status=$?
SLURM_ARRAY_TASK_ID=0 CUDA_VISIBLE_DEVICES=0,1 "$script" "$work/bad" "${args[@]}" >>"$work/bad.log" 2>&1
status2=$?
SLURM_ARRAY_TASK_ID=0 "$script" "$work/bad" "${args[@]}" >>"$work/bad.log" 2>&1
status3=$?
set -e
[[ $status == 2 && $status2 == 2 && $status3 == 2 && ! -e $work/bad/cells ]] ||
  fail "bad cell / two GPUs / no GPU exited $status / $status2 / $status3:"$'\n'"$(cat "$work/bad.log")"
grep -q "the matrix has 4 cells" "$work/bad.log" || fail "no cell-count message: $(cat "$work/bad.log")"

for k in 0 1 2 3; do
  SLURM_ARRAY_TASK_ID=$k ATTNSCOPE_DEVICE=$device "$script" "$work/out" "${args[@]}" >"$work/cell-$k.log" 2>&1 ||
    fail "cell $k: $(cat "$work/cell-$k.log")"
done
ATTNSCOPE_SLURM_MERGE=1 "$script" "$work/out" >"$work/merge.log" 2>&1 || fail "merge: $(cat "$work/merge.log")"

# Each cell's manifest: the whole matrix's configuration, its own cell number, one run.
python3 - "$work"/out/cells/*/manifest.json <<'PY' || fail "cell manifests"
import json, sys
manifests = [json.load(open(path)) for path in sys.argv[1:]]
assert sorted(m["cell"] for m in manifests) == [0, 1, 2, 3], [m["cell"] for m in manifests]
assert all(m["config"] == manifests[0]["config"] and len(m["runs"]) == 1 and m["completed"]
           for m in manifests)
assert manifests[0]["config"]["variants"] == ["baseline", "lsh"] and manifests[0]["config"]["repeats"] == 2
PY
# source,framework,variant,repeat,order,status: one row per cell, as listed.
rows=$(python3 - "$work/out/merged/summary.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(r["source"].split("_")[-1], r["framework"], r["variant"], r["repeat"], r["order"], r["status"])
PY
)
want=$'slurmtest-cell0 attnscope baseline 0 0 ok\nslurmtest-cell1 attnscope lsh 0 1 ok\nslurmtest-cell2 attnscope lsh 1 0 ok\nslurmtest-cell3 attnscope baseline 1 1 ok'
[[ $(sort <<<"$rows") == "$want" ]] || fail "merged summary.csv rows:"$'\n'"$rows"
steps=$(($(wc -l <"$work/out/merged/steps.csv") - 1))
((steps == 4 * 3)) || fail "merged steps.csv has $steps rows, expected 12"
echo "slurm array (tasks run directly): ok"
