#!/usr/bin/env python3
"""Summarises the per-instruction page of an Nsight Compute report (tools/gpu_profile.sh's
CASE.sass.csv, from `ncu --page source --csv --print-source sass`): where the warps stalled
(the sampled stall reasons, summed over the kernel), which opcodes took the instructions and
the stall samples, and the local-memory wavefronts each opcode cost against the ideal.

    tools/ncu_summary.py CASE.sass.csv [--top N]
"""
import argparse
import collections
import csv
import gzip
import re
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def opcode(source):
    """The SASS opcode of an instruction, without its predicate (@P0, @!UP1)."""
    words = re.sub(r"^@!?U?P\w+\s+", "", source.strip()).split()
    return words[0] if words else ""


def read_rows(path):
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        rows = list(csv.reader(f))
    # The first row names the kernel; the second is the header.
    header_at = next((i for i, r in enumerate(rows) if "Source" in r), None)
    if header_at is None:
        sys.exit(f"ncu_summary: {path} has no 'Source' column (not a --page source --csv export)")
    header = rows[header_at]
    return [dict(zip(header, r)) for r in rows[header_at + 1:] if len(r) == len(header)]


def summarise(path, top):
    rows = read_rows(path)
    stall_columns = [c for c in rows[0] if c.startswith("stall_") and "Not Issued" not in c]
    stalls = collections.Counter()
    executed, samples = collections.Counter(), collections.Counter()
    wavefronts, ideal = collections.Counter(), collections.Counter()
    for r in rows:
        op = opcode(r["Source"])
        for c in stall_columns:
            stalls[c] += number(r[c])
        executed[op] += number(r["Instructions Executed"])
        samples[op] += number(r["Warp Stall Sampling (All Samples)"])
        wavefronts[op] += number(r.get("L1 Wavefronts Shared", "0"))
        ideal[op] += number(r.get("L1 Wavefronts Shared Ideal", "0"))
    total_stalls, total_executed = sum(stalls.values()), sum(executed.values())
    total_samples = sum(samples.values())
    print(f"{path}: {total_executed:.4g} warp instructions executed, {total_samples:.0f} stall samples")
    print("stall reasons (share of samples): " + ", ".join(
        f"{c[len('stall_'):]} {100 * v / total_stalls:.1f}%" for c, v in stalls.most_common(8)))
    print(f"{'opcode':<34} {'instructions':>12} {'samples':>8} {'shared wavefronts':>18} {'ideal':>10}")
    for op, v in executed.most_common(top):
        print(f"{op:<34} {100 * v / total_executed:11.1f}% {100 * samples[op] / total_samples:7.1f}% "
              f"{wavefronts[op]:18.4g} {ideal[op]:10.4g}")
    print(f"local-memory wavefronts in all: {sum(wavefronts.values()):.4g} "
          f"(ideal {sum(ideal.values()):.4g})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+")
    parser.add_argument("--top", type=int, default=12, help="opcodes to list")
    args = parser.parse_args()
    for path in args.csv:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
