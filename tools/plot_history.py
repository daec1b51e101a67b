#!/usr/bin/python3
"""Plots libnn training histories: loss and accuracy, train against
validation, one column per run so runs compare side by side (Q3c), and
prints the table of their last epoch.

    build/examples/cifar_cnn --history cnn.csv
    build/examples/cifar_augment --history augment.csv
    tools/plot_history.py cnn.csv augment.csv \\
        --labels "Q3a: no augmentation" "Q3b: flip + rotation" -o curves.png

A run of several seeds: with --seeds, each CSV argument is a pattern in
which {seed} stands for the seed, e.g. `cnn_seed{seed}.csv --seeds 42 1 2`;
the run's curves are then the mean over the seeds, with the range (lowest
to highest seed) shaded (tools/seed_spread.py, shared with
tools/plot_residual.py).

Each CSV is what nn_history_write_csv writes:
epoch,loss,accuracy,val_loss,val_accuracy,seconds (validation columns may be
empty or NaN). Where the program's output was kept beside its history (the
same path ending in .log), its "test accuracy: X" line gives the test
accuracy - the program's own figure, not recomputed here.

The y axes are shared along each row, so the columns are directly
comparable; with several runs a last column overlays them (one colour per
run). Train is solid with circles, validation dashed with squares, so a
run of a single epoch still shows its points; the last epoch's accuracies
and their gap are written under each run's accuracy panel, and the legend
sits below the panels, where neither hides a curve. The title ends with
the number of epochs (and of seeds).

The table - per run the last epoch's train and validation accuracy, their
gap, train and validation loss, and the test accuracy, each as mean [min,
max] over the seeds - is printed and written, in markdown with the date
(and, given --started, the wall time), to summary.md beside the PNG.
`make curves` runs all of this into build/curves/.

Needs only Debian's python3-matplotlib; draws with the Agg backend (no
display).
"""

import argparse
import csv
import math
import os
import re
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from seed_spread import band, mean_range, seeds_caption  # noqa: E402

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


def read_history(path):
    """Columns of a history CSV as lists of floats (NaN when missing)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no epochs")
    missing = [c for c in ("epoch", "loss", "accuracy") if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    out = {}
    for c in COLUMNS:
        vals = []
        for r in rows:
            v = (r.get(c) or "").strip()
            try:
                vals.append(float(v))
            except ValueError:
                vals.append(math.nan)
        out[c] = vals
    return out


def read_test_accuracy(csv_path):
    """The test accuracy the program printed, from its output kept beside
    the history (same path, .log); NaN without one."""
    log = os.path.splitext(csv_path)[0] + ".log"
    try:
        with open(log) as f:
            found = re.findall(r"test accuracy: ([0-9.]+)", f.read())
    except OSError:
        return math.nan
    return float(found[-1]) if found else math.nan


def read_run(pattern, seeds):
    """The histories of one run: one per seed, the file names from the
    pattern's {seed}; without seeds the pattern is the one file."""
    paths = [pattern.replace("{seed}", s) for s in seeds] if seeds \
        else [pattern]
    run = []
    for seed, path in zip(seeds or [None], paths):
        h = read_history(path)
        h["seed"] = seed
        h["test_accuracy"] = read_test_accuracy(path)
        run.append(h)
    return run


def has_values(vals):
    return any(not math.isnan(v) for v in vals)


def last_values(h):
    """What the table shows of one history: its last epoch, and the test
    accuracy."""
    acc, vacc = h["accuracy"][-1], h["val_accuracy"][-1]
    return {"accuracy": acc, "val_accuracy": vacc, "gap": acc - vacc,
            "loss": h["loss"][-1], "val_loss": h["val_loss"][-1],
            "test_accuracy": h["test_accuracy"]}


