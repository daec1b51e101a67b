#!/usr/bin/python3
"""PyTorch twin of bench/resnet50_bench.c: ResNet50 (torchvision's when
importable, else the identical v1.5 definition of
scripts/export_torchvision_resnet50.py), 224x224x3, eval mode under
torch.inference_mode(), batch 1 and batch 8, same timing method (median of
R repetitions of K forward passes after a warm-up), same output lines
(bench/imagenet_twin.py).

PyTorch's best here: torch.set_num_threads equal to libnn's threads, oneDNN
on as by default, and the memory format (--memory-format, default nchw)
that is faster for this model on the machine; the softmax is applied as
libnn's predict returns probabilities.
"""
import torch

from imagenet_twin import load_script, run


def resnet50():
    torch.manual_seed(42)
    return load_script("export_torchvision_resnet50").resnet50().eval()


if __name__ == "__main__":
    run(resnet50, 5, 1, 2, "nchw")
