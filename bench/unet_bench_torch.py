#!/usr/bin/python3
"""PyTorch twin of bench/unet_bench.c: the TensorFlow segmentation
tutorial's U-Net with the same layers as libnn's nn_unet on the Keras
flavour of MobileNetV2 (alpha 1.0, 128x128x3): Keras' bottom/right "same"
padding of the stride-2 convolutions (ZeroPadding2D, correct_pad),
BatchNorm eps 1e-3, ReLU6, the encoder up to block_16_project (before its
normalization) and frozen (no gradients, normalization in inference mode,
as Keras runs a frozen BatchNormalization); the pix2pix decoder
ConvTranspose2d(3, stride 2, padding 1, output_padding 1) - BatchNorm -
ReLU - concatenation with the skip, 512/256/128/64, then a
ConvTranspose2d to 3 classes with bias. The parameter count is asserted
against Keras' summary (6,504,227, of which 4,660,323 trainable; Keras
counts BatchNorm's moving statistics, which PyTorch keeps as buffers).

Training step: CrossEntropyLoss on the logits with integer masks (the
tutorial's sparse categorical cross-entropy from logits), Adam on the
decoder, zero_grad(set_to_none=True). Inference: eval() under
torch.inference_mode(), logits out. Same timing method as libnn's side
(median of R repetitions of K steps after a warm-up) and the same output
lines with the prefix "torch":

    torch train_ms <ms>
    torch train_img_per_s <batch / train_ms>
    torch infer_ms <ms>
    torch infer_img_per_s <batch / infer_ms>
    torch base_rss_mb <MB>
    torch peak_rss_mb <MB>

PyTorch's best here: torch.set_num_threads equal to libnn's threads, oneDNN
on as by default, and the memory format (--memory-format, default nchw:
channels-last measured the same here, 594 against 624 ms of CPU time per
training step on one thread, 243 against 245 ms per inference batch).
"""
import argparse
import resource
import statistics
import time

import torch
from torch import nn

SIZE, CLASSES = 128, 3
TOTAL_PARAMS, TRAINABLE_PARAMS = 6_504_227, 4_660_323
# (expansion, channels, repeats, first stride) of MobileNetV2's blocks
SETTINGS = [(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
SKIPS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
         "block_13_expand_relu", "block_16_project")


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


def conv_bn_relu6(cin, cout, k, stride=1, groups=1):
    """Keras' "same": stride 2 pads bottom/right only (even sizes)."""
    pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
    return nn.Sequential(
        pad, nn.Conv2d(cin, cout, k, stride, 1 if stride == 1 and k == 3
                       else 0, groups=groups, bias=False),
        bn(cout), nn.ReLU6())


class Block(nn.Module):
    """block_N: expand - depthwise - project [- BN] [- add]; `taps` names
    the outputs a skip reads: 'expand_relu' or 'project' (before BN)."""

    def __init__(self, cin, cout, stride, t, tap=None):
        super().__init__()
        hid = cin * t
        self.expand = conv_bn_relu6(cin, hid, 1) if t != 1 else None
        self.dw = conv_bn_relu6(hid, hid, 3, stride, groups=hid)
        self.project = nn.Conv2d(hid, cout, 1, bias=False)
        self.project_bn = bn(cout) if tap != "project" else None
        self.residual = stride == 1 and cin == cout
        self.tap = tap

    def forward(self, x, taps):
        y = self.expand(x) if self.expand is not None else x
        if self.tap == "expand_relu":
            taps.append(y)
        y = self.project(self.dw(y))
        if self.tap == "project":
            taps.append(y)
            return y
        y = self.project_bn(y)
        return x + y if self.residual else y


class Encoder(nn.Module):
    """Keras' MobileNetV2 up to block_16_project; returns the skips."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn_relu6(3, 32, 3, 2)
        blocks, cin, n = [Block(32, 16, 1, 1)], 16, 1
        for t, c, reps, s in SETTINGS:
            for i in range(reps):
                name = f"block_{n}"
                tap = next((k[len(name) + 1:] for k in SKIPS
                            if k.startswith(name + "_")), None)
                blocks.append(Block(cin, c, s if i == 0 else 1, t, tap))
                cin, n = c, n + 1
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        taps = []
        x = self.conv1(x)
        for b in self.blocks:
            x = b(x, taps)
        return taps


def upsample(cin, cout):
    """pix2pix upsample: Keras' Conv2DTranspose(3, 2, "same")."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1,
                           bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, filters=(512, 256, 128, 64)):
        super().__init__()
        self.encoder = Encoder()
        skip_ch = [96, 144, 192, 576, 320]  # shallowest first
        ups, cin = [], skip_ch[-1]
        for f, skip in zip(filters, reversed(skip_ch[:-1])):
            ups.append(upsample(cin, f))
            cin = f + skip
        self.ups = nn.ModuleList(ups)
        self.last = nn.ConvTranspose2d(cin, CLASSES, 3, 2, padding=1,
                                       output_padding=1)

    def forward(self, x):
        skips = self.encoder(x)
        x = skips[-1]
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], 1)
        return self.last(x)

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm in inference mode
        return self


def build():
    torch.manual_seed(42)
    model = UNet()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    stats = sum(m.running_mean.numel() + m.running_var.numel()
                for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    total = sum(p.numel() for p in model.parameters()) + stats
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (total, trainable) == (TOTAL_PARAMS, TRAINABLE_PARAMS), \
        (total, trainable)
    return model


def median_time(step, args):
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        times.append((time.perf_counter() - t0) / args.steps)
    return statistics.median(times)


def report(what, t, batch):
    print(f"torch {what}_ms {1e3 * t:.1f}")
    print(f"torch {what}_img_per_s {batch / t:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mode", choices=["train", "infer", "both"],
                    default="both")
    ap.add_argument("--memory-format", choices=["nchw", "nhwc"],
                    default="nchw")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = rss_mb()
    fmt = (torch.channels_last if a.memory_format == "nhwc"
           else torch.contiguous_format)
    model = build().to(memory_format=fmt)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(a.batch, 3, SIZE, SIZE, generator=g).contiguous(
        memory_format=fmt)
    y = torch.randint(0, CLASSES, (a.batch, SIZE, SIZE), generator=g)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                           lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def infer_step():
        with torch.inference_mode():
            model(x)

    if a.mode != "infer":
        model.train()
        report("train", median_time(train_step, a), a.batch)
    if a.mode != "train":
        model.eval()
        report("infer", median_time(infer_step, a), a.batch)
    print(f"torch base_rss_mb {base:.1f}")
    print(f"torch peak_rss_mb {rss_mb():.1f}")


if __name__ == "__main__":
    main()