# Table columns: heading, key of last_values, format of one number.
TABLE = (("train acc", "accuracy", "{:.3f}"),
         ("val acc", "val_accuracy", "{:.3f}"),
         ("train - val", "gap", "{:+.3f}"),
         ("train loss", "loss", "{:.3f}"),
         ("val loss", "val_loss", "{:.3f}"),
         ("test acc", "test_accuracy", "{:.4f}"))


def format_range(values, fmt):
    """'mean [min, max]' of the values that are numbers; one value alone;
    '-' for none."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return fmt.format(vals[0])
    mean, lo, hi = mean_range(vals)
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def markdown_row(cells):
    return "| " + " | ".join(cells) + " |"


def table(runs, labels):
    """Per run, each column as mean [min, max] over its seeds."""
    head = ["run"] + [c[0] for c in TABLE]
    lines = [markdown_row(head), markdown_row(["---"] * len(head))]
    for run, label in zip(runs, labels):
        last = [last_values(h) for h in run]
        lines.append(markdown_row([label] + [
            format_range([v[key] for v in last], fmt)
            for _, key, fmt in TABLE]))
    return lines


def seed_table(runs, labels):
    """Every history's own row."""
    head = ["run", "seed"] + [c[0] for c in TABLE]
    lines = [markdown_row(head), markdown_row(["---"] * len(head))]
    for run, label in zip(runs, labels):
        for h in run:
            v = last_values(h)
            lines.append(markdown_row(
                [label, h["seed"] or "-"] +
                [format_range([v[key]], fmt) for _, key, fmt in TABLE]))
    return lines


def report(runs, labels, seeds, started=None):
    """The summary: what was run, when, the table, the rows per seed."""
    n = max(len(run) for run in runs)
    what = (f"{n} seed{'s' if n != 1 else ''}"
            + (f" ({', '.join(seeds)})" if seeds else "")
            + f", {epoch_span(runs)}")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if started is not None:
        when += f", wall time {time.time() - started:,.0f} s"
    lines = [f"Last epoch and test accuracy, {what}; mean [min, max] over "
             f"the seeds ({when}).", ""]
    lines += table(runs, labels)
    if n > 1:
        lines += ["", "Per seed:", ""] + seed_table(runs, labels)
    return "\n".join(lines) + "\n"


def epoch_span(runs):
    """'3 epochs', '1 epoch', or '1-4 epochs' when the histories differ."""
    counts = sorted({len(h["epoch"]) for run in runs for h in run})
    n = counts[-1]
    text = f"{counts[0]}-{n}" if len(counts) > 1 else f"{n}"
    return f"{text} epoch{'' if n == 1 else 's'}"


