#!/usr/bin/python3
"""Figures from an attnscope results directory (headless matplotlib).

Usage: tools/plot_results.py RESULTS_DIR

Writes PNG files beside the CSVs: training time, GPU energy, peak memory, mean power,
FLOPs, CPU usage per variant (bars: median over repeats, whiskers: min..max), loss curves,
and energy against time (one point per run); and summary.md, a Markdown table of the
medians over repeats per variant and configuration. Empty cells (unmeasured metrics) are
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


def by_variant(summary, column):
    """{config: {variant: [values over ok repeats]}} for one summary column."""
    table = defaultdict(lambda: defaultdict(list))
    for row in summary:
        value = number(row.get(column))
        if row["status"] == "ok" and value is not None:
            table[config_label(row)][row["variant"]].append(value)
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
            key = (row["variant"], config_label(row), row["repeat"])
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
            points[row["variant"]].append((t, e))
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
            runs[(int(row["batch"]), int(row["seq"]), row["variant"])].append(row)
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
