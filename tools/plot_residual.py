#!/usr/bin/python3
"""Plots what examples/residual_vs_plain writes (Q1, He et al. 2016 Fig. 6).

    tools/plot_residual.py residual_out            # writes PNGs into it
    tools/plot_residual.py residual_out -o docs/   # or elsewhere

From DIR/curves.csv and DIR/profiles.csv (one run per model and seed) it
draws, for every model, the mean over the seeds as a line and the range
(lowest to highest seed) as a shaded band:
  training_error.png  training error per step (moving average of each
                      seed's batch errors), plain networks left, ResNets
                      right, 20 vs 56 layers; dotted lines where the
                      learning rate drops
  grad_profile.png    gradient norm of every weighted layer against its
                      depth, at initialisation and after the last epoch
  grad_norm.png       the global gradient norm per step
The numbers (mean and range per model, the orderings per seed) are what
residual_vs_plain prints at the end of its run.

The mean and the band come from tools/seed_spread.py, shared with
tools/plot_history.py. Needs only Debian's python3-matplotlib (Agg
backend, no display).
"""

import argparse
import csv
import math
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seed_spread import band, seeds_caption  # noqa: E402

STYLE = {"plain20": "tab:orange", "plain56": "tab:red",
         "resnet20": "tab:cyan", "resnet56": "tab:blue"}
LABEL = {"plain20": "plain-20", "plain56": "plain-56",
         "resnet20": "ResNet-20", "resnet56": "ResNet-56"}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_model_seed(rows):
    """{model: {seed: [rows]}}, in the order of the file."""
    out = OrderedDict()
    for r in rows:
        out.setdefault(r["model"], OrderedDict()).setdefault(
            r["seed"], []).append(r)
    return out


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def smooth(ys, k):
    out, acc = [], []
    for y in ys:
        acc.append(y)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def seeds_title(fig, tables):
    """Says what the line and the band are."""
    n = max(len(seeds) for seeds in tables.values())
    fig.suptitle(seeds_caption(n), fontsize="medium")


def rate_drops(curves):
    """Steps after which the learning rate falls, from a model that did
    not warm up (a warm-up's end is a rise)."""
    for seeds in curves.values():
        rows = next(iter(seeds.values()))
        lrs = [num(r["lr"]) for r in rows]
        if lrs and lrs[0] == max(lrs):
            return [num(rows[i]["step"]) for i in range(1, len(rows))
                    if lrs[i] < lrs[i - 1]]
    return []


def plot_errors(curves, out, window):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    drops = rate_drops(curves)
    for ax, kind, title in ((axes[0], "plain", "plain networks"),
                            (axes[1], "resnet", "ResNets")):
        for model, seeds in curves.items():
            if not model.startswith(kind):
                continue
            rows = next(iter(seeds.values()))
            steps = [num(r["step"]) for r in rows]
            series = [smooth([100 * num(r["train_error"]) for r in rs],
                             window) for rs in seeds.values()]
            band(ax, steps, series, STYLE.get(model),
                 LABEL.get(model, model))
        for s in drops:
            ax.axvline(s, color="gray", ls=":", lw=1)
        ax.set_title(title)
        ax.set_xlabel("step" + (" (dotted: learning rate / 10)"
                                if drops else ""))
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel(f"training error (%), mean of {window} steps")
    seeds_title(fig, curves)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def weighted(rows):
    """Conv2D/Dense layers on the main path (not the 1x1 shortcuts)."""
    return [r for r in rows if r["type"] in ("Conv2D", "Dense")
            and "_0_" not in r["layer"]]


def plot_profiles(profiles, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for model, seeds in profiles.items():
        for ax, last in ((axes[0], False), (axes[1], True)):
            series, depths = [], []
            for rows in seeds.values():
                phases = list(OrderedDict.fromkeys(r["phase"] for r in rows))
                phase = phases[-1] if last else "init"
                sel = weighted([r for r in rows if r["phase"] == phase])
                depths = [num(r["depth"]) for r in sel]
                series.append([num(r["grad_norm"]) for r in sel])
            if depths:
                band(ax, depths, series, STYLE.get(model),
                     LABEL.get(model, model), log=True)
    axes[0].set_title("at initialisation")
    axes[1].set_title("after the last epoch")
    for ax in axes:
        ax.set_xlabel("depth (weighted layer, input side first)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("L2 norm of the layer's gradient")
    seeds_title(fig, profiles)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_global(curves, out):
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, seeds in curves.items():
        rows = next(iter(seeds.values()))
        band(ax, [num(r["step"]) for r in rows],
             [[num(r["grad_norm"]) for r in rs] for rs in seeds.values()],
             STYLE.get(model), LABEL.get(model, model), log=True)
    ax.set_xlabel("step")
    ax.set_ylabel("global gradient norm (before clipping)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    seeds_title(fig, curves)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="output directory of residual_vs_plain")
    ap.add_argument("-o", "--out", help="directory for the PNGs (default: "
                    "the input directory)")
    ap.add_argument("--window", type=int, default=20,
                    help="steps in the moving average (default 20)")
    a = ap.parse_args()
    out = a.out or a.dir
    os.makedirs(out, exist_ok=True)
    try:
        rows = read(os.path.join(a.dir, "curves.csv"))
        profiles = by_model_seed(read(os.path.join(a.dir, "profiles.csv")))
    except OSError as e:
        sys.exit(f"plot_residual: {e}")
    except KeyError:
        rows = []
    if not rows or "seed" not in rows[0]:
        sys.exit(f"plot_residual: {a.dir} holds no runs with a seed column "
                 "(an empty or older residual_vs_plain output); run it "
                 "again")
    curves = by_model_seed(rows)
    names = ("training_error.png", "grad_profile.png", "grad_norm.png")
    plot_errors(curves, os.path.join(out, names[0]), a.window)
    plot_profiles(profiles, os.path.join(out, names[1]))
    plot_global(curves, os.path.join(out, names[2]))
    print(f"wrote {', '.join(os.path.join(out, n) for n in names)}")


if __name__ == "__main__":
    main()
