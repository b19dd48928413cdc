#!/usr/bin/env python3
"""PyTorch's side of the long-T attention comparison: what its fp32 causal SDPA runs on the
GPU, and how long one layer's attention takes, forward and backward, at attnscope's shapes
(B, 12 heads of 64 by default: GPT-2 124M).

PyTorch has no fp32 FlashAttention, so fp32 SDPA takes the memory-efficient (CUTLASS)
backend. On compute capability 8.0 and later that backend's fp32 kernels are CUTLASS
tensor-core GEMMs with OpMultiplyAddFastF32, i.e. 3xTF32, whatever
torch.backends.cuda.matmul.allow_tf32 says (gemm_kernel_utils.h, DefaultGemmType). This
script records the kernels' names (…_f32_…_sm80 is that specialisation) and their times, so
the comparison with attnscope's fp32 and 3xtf32 attention rests on a measurement.

    python3 tools/torch_attention.py --seq 8192,16384 --out DIR

Writes DIR/torch_attention.csv (seq, pass, ms per layer: median of --repeats) and
DIR/torch_attention_kernels.csv (seq, kernel, calls, ms in one forward + backward).
"""
import argparse
import csv
import os

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from torch_gemm import median_ms  # CUDA-event median of one call, after a warm-up


def attention_inputs(batch, heads, seq, head_size):
    """Q, K, V (B, H, T, d) with gradients, and dO; values like GPT-2's (unit scale)."""
    shape = (batch, heads, seq, head_size)
    q, k, v = (torch.randn(shape, device="cuda", requires_grad=True) for _ in range(3))
    return q, k, v, torch.randn(shape, device="cuda")


def kernel_rows(seq, run):
    """The CUDA kernels of one call of run, by name: calls and total ms."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    rows = []
    for event in prof.key_averages():
        device_us = getattr(event, "device_time_total", None)
        if device_us is None:  # PyTorch before 2.4
            device_us = event.cuda_time_total
        if device_us > 0:
            rows.append({"seq": seq, "kernel": event.key, "calls": event.count, "ms": f"{device_us / 1e3:.3f}"})
    return sorted(rows, key=lambda r: -float(r["ms"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", default="8192,16384", help="comma-separated sequence lengths")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", required=True, help="directory to write the two CSVs into")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    timings, kernels = [], []
    for seq in (int(s) for s in args.seq.split(",")):
        q, k, v, dout = attention_inputs(args.batch, args.heads, seq, args.head_size)

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def forward_backward():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), dout)

        fwd = median_ms(forward, args.repeats)
        both = median_ms(forward_backward, args.repeats)
        for name, ms in (("forward", fwd), ("backward", both - fwd), ("forward+backward", both)):
            timings.append({"seq": seq, "batch": args.batch, "heads": args.heads, "head_size": args.head_size,
                            "pass": name, "ms_per_layer": f"{ms:.3f}", "torch": torch.__version__,
                            "device": torch.cuda.get_device_name()})
        seq_kernels = kernel_rows(seq, forward_backward)
        kernels += seq_kernels
        print(f"T={seq}: forward {fwd:.2f} ms, backward {both - fwd:.2f} ms per layer")
        for row in seq_kernels[:4]:
            print(f"  {row['ms']:>9} ms  {row['calls']:>3}x  {row['kernel'][:110]}")
        del q, k, v, dout
    for name, rows in (("torch_attention.csv", timings), ("torch_attention_kernels.csv", kernels)):
        with open(os.path.join(args.out, name), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
