#!/usr/bin/python3
"""Plots what examples/residual_vs_plain writes (Q1, He et al. 2016 Fig. 6).

    tools/plot_residual.py residual_out            # writes PNGs into it
    tools/plot_residual.py residual_out -o docs/   # or elsewhere

From DIR/curves.csv, DIR/profiles.csv and DIR/summary.csv it draws:
  training_error.png  training error per step (moving average), plain
                      networks left, ResNets right, 20 vs 56 layers
  grad_profile.png    gradient norm of every weighted layer against its
                      depth, at initialisation and after the last epoch
  grad_norm.png       the global gradient norm per step
and prints the summary table with the two comparisons of the paper:
plain-56 against plain-20 (degradation) and ResNet-56 against ResNet-20.

Needs only Debian's python3-matplotlib (Agg backend, no display).
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

STYLE = {"plain20": ("tab:orange", "-"), "plain56": ("tab:red", "-"),
         "resnet20": ("tab:cyan", "-"), "resnet56": ("tab:blue", "-")}
LABEL = {"plain20": "plain-20", "plain56": "plain-56",
         "resnet20": "ResNet-20", "resnet56": "ResNet-56"}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_model(rows):
    out = OrderedDict()
    for r in rows:
        out.setdefault(r["model"], []).append(r)
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


def plot_errors(curves, out, window):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, kind, title in ((axes[0], "plain", "plain networks"),
                            (axes[1], "resnet", "ResNets")):
        for model, rows in curves.items():
            if not model.startswith(kind):
                continue
            steps = [num(r["step"]) for r in rows]
            err = smooth([100 * num(r["train_error"]) for r in rows], window)
            color, ls = STYLE.get(model, (None, "-"))
            ax.plot(steps, err, color=color, ls=ls,
                    label=LABEL.get(model, model))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel(f"training error (%), mean of {window} steps")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def weighted(rows):
    """Conv2D/Dense layers on the main path (not the 1x1 shortcuts)."""
    return [r for r in rows if r["type"] in ("Conv2D", "Dense")
            and "_0_" not in r["layer"]]


def plot_profiles(profiles, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for model, rows in profiles.items():
        phases = list(OrderedDict.fromkeys(r["phase"] for r in rows))
        color, _ = STYLE.get(model, (None, "-"))
        for ax, phase in ((axes[0], "init"), (axes[1], phases[-1])):
            sel = weighted([r for r in rows if r["phase"] == phase])
            if not sel:
                continue
            ax.semilogy([num(r["depth"]) for r in sel],
                        [num(r["grad_norm"]) for r in sel], color=color,
                        marker=".", label=LABEL.get(model, model))
    axes[0].set_title("at initialisation")
    axes[1].set_title("after the last epoch")
    for ax in axes:
        ax.set_xlabel("depth (weighted layer, input side first)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    axes[0].set_ylabel("L2 norm of the layer's gradient")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_global(curves, out):
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, rows in curves.items():
        color, ls = STYLE.get(model, (None, "-"))
        ax.semilogy([num(r["step"]) for r in rows],
                    [num(r["grad_norm"]) for r in rows], color=color, ls=ls,
                    lw=0.8, label=LABEL.get(model, model))
    ax.set_xlabel("step")
    ax.set_ylabel("global gradient norm (before clipping)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def report(summary, curves, window):
    print(f"{'model':<10} {'layers':>6} {'params':>9} {'train err':>9} "
          f"{'(last {0} steps)':>17} {'eval err':>9} {'test err':>9} "
          f"{'seconds':>8}".format(window))
    tail = {}
    for r in summary:
        rows = curves.get(r["model"], [])
        last = [num(x["train_error"]) for x in rows[-window:]]
        tail[r["model"]] = sum(last) / len(last) if last else math.nan
        print(f"{LABEL.get(r['model'], r['model']):<10} {r['layers']:>6} "
              f"{int(r['params']):>9,} {num(r['final_train_error']):>9.4f} "
              f"{tail[r['model']]:>17.4f} {num(r['train_error_eval']):>9.4f} "
              f"{num(r['test_error']):>9.4f} {num(r['seconds']):>8.1f}")
    ev = {r["model"]: num(r["train_error_eval"]) for r in summary}
    for deep, shallow, what in (("plain56", "plain20", "degradation"),
                                ("resnet56", "resnet20", "residual")):
        if deep in ev and shallow in ev:
            verdict = "higher" if ev[deep] > ev[shallow] else "lower"
            print(f"{what}: {LABEL[deep]} ends with a {verdict} training "
                  f"error than {LABEL[shallow]} ({ev[deep]:.4f} vs "
                  f"{ev[shallow]:.4f}, evaluated; last {window} steps "
                  f"{tail[deep]:.4f} vs {tail[shallow]:.4f})")


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
        curves = by_model(read(os.path.join(a.dir, "curves.csv")))
        profiles = by_model(read(os.path.join(a.dir, "profiles.csv")))
        summary = read(os.path.join(a.dir, "summary.csv"))
    except OSError as e:
        sys.exit(f"plot_residual: {e}")
    plot_errors(curves, os.path.join(out, "training_error.png"), a.window)
    plot_profiles(profiles, os.path.join(out, "grad_profile.png"))
    plot_global(curves, os.path.join(out, "grad_norm.png"))
    report(summary, curves, a.window)
    print(f"wrote {out}/training_error.png, grad_profile.png, grad_norm.png")


if __name__ == "__main__":
    main()
