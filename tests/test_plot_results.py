#!/usr/bin/python3
"""tools/plot_results.py on a made-up results directory whose runs span three sequence
lengths: one variant's peak memory grows linearly in T, another's quadratically, and a
failed run (which must be left out) would bend both; tools/torch_twin.py's rows of the same
variant (framework torch-sdpa, merged in) are a line of their own, and so are its runs with
the fused attention backward (a split one is the plain line). Checks the scaling figure is written
and scaling.md reports the slopes and the straight-line fit the numbers were made from.
Run by CTest; exits non-zero with a message on the first mismatch."""
import csv
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["framework", "precision", "attention_backward", "variant", "batch", "seq", "repeat", "status", "step_ms_median",
           "tokens_per_s_median", "peak_mem_allocated_bytes", "train_time_s", "gpu_energy_j"]
MIB = 2**20


def runs():
    for t in (1024, 2048, 4096):
        # linear: 500 MiB + 0.75 MiB per token; quadratic: time and memory ∝ T².
        yield {"variant": "linear", "attention_backward": "split", "seq": t,
               "peak_mem_allocated_bytes": (500 + 0.75 * t) * MIB, "step_ms_median": 0.01 * t}
        yield {"variant": "linear", "attention_backward": "fused", "seq": t,
               "peak_mem_allocated_bytes": (400 + 0.625 * t) * MIB, "step_ms_median": 0.008 * t}
        yield {"variant": "quadratic", "seq": t, "peak_mem_allocated_bytes": t * t * 16,
               "step_ms_median": 1e-5 * t * t}
        yield {"framework": "torch-sdpa", "variant": "linear", "seq": t,
               "peak_mem_allocated_bytes": (300 + 0.5 * t) * MIB, "step_ms_median": 0.02 * t}
    yield {"variant": "linear", "seq": 8192, "status": "failed", "peak_mem_allocated_bytes": 1,
           "step_ms_median": 1}


def write_results(directory):
    with open(os.path.join(directory, "summary.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        for run in runs():
            writer.writerow({"framework": "attnscope", "precision": "fp32", "batch": 1, "repeat": 0,
                             "status": "ok", **run})
    with open(os.path.join(directory, "steps.csv"), "w") as f:
        f.write("variant,batch,seq,repeat,step,loss\n")


def row_of(table, variant):
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == variant:
            return cells
    sys.exit(f"scaling.md has no row for {variant}:\n{table}")


def expect_close(name, got, want, tolerance):
    if abs(float(got) - want) > tolerance:
        sys.exit(f"{name}: scaling.md says {got}, expected {want}")


def main():
    with tempfile.TemporaryDirectory() as directory:
        write_results(directory)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot_results.py"), directory],
                       check=True, stdout=subprocess.DEVNULL)
        if not os.path.getsize(os.path.join(directory, "scaling.png")):
            sys.exit("scaling.png is empty")
        with open(os.path.join(directory, "scaling.md")) as f:
            table = f.read()
    linear = row_of(table, "linear")  # variant, T, memory slope, time slope, b, a, r²
    if linear[1] != "1024, 2048, 4096":
        sys.exit(f"the failed run at T=8192 was not left out: {linear[1]}")
    expect_close("linear time slope", linear[3], 1.0, 0.005)
    expect_close("linear MiB per token", linear[4], 0.75, 5e-5)
    expect_close("linear intercept MiB", linear[5], 500, 0.5)
    expect_close("linear r²", linear[6], 1.0, 5e-5)
    twin = row_of(table, "linear (torch-sdpa)")
    expect_close("twin's MiB per token", twin[4], 0.5, 5e-5)
    expect_close("twin's intercept MiB", twin[5], 300, 0.5)
    fused = row_of(table, "linear (fused)")
    expect_close("fused MiB per token", fused[4], 0.625, 5e-5)
    expect_close("fused intercept MiB", fused[5], 400, 0.5)
    quadratic = row_of(table, "quadratic")
    expect_close("quadratic memory slope", quadratic[2], 2.0, 0.005)
    expect_close("quadratic time slope", quadratic[3], 2.0, 0.005)
    print("plot_results scaling: ok")


if __name__ == "__main__":
    main()