def style_axes(ax, last_epoch):
    """Whole epochs on x, from 0.5 to last + 0.5, so that a single epoch
    sits in the middle of a readable axis instead of a 0.945-1.05 one; room
    above and below the points."""
    ax.set_xlim(0.5, last_epoch + 0.5)
    if last_epoch <= 12:
        ax.set_xticks(range(1, int(last_epoch) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.12)
    ax.grid(True, alpha=0.3)


def draw(ax, run, metric, color):
    """Train solid with circles, validation dashed with squares (markers,
    so that a run of one epoch still shows its points): the mean over the
    seeds, their range shaded."""
    xs = run[0]["epoch"]
    band(ax, xs, [h[metric] for h in run], color, None, marker="o",
         linestyle="-", markersize=6)
    if has_values(run[0]["val_" + metric]):
        band(ax, xs, [h["val_" + metric] for h in run], color, None,
             marker="s", linestyle="--", markersize=6)


def last_epoch_note(run):
    """The last epoch's accuracies and their gap (means over the seeds),
    for below the axis (where it cannot hide a curve)."""
    last = [last_values(h) for h in run]
    acc = mean_range([v["accuracy"] for v in last])[0]
    vacc = mean_range([v["val_accuracy"] for v in last])[0]
    head = "last epoch" + (f", mean of {len(run)}" if len(run) > 1 else "")
    if math.isnan(vacc):
        return f"{head}: train accuracy {acc:.3f}"
    return (f"{head}: train {acc:.3f}, val {vacc:.3f},\n"
            f"gap (train - val) {acc - vacc:+.3f}")


def legend_handles(labels, colors):
    """One legend for the figure, outside the axes: line style = train or
    validation, colour = run."""
    handles = [Line2D([], [], color="0.3", marker="o", linestyle="-",
                      label="train"),
               Line2D([], [], color="0.3", marker="s", linestyle="--",
                      label="validation")]
    if len(labels) > 1:
        handles += [Line2D([], [], color=c, linewidth=4, label=label)
                    for label, c in zip(labels, colors)]
    return handles


def plot(runs, labels, out, title=None):
    n = len(runs)
    cols = n + 1 if n > 1 else 1  # several runs: a last, overlaid column
    last = max(max(h["epoch"]) for run in runs for h in run)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = [palette[k % len(palette)] for k in range(n)]
    fig, axes = plt.subplots(2, cols, figsize=(4.6 * cols + 0.6, 7.8),
                             squeeze=False, sharey="row")
    for j, (run, label, color) in enumerate(zip(runs, labels, colors)):
        for i, metric in enumerate(("loss", "accuracy")):
            for ax in (axes[i][j], axes[i][n]) if n > 1 else (axes[i][j],):
                draw(ax, run, metric, color)
        axes[0][j].set_title(label)
        axes[1][j].set_xlabel("epoch\n" + last_epoch_note(run))
    if n > 1:
        axes[0][n].set_title("all runs")
        axes[1][n].set_xlabel("epoch")
    for i, metric in enumerate(("loss", "accuracy")):
        axes[i][0].set_ylabel(metric)
        for ax in axes[i]:
            style_axes(ax, last)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
    seeds = max(len(run) for run in runs)
    fig.suptitle(f"{title or 'train vs validation'} ({epoch_span(runs)})"
                 + (f"\n{seeds_caption(seeds)}" if seeds > 1 else ""))
    handles = legend_handles(labels, colors)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles),
               fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", nargs="+", help="history CSV files, one per run "
                   "(with --seeds: patterns with {seed})")
    p.add_argument("--seeds", nargs="+", metavar="SEED",
                   help="the seeds of every run; {seed} in each CSV "
                        "argument stands for one")
    p.add_argument("-o", "--output",
                   help="PNG to write (default: the first CSV's path with "
                        ".png instead of .csv); summary.md goes beside it")
    p.add_argument("--labels", nargs="+",
                   help="one title per CSV (default: the file names)")
    p.add_argument("--title", help="figure title; the number of epochs is "
                   "appended (default: 'train vs validation')")
    p.add_argument("--started", type=float, metavar="SECONDS",
                   help="when the runs started (seconds since 1970, "
                        "date +%%s): the summary gives the wall time")
    a = p.parse_args(argv)
    if a.seeds:
        plain = [c for c in a.csv if "{seed}" not in c]
        if plain:
            p.error(f"with --seeds every CSV needs {{seed}}: {plain[0]}")
    if not a.output:
        a.output = os.path.splitext(a.csv[0].replace("{seed}", ""))[0] \
            + ".png"
    labels = a.labels or [os.path.splitext(os.path.basename(
        c.replace("{seed}", "")))[0]
                          for c in a.csv]
    if len(labels) != len(a.csv):
        p.error(f"{len(labels)} labels for {len(a.csv)} CSV files")
    try:
        runs = [read_run(c, a.seeds) for c in a.csv]
    except (OSError, ValueError) as e:
        print(f"plot_history: {e}", file=sys.stderr)
        return 1
    plot(runs, labels, a.output, a.title)
    text = report(runs, labels, a.seeds, a.started)
    path = os.path.join(os.path.dirname(a.output), "summary.md")
    with open(path, "w") as f:
        f.write(text)
    print(text, end="")
    print(f"wrote {a.output} and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
