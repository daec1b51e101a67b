#!/usr/bin/python3
"""PyTorch twin of bench/mobilenet_v2_bench.c: MobileNetV2 1.0 with its
classifier (torchvision.models.mobilenet_v2 when importable, else the
identical definition of scripts/export_torchvision_mobilenet_v2.py), seeded
random weights, 224x224x3, eval mode under
torch.inference_mode(), batch 1 and batch 8, same timing method (median of
R repetitions of K forward passes after a warm-up), same output lines
(bench/imagenet_twin.py).

PyTorch's best here: torch.set_num_threads equal to libnn's threads, oneDNN
on as by default, and the memory format (--memory-format, default nhwc)
that is faster for this model on the machine: channels-last (on one
thread, in CPU time, 13 ms against NCHW's 25 ms at batch 1, 196 ms
against 251 ms at batch 8); the softmax is applied as libnn's predict
returns probabilities.
"""
from imagenet_twin import load_script, run


def mobilenet_v2():
    export = load_script("export_torchvision_mobilenet_v2")
    return export.random_mobilenet_v2(42)


if __name__ == "__main__":
    run(mobilenet_v2, 7, 3, 3, "nhwc")
