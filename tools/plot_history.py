#!/usr/bin/python3
"""Plots libnn training histories: loss and accuracy, train against
validation, one column per history so runs compare side by side (Q3c).

    tools/plot_history.py cifar_cnn_history.csv cifar_augment_history.csv \\
        --labels "Q3a: no augmentation" "Q3b: flip + rotation" \\
        -o docs/curves.png

Each CSV is what nn_history_write_csv writes:
epoch,loss,accuracy,val_loss,val_accuracy,seconds (validation columns may be
empty or NaN). The y axes are shared along each row, so the columns are
directly comparable. A summary of the last epoch of every run (train and
validation accuracy, and their gap) is printed as well.

Needs only Debian's python3-matplotlib; draws with the Agg backend (no
display).
"""

import argparse
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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


def has_values(vals):
    return any(not math.isnan(v) for v in vals)


def summary(label, h):
    """One line about the last epoch: accuracies and the generalization
    gap (train - validation)."""
    acc, vacc = h["accuracy"][-1], h["val_accuracy"][-1]
    loss, vloss = h["loss"][-1], h["val_loss"][-1]
    line = (f"{label}: epoch {int(h['epoch'][-1])}: train loss {loss:.4f} "
            f"acc {acc:.4f}")
    if not math.isnan(vacc):
        best = max(v for v in h["val_accuracy"] if not math.isnan(v))
        line += (f" | val loss {vloss:.4f} acc {vacc:.4f} (best {best:.4f})"
                 f" | gap train-val acc {acc - vacc:+.4f}, "
                 f"val-train loss {vloss - loss:+.4f}")
    return line


def overlay(ax_loss, ax_acc, histories, labels):
    """Every run in one panel per metric: one colour per run, train solid,
    validation dashed."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (h, label) in enumerate(zip(histories, labels)):
        c = colors[(k + 2) % len(colors)]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.plot(h["epoch"], h[metric], ".-", color=c,
                    label=f"{label} (train)")
            if has_values(h["val_" + metric]):
                ax.plot(h["epoch"], h["val_" + metric], ".--", color=c,
                        label=f"{label} (val)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    ax_loss.set_title("all runs")


def plot(histories, labels, out, title=None):
    n = len(histories)
    cols = n + 1 if n > 1 else 1  # several runs: a last, overlaid column
    fig, axes = plt.subplots(2, cols, figsize=(4.6 * cols + 0.6, 7.2),
                             squeeze=False, sharey="row")
    for j, (h, label) in enumerate(zip(histories, labels)):
        for i, (metric, name) in enumerate((("loss", "loss"),
                                            ("accuracy", "accuracy"))):
            ax = axes[i][j]
            ax.plot(h["epoch"], h[metric], "o-", color="tab:blue",
                    label=f"train {name}")
            if has_values(h["val_" + metric]):
                ax.plot(h["epoch"], h["val_" + metric], "s--",
                        color="tab:orange", label=f"validation {name}")
            ax.set_xlabel("epoch")
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.set_ylabel(name)
            if i == 0:
                ax.set_title(label)
            ax.legend(loc="upper right" if metric == "loss"
                      else "lower right", fontsize="small")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        acc, vacc = h["accuracy"][-1], h["val_accuracy"][-1]
        if not math.isnan(vacc):
            axes[1][j].text(
                0.02, 0.97, f"last epoch: train {acc:.3f}, val {vacc:.3f}\n"
                f"gap (train - val) {acc - vacc:+.3f}",
                transform=axes[1][j].transAxes, va="top", fontsize="small",
                bbox=dict(boxstyle="round", fc="white", alpha=0.8))
    if n > 1:
        overlay(axes[0][n], axes[1][n], histories, labels)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", nargs="+", help="history CSV files")
    p.add_argument("-o", "--output", default="history.png",
                   help="PNG to write (%(default)s)")
    p.add_argument("--labels", nargs="+",
                   help="one title per CSV (default: the file names)")
    p.add_argument("--title", help="figure title")
    a = p.parse_args(argv)
    labels = a.labels or [os.path.splitext(os.path.basename(c))[0]
                          for c in a.csv]
    if len(labels) != len(a.csv):
        p.error(f"{len(labels)} labels for {len(a.csv)} CSV files")
    try:
        histories = [read_history(c) for c in a.csv]
    except (OSError, ValueError) as e:
        print(f"plot_history: {e}", file=sys.stderr)
        return 1
    plot(histories, labels, a.output, a.title)
    for label, h in zip(labels, histories):
        print(summary(label, h))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
