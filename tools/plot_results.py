#!/usr/bin/python3
"""Figures from an attnscope results directory (headless matplotlib).

Usage: tools/plot_results.py RESULTS_DIR

Writes PNG files beside the CSVs: training time, GPU energy, peak memory, mean power,
FLOPs, CPU usage per variant (bars: median over repeats, whiskers: min..max), loss curves,
and energy against time (one point per run); and summary.md, a Markdown table of the
medians over repeats per variant and configuration. Where the runs of one batch size span
two or more sequence lengths: scaling.png (peak memory and step time against T, log-log,
one line per variant, linear and quadratic guides) and scaling.md (per variant the log-log
slopes and the straight-line fit of peak memory against T). Empty cells (unmeasured metrics) are
skipped, never plotted as 0. Only the standard library and matplotlib are needed.
"""
import csv
import math
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def config_label(row):
    return f"B={row['batch']} T={row['seq']}"


def series(row):
    """The variant, and who ran it where that is not attnscope in fp32 with the split
    attention backward (`framework`, `precision` and `attention_backward` columns; merged
    with tools/torch_twin.py's rows, PyTorch's bars stand beside attnscope's): "flash",
    "flash (torch-sdpa)", "flash (tf32)", "flash (fused)"."""
    who = [row.get("framework") or "attnscope", row.get("precision") or "fp32",
           row.get("attention_backward") or "split"]
    who = [w for w, plain in zip(who, ("attnscope", "fp32", "split")) if w != plain]
    return row["variant"] + (f" ({' '.join(who)})" if who else "")


def by_variant(summary, column):
    """{config: {variant: [values over ok repeats]}} for one summary column."""
    table = defaultdict(lambda: defaultdict(list))
    for row in summary:
        value = number(row.get(column))
        if row["status"] == "ok" and value is not None:
            table[config_label(row)][series(row)].append(value)
    return table


