"""What the PyTorch twins of the ImageNet-style benchmarks (ResNet50,
MobileNetV2: bench/resnet50_bench.c, bench/mobilenet_v2_bench.c) share:
the command line, the timing method (median of R repetitions of K
forward passes after a warm-up, softmax applied as libnn's predict
returns probabilities) and the output lines, with the prefix "torch":

    torch b1_ms <ms>
    torch b1_img_per_s <1000 / b1_ms>
    torch b8_ms <ms>
    torch b8_img_per_s <8000 / b8_ms>
    torch base_rss_mb <MB>
    torch peak_rss_mb <MB>
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


def load_script(name):
    """A module of scripts/ (the exporters define the models)."""
    path = os.path.join(HERE, "..", "scripts", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def run(build, reps, steps, warmup, memory_format):
    """build() returns the model in eval mode; the defaults are libnn's
    program's, memory_format the faster one for the model here."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--mode", default="infer", help="ignored")
    ap.add_argument("--weights", help="ignored (speed does not depend on it)")
    ap.add_argument("--memory-format", choices=["nchw", "nhwc"],
                    default=memory_format)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = rss_mb()
    fmt = (torch.channels_last if a.memory_format == "nhwc"
           else torch.contiguous_format)
    model = build().to(memory_format=fmt)
    for batch in (1, 8):
        t = median_latency(model, batch, fmt, a)
        print(f"torch b{batch}_ms {1e3 * t:.1f}")
        print(f"torch b{batch}_img_per_s {batch / t:.2f}", flush=True)
    print(f"torch base_rss_mb {base:.1f}")
    print(f"torch peak_rss_mb {rss_mb():.1f}")
