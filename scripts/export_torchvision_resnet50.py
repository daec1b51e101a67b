#!/usr/bin/python3
"""Exports a torchvision ResNet50 state_dict to a safetensors file that
libnn loads with nn_model_load_safetensors(m, path,
NN_WEIGHTS_TORCHVISION_RESNET) into nn_resnet50(..., NN_RESNET_TORCHVISION).

    # pretrained ImageNet weights (torchvision; fetched by torchvision into
    # its cache if not there yet - run it where that is possible):
    scripts/export_torchvision_resnet50.py resnet50.safetensors
    scripts/export_torchvision_resnet50.py resnet50.safetensors --weights IMAGENET1K_V1
    # an offline copy of the weights, saved with torch.save(state_dict):
    scripts/export_torchvision_resnet50.py resnet50.safetensors --state-dict resnet50.pth
    # seeded random weights (no download, no torchvision needed):
    scripts/export_torchvision_resnet50.py random.safetensors --random-seed 7

The file is written by hand (JSON header + raw little-endian data, the
standard safetensors layout), so the `safetensors` package is not needed.
When torchvision is not importable, the architecture comes from the compact
ResNet50 v1.5 below, whose state_dict keys and shapes are torchvision's.
libnn itself never downloads anything.

Offline (no network), the pretrained weights work only if torchvision
already has them in its cache ($TORCH_HOME/hub/checkpoints, by default
~/.cache/torch/hub/checkpoints, e.g. copied there from a machine with a
network); otherwise the script says so in one line and exits 1. What works
offline: --state-dict FILE and --random-seed S.
"""
import argparse
import json
import os
import struct
import sys

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("export_torchvision_resnet50: PyTorch is missing: "
             "apt-get install python3-torch")

PROG = "export_torchvision_resnet50"
OFFLINE = "offline, use --state-dict FILE or --random-seed S"

# ---------------------------------------------------------------- the model


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision.models.resnet50(): same modules, keys and forward."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 3, 1)
        self.layer2 = self._make_layer(128, 4, 2)
        self.layer3 = self._make_layer(256, 6, 2)
        self.layer4 = self._make_layer(512, 3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                        nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def have_torchvision():
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:  # absent, or present but broken
        return False


def resnet50(num_classes=1000, use_torchvision=None):
    """An untrained ResNet50: torchvision's when importable, else ours."""
    if use_torchvision is None:
        use_torchvision = have_torchvision()
    if use_torchvision:
        import torchvision
        return torchvision.models.resnet50(weights=None,
                                           num_classes=num_classes)
    return ResNet50(num_classes)


def randomize_batchnorm(model, randomize_bn, calibrate_batches, size):
    """randomize_bn draws BatchNorm's gamma and beta; calibrate_batches > 0
    then sets the running statistics to the real statistics of that many
    random batches of size x size images, so in eval mode the statistics
    matter and activations keep a sane scale through every block. Returns
    the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        if randomize_bn:
            for m in bns:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        if calibrate_batches:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches
            model.train()
            for _ in range(calibrate_batches):
                model(torch.randn(4, 3, size, size))
            for m in bns:
                m.momentum = 0.1
    return model.eval()


def random_resnet50(seed, num_classes=1000, randomize_bn=False,
                    calibrate_batches=0, use_torchvision=None):
    """Seeded random weights, BatchNorm as randomize_batchnorm makes it."""
    torch.manual_seed(seed)
    model = resnet50(num_classes, use_torchvision)
    return randomize_batchnorm(model, randomize_bn, calibrate_batches, 224)


def pretrained_resnet50(weights):
    import torchvision
    enum = torchvision.models.ResNet50_Weights
    w = getattr(enum, weights) if weights != "DEFAULT" else enum.DEFAULT
    return torchvision.models.resnet50(weights=w).eval()


# ---------------------------------------------------------------- the file

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
          torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}


def tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    a = t.numpy()
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and
                                    sys.byteorder == "big"):
        a = a.byteswap()
    return a.tobytes()


def write_safetensors(tensors, path, metadata=None):
    """tensors: an ordered mapping name -> torch.Tensor. Writes the standard
    layout: u64 LE header length, JSON header padded with spaces to a
    multiple of 8, then the tensors back to back in the given order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} has no safetensors name")
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)


def export(model, path, source):
    sd = model.state_dict()
    write_safetensors(sd, path, {"format": "pt", "source": source})
    return len(sd)


def fail(message):
    """One line on stderr, exit status 1: no traceback for what a user can
    fix."""
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(1)


def load_state_dict_file(path, classes):
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # a user's file: missing, truncated, not torch's
        fail(f"cannot read --state-dict {path}: {e}")
    model = resnet50(classes)
    try:
        model.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError) as e:
        # torch's text: a header line, then "Missing key(s) ...: ..."
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = lines[1] if len(lines) > 1 else lines[0] if lines else ""
        fail(f"--state-dict {path} is not a ResNet50 state_dict with "
             f"{classes} classes: {why[:160]}")
    return model


def download_pretrained(weights):
    if not have_torchvision():
        fail("pretrained weights need torchvision (apt-get install "
             f"python3-torchvision); {OFFLINE}")
    try:
        return pretrained_resnet50(weights)
    except OSError as e:  # URLError, no network, a full disk
        fail(f"cannot get the {weights} weights through torchvision "
             f"({getattr(e, 'reason', e)}); {OFFLINE}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG + ".py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="the .safetensors file to write")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--weights", default="DEFAULT",
                     choices=("DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2"),
                     help="torchvision's pretrained weights (default "
                          "%(default)s; needs the network or its cache)")
    src.add_argument("--state-dict", metavar="FILE",
                     help="a torch.save()d resnet50 state_dict instead "
                          "(works offline)")
    src.add_argument("--random-seed", type=int, metavar="S",
                     help="seeded random weights instead (works offline)")
    ap.add_argument("--randomize-bn", action="store_true",
                    help="with --random-seed: random BatchNorm gamma/beta "
                         "and calibrated running statistics")
    ap.add_argument("--classes", type=int, default=1000,
                    help="with --random-seed or --state-dict: fc outputs "
                         "(default %(default)s)")
    a = ap.parse_args(argv)
    if a.random_seed is not None:
        model = random_resnet50(a.random_seed, a.classes, a.randomize_bn,
                                4 if a.randomize_bn else 0)
        source = f"random seed {a.random_seed}"
    elif a.state_dict:
        model = load_state_dict_file(a.state_dict, a.classes)
        source = os.path.basename(a.state_dict)
    else:
        model = download_pretrained(a.weights)
        source = f"torchvision ResNet50_Weights.{a.weights}"
    try:
        n = export(model, a.output, source)
    except OSError as e:
        fail(f"cannot write {a.output}: {e.strerror or e}")
    print(f"wrote {a.output}: {n} tensors ({source})")


if __name__ == "__main__":
    main()