def bar_figure(summary, column, ylabel, title, path, scale=1.0):
    table = by_variant(summary, column)
    if not table:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    configs = sorted(table)
    variants = sorted({v for c in configs for v in table[c]})
    width = 0.8 / max(1, len(configs))
    for ci, config in enumerate(configs):
        xs, meds, lo, hi = [], [], [], []
        for vi, variant in enumerate(variants):
            values = [v * scale for v in table[config].get(variant, [])]
            if not values:
                continue
            med = statistics.median(values)
            xs.append(vi + ci * width)
            meds.append(med)
            lo.append(med - min(values))
            hi.append(max(values) - med)
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=config)
    ax.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(variants))])
    ax.set_xticklabels(variants, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(configs) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def loss_figure(steps, path):
    curves = defaultdict(list)
    for row in steps:
        loss = number(row.get("loss"))
        if loss is not None:
            key = (series(row), config_label(row), row["repeat"])
            curves[key].append((int(row["step"]), loss))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = {}
    for (variant, config, repeat), points in sorted(curves.items()):
        points.sort()
        color = colors.setdefault(variant, f"C{len(colors) % 10}")
        ax.plot([p[0] for p in points], [p[1] for p in points], color=color, alpha=0.8,
                label=variant if repeat == "0" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def energy_time_figure(summary, path):
    points = defaultdict(list)
    for row in summary:
        t, e = number(row.get("train_time_s")), number(row.get("gpu_energy_j"))
        if row["status"] == "ok" and t is not None and e is not None:
            points[series(row)].append((t, e))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    for variant, pts in sorted(points.items()):
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=variant)
    ax.set_xlabel("training time of measured steps (s)")
    ax.set_ylabel("GPU energy (J)")
    ax.set_title("Energy against time (one point per run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def medians_by_seq(summary, column, batch):
    """{variant: [(T, median over ok repeats)]} for one batch size, sorted by T."""
    values = defaultdict(lambda: defaultdict(list))
    for row in summary:
        value = number(row.get(column))
        if row["status"] == "ok" and int(row["batch"]) == batch and value is not None:
            values[series(row)][int(row["seq"])].append(value)
    return {variant: sorted((t, statistics.median(v)) for t, v in by_t.items())
            for variant, by_t in values.items()}


def least_squares(xs, ys):
    """(slope, intercept, r²) of the straight line through (xs, ys)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = 1.0 if syy == 0 else sxy * sxy / (sxx * syy)
    return slope, my - slope * mx, r2


def scaling_batch(summary):
    """The batch size whose ok runs span the most sequence lengths (None below two)."""
    seqs = defaultdict(set)
    for row in summary:
        if row["status"] == "ok":
            seqs[int(row["batch"])].add(int(row["seq"]))
    batch = max(seqs, key=lambda b: (len(seqs[b]), -b), default=None)
    return batch if batch is not None and len(seqs[batch]) >= 2 else None


SCALING_PANELS = [
    # (summary column, axis label, scale)
    ("peak_mem_allocated_bytes", "peak device memory (GiB)", 1 / 2**30),
    ("step_ms_median", "step time (ms)", 1),
]


def scaling_figure(summary, path):
    batch = scaling_batch(summary)
    if batch is None:
        return None
    fig, axes = plt.subplots(1, len(SCALING_PANELS), figsize=(12, 5))
    for ax, (column, label, scale) in zip(axes, SCALING_PANELS):
        curves = medians_by_seq(summary, column, batch)
        for i, (variant, points) in enumerate(sorted(curves.items())):
            ax.plot([t for t, _ in points], [v * scale for _, v in points], "o-",
                    color=f"C{i % 10}", label=variant)
        lines = [points for points in curves.values() if len(points) >= 2]
        if lines:  # guides through the lowest first point: slope 1 (linear) and 2 (quadratic)
            t0, v0 = min((points[0] for points in lines), key=lambda p: p[1])
            t1 = max(points[-1][0] for points in lines)
            for power, style in ((1, ":"), (2, "--")):
                ax.plot([t0, t1], [v0 * scale, v0 * scale * (t1 / t0) ** power], "k" + style,
                        linewidth=1, label=f"∝ T{'²' if power == 2 else ''}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"Scaling with sequence length (B={batch}; medians over repeats)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scaling_table(summary, path):
    """Per variant: log-log slopes of memory and step time against T (1: linear, 2:
    quadratic) and peak memory = a + b·T fitted by least squares (MiB per token, r²)."""
    batch = scaling_batch(summary)
    if batch is None:
        return None
    memory = medians_by_seq(summary, "peak_mem_allocated_bytes", batch)
    time = medians_by_seq(summary, "step_ms_median", batch)
    lines = [f"Scaling with T at B={batch} (medians over repeats; slopes of log-log fits).", "",
             "| variant | T | memory slope | time slope | memory = a + b·T: b (MiB/token) | a (MiB) | r² |",
             "|---|---|---|---|---|---|---|"]
    for variant in sorted(set(memory) | set(time)):
        mem, tim = memory.get(variant, []), time.get(variant, [])
        cells = [variant, ", ".join(str(t) for t, _ in (mem or tim))]
        for points in (mem, tim):
            if len(points) >= 2:
                slope = least_squares([math.log(t) for t, _ in points],
                                      [math.log(v) for _, v in points])[0]
                cells.append(f"{slope:.2f}")
            else:
                cells.append("—")
        if len(mem) >= 2:
            b, a, r2 = least_squares([t for t, _ in mem], [v / 2**20 for _, v in mem])
            cells += [f"{b:.4f}", f"{a:.0f}", f"{r2:.4f}"]
        else:
            cells += ["—", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


TABLE_COLUMNS = [
    # (summary column, heading, scale, decimals)
    ("step_ms_median", "step ms", 1, 1),
    ("tokens_per_s_median", "tokens/s", 1, 0),
    ("achieved_tflops", "TFLOP/s", 1, 1),
    ("mfu", "MFU %", 100, 1),
    ("peak_mem_allocated_bytes", "peak mem GiB", 1 / 2**30, 2),
    ("gpu_mean_w", "GPU W", 1, 0),
    ("gpu_j_per_token", "GPU mJ/token", 1e3, 1),
    ("gpu_energy_net_j", "net GPU J", 1, 0),
    ("cpu_util", "CPU cores", 1, 2),
    ("final_val_loss", "val loss", 1, 3),
]


def markdown_table(summary, path):
    """Median over ok repeats of each run's figure; an unmeasured figure is '—'."""
    runs = defaultdict(list)
    for row in summary:
        if row["status"] == "ok":
            runs[(int(row["batch"]), int(row["seq"]), series(row))].append(row)
    if not runs:
        return None
    lines = ["| B | T | variant | runs | " + " | ".join(h for _, h, _, _ in TABLE_COLUMNS) + " |",
             "|---" * (4 + len(TABLE_COLUMNS)) + "|"]
    for (batch, seq, variant), rows in sorted(runs.items()):
        cells = [str(batch), str(seq), variant, str(len(rows))]
        for column, _, scale, decimals in TABLE_COLUMNS:
            values = [v for v in (number(r.get(column)) for r in rows) if v is not None]
            cells.append(f"{statistics.median(values) * scale:.{decimals}f}" if values else "—")
        lines.append("| " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    directory = argv[1]
    try:
        summary = read_csv(os.path.join(directory, "summary.csv"))
        steps = read_csv(os.path.join(directory, "steps.csv"))
    except OSError as error:
        print(f"plot_results.py: error: {error}", file=sys.stderr)
        return 2
    out = lambda name: os.path.join(directory, name)  # noqa: E731
    written = [
        bar_figure(summary, "train_time_s", "seconds", "Training time (measured steps)",
                   out("training_time.png")),
        bar_figure(summary, "tokens_per_s_median", "tokens/s", "Throughput", out("throughput.png")),
        bar_figure(summary, "gpu_energy_j", "joules", "GPU energy (measured steps)",
                   out("gpu_energy.png")),
        bar_figure(summary, "gpu_j_per_token", "mJ/token", "GPU energy per token",
                   out("energy_per_token.png"), scale=1e3),
        bar_figure(summary, "peak_mem_allocated_bytes", "GiB", "Peak device memory (allocated)",
                   out("peak_memory.png"), scale=1 / 2**30),
        bar_figure(summary, "gpu_mean_w", "watts", "Mean GPU power", out("mean_power.png")),
        bar_figure(summary, "model_flops_per_step", "GFLOP", "Model FLOPs per step",
                   out("flops.png"), scale=1e-9),
        bar_figure(summary, "cpu_util", "cores busy", "CPU utilisation", out("cpu_usage.png")),
        loss_figure(steps, out("loss_curves.png")),
        energy_time_figure(summary, out("energy_vs_time.png")),
        scaling_figure(summary, out("scaling.png")),
        scaling_table(summary, out("scaling.md")),
        markdown_table(summary, out("summary.md")),
    ]
    written = [w for w in written if w]
    for path in written:
        print(path)
    if not written:
        print("plot_results.py: nothing to plot (no successful runs)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
