#!/usr/bin/python3
"""PyTorch twin of bench/resnet50_bench.c: ResNet50 (torchvision's when
importable, else the identical v1.5 definition of
scripts/export_torchvision_resnet50.py), 224x224x3, eval mode under
torch.inference_mode(), batch 1 and batch 8, same timing method (median of
R repetitions of K forward passes after a warm-up), same output lines with
the prefix "torch":

    torch b1_ms 57.0
    torch b1_img_per_s 17.54
    torch b8_ms 380.0
    torch b8_img_per_s 21.05
    torch base_rss_mb 250.1
    torch peak_rss_mb 420.2

PyTorch's best here: torch.set_num_threads equal to libnn's threads, oneDNN
on as by default, and the memory format (--memory-format, default nchw)
that is faster for this model on the machine; the softmax is applied as
libnn's predict returns probabilities.
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


def resnet50():
    path = os.path.join(HERE, "..", "scripts", "export_torchvision_resnet50.py")
    spec = importlib.util.spec_from_file_location("export_resnet50", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(42)
    return mod.resnet50().eval()


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
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", default="infer", help="ignored")
    ap.add_argument("--weights", help="ignored (speed does not depend on it)")
    ap.add_argument("--memory-format", choices=["nchw", "nhwc"],
                    default="nchw")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = rss_mb()
    fmt = (torch.channels_last if a.memory_format == "nhwc"
           else torch.contiguous_format)
    model = resnet50().to(memory_format=fmt)
    for batch in (1, 8):
        t = median_latency(model, batch, fmt, a)
        print(f"torch b{batch}_ms {1e3 * t:.1f}")
        print(f"torch b{batch}_img_per_s {batch / t:.2f}", flush=True)
    print(f"torch base_rss_mb {base:.1f}")
    print(f"torch peak_rss_mb {rss_mb():.1f}")


if __name__ == "__main__":
    main()
