#!/usr/bin/python3
"""tools/ncu_summary.py on a made-up Nsight Compute source page (the CSV layout of `ncu --page
source --csv --print-source sass`: the kernel's name on the first row, then the header)
whose instructions carry known counts: the stall shares, the instruction and sample shares
per opcode (predicates stripped) and the local-memory wavefronts must come out as the numbers
were made. Then the committed H200 export, gzipped, must parse. Run by CTest; exits
non-zero with a message on the first mismatch."""
import csv
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "ncu_summary.py")
HEADER = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed",
          "L1 Wavefronts Shared", "L1 Wavefronts Shared Ideal", "stall_long_sb", "stall_math",
          "stall_long_sb (Not Issued)"]
# Source, samples, executed, wavefronts, ideal, long_sb, math, long_sb not issued (ignored)
ROWS = [
    ("FFMA R1, R2, R3, R1", "30", "6,000", "0", "0", "0", "30", "99"),
    ("@!P0 FFMA R4, R5, R6, R4", "10", "2,000", "0", "0", "0", "10", "99"),
    ("LDS.128 R8, [R9]", "60", "2,000", "8,000", "4,000", "60", "0", "99"),
]


def fail(message):
    sys.exit(f"test_ncu_summary: {message}")


def run(path):
    done = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{path}: exit {done.returncode}: {done.stderr}")
    return done.stdout


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "made_up.sass.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            w.writerow(["Kernel Name", "made_up"])
            w.writerow(HEADER)
            for i, r in enumerate(ROWS):
                w.writerow([hex(16 * i), *r])
        out = run(path)
    expected = [
        "1e+04 warp instructions executed, 100 stall samples",
        "long_sb 60.0%, math 40.0%",  # the Not Issued column is not a reason of its own
        "FFMA                                      80.0%    40.0%                  0          0",
        "LDS.128                                   20.0%    60.0%               8000       4000",
        "local-memory wavefronts in all: 8000 (ideal 4000)",
    ]
    for line in expected:
        if line not in out:
            fail(f"'{line}' is not in the summary:\n{out}")
    real = os.path.join(ROOT, "results", "20261203-ncu_NVIDIA-H200", "flash", "flash-dkdv.sass.csv.gz")
    out = run(real)
    if "LDS.128" not in out or "stall reasons" not in out:
        fail(f"the H200 export gave no summary:\n{out}")
    print("test_ncu_summary: ok")


if __name__ == "__main__":
    main()
