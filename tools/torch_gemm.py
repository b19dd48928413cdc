#!/usr/bin/env python3
"""The vendor BLAS side of `attnscope gemm`: times every product of an `attnscope gemm
--csv` table with PyTorch (cuBLAS on NVIDIA) on the same GPU, in fp32 (TF32 off) and TF32,
and writes the same rows with PyTorch's milliseconds and TFLOP/s, so the two tables can be
held side by side.

    python3 tools/torch_gemm.py attnscope_gemm.csv --out torch_gemm.csv
"""
import argparse
import csv

import torch


def operands(row, device):
    """Contiguous A, B (stored as attnscope stores them) and C for one product."""
    m, n, k, batch = (int(row[c]) for c in ("M", "N", "K", "batch"))
    trans_a, trans_b = row["layout"][0] == "t", row["layout"][1] == "t"
    a = torch.rand(batch, *((k, m) if trans_a else (m, k)), device=device) * 2 - 1
    b = torch.rand(batch, *((n, k) if trans_b else (k, n)), device=device) * 2 - 1
    return (a.transpose(1, 2) if trans_a else a), (b.transpose(1, 2) if trans_b else b)


def median_ms(fn, repeats):
    """Median device time of one call, by CUDA events, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="CSV written by attnscope gemm --csv")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rows = list(csv.DictReader(open(args.table)))
    device = torch.device("cuda")
    results = []
    for precision in ("fp32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        flops = seconds = 0.0
        for row in rows:
            a, b = operands(row, device)
            ms = median_ms(lambda: torch.bmm(a, b), args.repeats)
            product_flops = 2.0 * int(row["M"]) * int(row["N"]) * int(row["K"]) * int(row["batch"])
            tflops = product_flops / (ms * 1e-3) / 1e12
            flops += int(row["per_step"]) * product_flops
            seconds += int(row["per_step"]) * ms * 1e-3
            results.append({**{c: row[c] for c in ("group", "role", "layout", "M", "N", "K", "batch", "per_step")},
                            "framework": f"torch {torch.__version__}", "precision": precision,
                            "ms": f"{ms:.4f}", "tflops": f"{tflops:.2f}"})
            print(f"{precision} {row['role']:<20} {row['layout']} {row['M']:>6} {row['N']:>6} {row['K']:>6} "
                  f"b{row['batch']:<4} {ms:8.3f} ms {tflops:7.2f} TFLOP/s")
        print(f"time-weighted {precision}: {flops / seconds / 1e12:.2f} TFLOP/s")
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)


if __name__ == "__main__":
    main()
