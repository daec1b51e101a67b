#!/usr/bin/python3
"""PyTorch twin of bench/cnn_bench.c: the assignment's Q3a CNN on random
32x32x3 data, batch 128, same timing method (median of R timed blocks of K
steps after a warm-up), same output lines with the prefix "torch".

    torch train_img_per_s 1234.5
    torch infer_img_per_s 5678.9
    torch base_rss_mb 250.1
    torch peak_rss_mb 310.2

Run it with Debian's interpreter (/usr/bin/python3, python3-torch). Each
side runs in its own process so peak_rss_mb is that side's own peak;
base_rss_mb is the peak before the model exists (the runtime's share).
"""
import argparse
import resource
import statistics
import sys
import time

import torch
from torch import nn

IMAGES = 1280
BATCH = 128
CLASSES = 10


def rss_mb():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_model():
    # Q3a: Conv(32,3x3,relu)-Pool(2)-Conv(64,3x3,relu)-Pool(2)-Flatten-
    # Dropout(0.5)-Dense(10). The softmax lives in the loss (logits +
    # CrossEntropyLoss) for training and is applied explicitly in inference.
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 6 * 6, CLASSES))


def timed_blocks(step, warmup, reps, steps):
    """Images/s of each of `reps` blocks of `steps` calls, after warm-up."""
    for i in range(warmup):
        step(i)
    rates = []
    k = warmup
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            step(k)
            k += 1
        rates.append(steps * BATCH / (time.perf_counter() - t0))
    return rates


def bench_train(model, xs, ys, fmt, args):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batches = IMAGES // BATCH

    def step(i):
        b = i % batches
        x = xs[b * BATCH:(b + 1) * BATCH].contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), ys[b * BATCH:(b + 1) * BATCH])
        loss.backward()
        opt.step()

    return timed_blocks(step, args.warmup, args.reps, args.steps)


def bench_infer(model, xs, fmt, args):
    model.eval()
    batches = IMAGES // BATCH

    def step(i):
        b = i % batches
        x = xs[b * BATCH:(b + 1) * BATCH].contiguous(memory_format=fmt)
        with torch.inference_mode():
            torch.softmax(model(x), dim=1)

    return timed_blocks(step, args.warmup, args.reps, args.steps)


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--mode", choices=("train", "infer", "both"),
                   default="both")
    # channels_last (NHWC, libnn's own layout) lets oneDNN pick its fast
    # convolutions: measured faster than NCHW here in both training (~+15%)
    # and inference (~2x), so it is the default.
    p.add_argument("--memory-format", choices=("nhwc", "nchw"),
                   default="nhwc")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    if min(a.threads, a.reps, a.steps) < 1 or a.warmup < 0:
        p.error("--threads, --reps and --steps must be >= 1")
    return a


def main():
    args = parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    fmt = (torch.channels_last if args.memory_format == "nhwc"
           else torch.contiguous_format)
    base = rss_mb()

    # Converted once, as libnn gets its NHWC input ready-made: a batch
    # slice of a channels_last tensor is itself channels_last.
    xs = torch.rand(IMAGES, 3, 32, 32).contiguous(memory_format=fmt)
    ys = torch.randint(0, CLASSES, (IMAGES,))
    model = build_model().to(memory_format=fmt)

    out = []
    if args.mode in ("train", "both"):
        rates = bench_train(model, xs, ys, fmt, args)
        out.append(("train_img_per_s", statistics.median(rates)))
    if args.mode in ("infer", "both"):
        rates = bench_infer(model, xs, fmt, args)
        out.append(("infer_img_per_s", statistics.median(rates)))
    out.append(("base_rss_mb", base))
    out.append(("peak_rss_mb", rss_mb()))
    for name, value in out:
        print("torch %s %.1f" % (name, value))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
