#!/usr/bin/python3
"""Plots libnn training histories: loss and accuracy, train against
validation, one column per history so runs compare side by side (Q3c).

    build/examples/cifar_cnn --history cnn.csv
    build/examples/cifar_augment --history augment.csv
    tools/plot_history.py cnn.csv augment.csv \\
        --labels "Q3a: no augmentation" "Q3b: flip + rotation" -o curves.png

Each CSV is what nn_history_write_csv writes:
epoch,loss,accuracy,val_loss,val_accuracy,seconds (validation columns may be
empty or NaN). The y axes are shared along each row, so the columns are
directly comparable; with several runs a last column overlays them (one
colour per run). Train is solid with circles, validation dashed with
squares, so a run of a single epoch still shows its points; the last
epoch's accuracies and their gap are written under each run's accuracy
panel, and the legend sits below the panels, where neither hides a curve.
The title ends with the number of epochs. A summary of the last epoch of
every run is printed as well. `make curves` runs all of this into
build/curves/.

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
from matplotlib.lines import Line2D  # noqa: E402
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


def epoch_span(histories):
    """'3 epochs', '1 epoch', or '1-4 epochs' when the runs differ."""
    counts = sorted({len(h["epoch"]) for h in histories})
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


def draw(ax, h, metric, color):
    """Train solid with circles, validation dashed with squares: markers,
    so that a run of one epoch still shows its points."""
    ax.plot(h["epoch"], h[metric], "o-", color=color, markersize=6)
    if has_values(h["val_" + metric]):
        ax.plot(h["epoch"], h["val_" + metric], "s--", color=color,
                markersize=6)


def last_epoch_note(h):
    """The last epoch's accuracies and their gap, for below the axis (where
    it cannot hide a curve)."""
    acc, vacc = h["accuracy"][-1], h["val_accuracy"][-1]
    if math.isnan(vacc):
        return f"last epoch: train accuracy {acc:.3f}"
    return (f"last epoch: train {acc:.3f}, val {vacc:.3f}, "
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


def plot(histories, labels, out, title=None):
    n = len(histories)
    cols = n + 1 if n > 1 else 1  # several runs: a last, overlaid column
    last = max(max(h["epoch"]) for h in histories)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = [palette[k % len(palette)] for k in range(n)]
    fig, axes = plt.subplots(2, cols, figsize=(4.6 * cols + 0.6, 7.8),
                             squeeze=False, sharey="row")
    for j, (h, label, color) in enumerate(zip(histories, labels, colors)):
        for i, metric in enumerate(("loss", "accuracy")):
            for ax in (axes[i][j], axes[i][n]) if n > 1 else (axes[i][j],):
                draw(ax, h, metric, color)
        axes[0][j].set_title(label)
        axes[1][j].set_xlabel("epoch\n" + last_epoch_note(h))
    if n > 1:
        axes[0][n].set_title("all runs")
        axes[1][n].set_xlabel("epoch")
    for i, metric in enumerate(("loss", "accuracy")):
        axes[i][0].set_ylabel(metric)
        for ax in axes[i]:
            style_axes(ax, last)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
    fig.suptitle(f"{title or 'train vs validation'} ({epoch_span(histories)})")
    handles = legend_handles(labels, colors)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles),
               fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", nargs="+", help="history CSV files")
    p.add_argument("-o", "--output",
                   help="PNG to write (default: the first CSV's path with "
                        ".png instead of .csv)")
    p.add_argument("--labels", nargs="+",
                   help="one title per CSV (default: the file names)")
    p.add_argument("--title", help="figure title; the number of epochs is "
                   "appended (default: 'train vs validation')")
    a = p.parse_args(argv)
    if not a.output:
        a.output = os.path.splitext(a.csv[0])[0] + ".png"
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
