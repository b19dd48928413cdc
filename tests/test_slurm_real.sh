#!/usr/bin/env bash
# tools/slurm/bench-array.sbatch through a real Slurm: a single-node cluster (Debian's
# slurm-wlm: slurmctld and slurmd, auth/none, on ports of its own, state in a temporary
# directory) is started, the script submits the 4-cell matrix as a job array and the merge
# job as a user would, and the merged directory must hold the four runs. CPU only (the
# test machine has no GPU): ATTNSCOPE_SLURM_GPUS=0 and the device from ATTNSCOPE_DEVICE.
# Exits 77 (CTest: skipped) where the daemons are missing or cannot start (not root), 1 on
# a failure. Usage: test_slurm_real.sh ATTNSCOPE SOURCE_DIR
set -euo pipefail
attnscope=$1
script=$2/tools/slurm/bench-array.sbatch
skip() {
  echo "skipped: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  [[ -f ${work:-}/log/slurmctld.log ]] && tail -20 "$work/log/slurmctld.log" "$work/log/slurmd.log" >&2
  exit 1
}
for tool in slurmctld slurmd sbatch squeue; do
  command -v "$tool" >/dev/null || skip "$tool not installed (Debian: slurm-wlm)"
done
(($(id -u) == 0)) || skip "a private slurmctld/slurmd needs root here"

work=$(mktemp -d /tmp/attnscope_test_slurm_real.XXXXXX)
stop_daemons() {
  for daemon in slurmd slurmctld; do
    [[ -f $work/$daemon.pid ]] && kill "$(cat "$work/$daemon.pid")" 2>/dev/null
  done
  sleep 1
  rm -rf "$work"
}
trap stop_daemons EXIT
mkdir -p "$work/state" "$work/spool" "$work/log"
port=$((20000 + ($$ % 5000) * 2))
host=$(hostname -s)
cat >"$work/slurm.conf" <<CONF
ClusterName=attnscopetest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/none
CredType=cred/none
SlurmUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -c -i >"$work/log/ctld.out" 2>&1 || skip "slurmctld did not start: $(cat "$work/log/ctld.out")"
slurmd >"$work/log/d.out" 2>&1 || skip "slurmd did not start: $(cat "$work/log/d.out")"
for _ in $(seq 30); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %t | grep -q idle || skip "the node did not come up: $(sinfo 2>&1)"

args=(--model tiny --variants "baseline,lsh" --repeats 2 --steps 2 --warmup 1 --idle-seconds 0.2
      --cooldown-max 0 --sample-ms 20 --tag slurmreal)
ATTNSCOPE=$attnscope ATTNSCOPE_SLURM_GPUS=0 ATTNSCOPE_DEVICE=${ATTNSCOPE_TEST_DEVICE:-0:0} \
  "$script" "$work/out" "${args[@]}" | tee "$work/submit.log"
grep -q "4 cells: array job" "$work/submit.log" || fail "submission: $(cat "$work/submit.log")"
for _ in $(seq 600); do
  [[ -z $(squeue -h) ]] && break
  sleep 1
done
if [[ -n $(squeue -h) || ! -f $work/out/merged/summary.csv ]]; then
  fail "jobs did not finish: $(squeue; cat "$work"/out/logs/*.out)"
fi
ok=$(grep -c ",ok," "$work/out/merged/summary.csv" || true)
((ok == 4)) || fail "merged summary.csv: $(cat "$work/out/merged/summary.csv") $(cat "$work"/out/logs/*.out)"
echo "slurm array through real sbatch: ok (4 cells merged)"
