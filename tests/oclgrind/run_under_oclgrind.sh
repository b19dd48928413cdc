#!/usr/bin/env bash
# Runs COMMAND under oclgrind, the OpenCL device simulator, with NVIDIA's limits (48 KiB of
# local memory, 1024-item work-groups), checking for data races (global and local memory,
# within and across work-groups), out-of-bounds accesses, barrier divergence and API
# errors. Fails when COMMAND fails or oclgrind reports anything: PoCL runs a work-group's
# items one after another, so a race there is invisible.
# Usage: run_under_oclgrind.sh [--expect-report TEXT] COMMAND [ARGS...]
#   --expect-report TEXT: the opposite, for the test of the checker itself: succeed only
#   when COMMAND succeeds and oclgrind's report contains TEXT.
set -euo pipefail
expect=""
if [[ ${1:-} == --expect-report ]]; then
  expect=$2
  shift 2
fi
command -v oclgrind >/dev/null || { echo "oclgrind not found: apt-get install oclgrind (tools/bootstrap.sh does)"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# One worker thread: with several, oclgrind 21.10 sometimes aborts at the process's exit
# ("corrupted double-linked list", after every test passed; about 1 run in 4 of
# oclgrind_flash_tf32 beside another test on 2 cores, 2026-12-03; 0 in 8 with one thread).
# Races between work-items and work-groups are found from the recorded accesses, not from
# the threads' timing, so the checks are unchanged.
# OCLGRIND_LOCAL_MEM_SIZE (bytes, default 49152) raises the local memory for a test whose
# emulated mma keeps a scratch on top of the kernel's own.
oclgrind --num-threads 1 --data-races --check-api --local-mem-size "${OCLGRIND_LOCAL_MEM_SIZE:-49152}" \
  --max-wgsize 1024 --max-errors 10 --log "$log" "$@" || status=$?
if ((status != 0)); then
  echo "run_under_oclgrind: the command failed (exit $status)"
  cat "$log"
  exit 1
fi
if [[ -n $expect ]]; then
  if grep -qF -- "$expect" "$log"; then
    echo "run_under_oclgrind: oclgrind reported '$expect' as expected"
    exit 0
  fi
  echo "run_under_oclgrind: oclgrind did not report '$expect'; its log:"
  cat "$log"
  exit 1
fi
if [[ -s $log ]]; then
  echo "run_under_oclgrind: oclgrind reported:"
  cat "$log"
  exit 1
fi
