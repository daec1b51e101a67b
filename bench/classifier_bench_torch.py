#!/usr/bin/python3
"""PyTorch twin of bench/classifier_bench.c: the Q4 defect classifier
(examples/defect_model.h, built here by hand: change both together) at
batch 1 on 128x128x3 uint8 frames, with the same preprocessing
((pixel / 255 - 0.5) / 0.25 per channel) and the same decision (softmax,
defective where p[1] >= threshold), in eval mode under
torch.inference_mode(). Same timing method: a warm-up, then --reps rounds
of 100 calls, each timed alone, over 16 frames; median and 99th
percentile (nearest rank) at 1 thread and at --threads
(torch.set_num_threads). Same output lines with the prefix "torch":

    torch p50_ms_t1 1.9
    torch p99_ms_t1 2.4
    torch p50_ms_t2 1.3
    torch p99_ms_t2 1.9
    torch base_rss_mb 250.1
    torch peak_rss_mb 300.2

Allocations per call are libnn's figure only (PyTorch's caching
allocator has no counter comparable to the library's hook). The frames
are uniform noise rather than the synthetic surfaces: latency does not
depend on the pixels' values.
"""
import argparse
import math
import resource
import time

import torch
from torch import nn

SIZE = 128
ROUND = 100
FRAMES = 16


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def classifier():
    """defect_model.h's default: 3 x [Conv(f, 3x3, same) - ReLU -
    MaxPool(2)], f = 8, 16, 32; Conv(32, 3x3, same) - ReLU; max over the
    16x16 map; Dense(2, softmax)."""
    layers, c = [], 3
    for f in (8, 16, 32):
        layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = f
    layers += [nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(),
               nn.MaxPool2d(SIZE // 8), nn.Flatten(), nn.Linear(32, 2)]
    torch.manual_seed(42)
    return nn.Sequential(*layers).eval()


class Product:
    """What nn_context_classify_u8 does: 8-bit HWC frame in, preprocessing,
    the network, softmax, the verdict at the threshold."""

    def __init__(self, model, threshold=0.5):
        self.model = model
        self.scale = 1.0 / 255.0
        self.mean = torch.full((1, 3, 1, 1), 0.5)
        self.std = torch.full((1, 3, 1, 1), 0.25)
        self.threshold = threshold

    def classify(self, frame):
        # NCHW and contiguous: PyTorch's fast convolution path
        x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float()
        x = x.contiguous()
        x = (x * self.scale - self.mean) / self.std
        probs = torch.softmax(self.model(x), 1)[0]
        score = float(probs[1])
        return int(torch.argmax(probs)), score, score >= self.threshold


def quantile(v, q):
    k = max(math.ceil(q * len(v)) - 1, 0)
    return v[k]


def measure(product, frames, threads, args):
    torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for i in range(args.warmup):
            product.classify(frames[i % FRAMES])
        for i in range(args.reps * ROUND):
            t0 = time.perf_counter()
            product.classify(frames[i % FRAMES])
            times.append(time.perf_counter() - t0)
    times.sort()
    print(f"torch p50_ms_t{threads} {1e3 * quantile(times, 0.50):.3f}")
    print(f"torch p99_ms_t{threads} {1e3 * quantile(times, 0.99):.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    base = rss_mb()
    g = torch.Generator().manual_seed(7)
    frames = [torch.randint(0, 256, (SIZE, SIZE, 3), dtype=torch.uint8,
                            generator=g).numpy() for _ in range(FRAMES)]
    product = Product(classifier())
    measure(product, frames, 1, a)
    if a.threads > 1:
        measure(product, frames, a.threads, a)
    print(f"torch base_rss_mb {base:.1f}")
    print(f"torch peak_rss_mb {rss_mb():.1f}")


if __name__ == "__main__":
    main()
