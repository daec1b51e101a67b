#!/usr/bin/python3
"""Exports a torchvision MobileNetV2 state_dict to a safetensors file that
libnn loads with nn_model_load_safetensors(m, path,
NN_WEIGHTS_TORCHVISION_MOBILENET_V2) into nn_mobilenet_v2(...,
NN_MOBILENET_TORCHVISION).

    # pretrained ImageNet weights (torchvision; fetched by torchvision into
    # its cache if not there yet - run it where that is possible):
    scripts/export_torchvision_mobilenet_v2.py mobilenet_v2.safetensors
    scripts/export_torchvision_mobilenet_v2.py m.safetensors --weights IMAGENET1K_V2
    # an offline copy of the weights, saved with torch.save(state_dict):
    scripts/export_torchvision_mobilenet_v2.py m.safetensors --state-dict mobilenet_v2.pth
    # seeded random weights (no download, no torchvision needed):
    scripts/export_torchvision_mobilenet_v2.py random.safetensors --random-seed 7

The file is written by export_torchvision_resnet50.py's writer (JSON header
+ raw little-endian data), so the `safetensors` package is not needed. When
torchvision is not importable, the architecture comes from the compact
MobileNetV2 below, whose modules, state_dict keys, shapes, initialisation
and forward are torchvision's (0.14). libnn itself never downloads anything.
"""
import argparse
import importlib.util
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def _resnet_script():
    """The ResNet exporter, for its safetensors writer (one writer)."""
    path = os.path.join(HERE, "export_torchvision_resnet50.py")
    spec = importlib.util.spec_from_file_location("export_resnet50", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_writer = _resnet_script()  # its writer and BatchNorm randomisation
write_safetensors = _writer.write_safetensors
have_torchvision = _writer.have_torchvision

# ---------------------------------------------------------------- the model


def make_divisible(v, divisor=8):
    """torchvision's _make_divisible: the nearest multiple of divisor, at
    least divisor, never more than 10% below v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation(..., activation_layer=ReLU6):
    keys <i>.0.weight (conv), <i>.1.* (BatchNorm)."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# t (expansion), c (channels), n (blocks), s (first stride)
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2(): same modules, keys and forward."""

    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in SETTING:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1,
                                                 t))
                cin = cout
        features.append(ConvBNReLU6(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes=1000, width_mult=1.0, use_torchvision=None):
    """An untrained MobileNetV2: torchvision's when importable, else ours."""
    if use_torchvision is None:
        use_torchvision = have_torchvision()
    if use_torchvision:
        import torchvision
        return torchvision.models.mobilenet_v2(
            weights=None, num_classes=num_classes, width_mult=width_mult)
    return MobileNetV2(num_classes, width_mult)


def random_mobilenet_v2(seed, num_classes=1000, width_mult=1.0,
                        randomize_bn=False, calibrate_batches=0, size=96,
                        use_torchvision=None):
    """Seeded random weights, BatchNorm as the ResNet exporter's
    randomize_batchnorm makes it (calibrated on size x size images)."""
    torch.manual_seed(seed)
    model = mobilenet_v2(num_classes, width_mult, use_torchvision)
    return _writer.randomize_batchnorm(model, randomize_bn,
                                       calibrate_batches, size)


def pretrained_mobilenet_v2(weights):
    import torchvision
    enum = torchvision.models.MobileNet_V2_Weights
    w = getattr(enum, weights) if weights != "DEFAULT" else enum.DEFAULT
    return torchvision.models.mobilenet_v2(weights=w).eval()


def export(model, path, source):
    sd = model.state_dict()
    write_safetensors(sd, path, {"format": "pt", "source": source})
    return len(sd)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="the .safetensors file to write")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--weights", default="DEFAULT",
                     help="torchvision MobileNet_V2_Weights name (DEFAULT, "
                          "IMAGENET1K_V1, IMAGENET1K_V2)")
    src.add_argument("--state-dict", metavar="FILE",
                     help="a torch.save()d mobilenet_v2 state_dict instead")
    src.add_argument("--random-seed", type=int, metavar="S",
                     help="seeded random weights instead (no download)")
    ap.add_argument("--randomize-bn", action="store_true",
                    help="with --random-seed: random BatchNorm gamma/beta "
                         "and calibrated running statistics")
    ap.add_argument("--classes", type=int, default=1000,
                    help="with --random-seed or --state-dict: classifier "
                         "outputs")
    ap.add_argument("--width-mult", type=float, default=1.0,
                    help="with --random-seed or --state-dict: torchvision's "
                         "width_mult (libnn's alpha)")
    a = ap.parse_args(argv)
    try:
        if a.random_seed is not None:
            model = random_mobilenet_v2(a.random_seed, a.classes,
                                        a.width_mult, a.randomize_bn,
                                        4 if a.randomize_bn else 0)
            source = f"random seed {a.random_seed}"
        elif a.state_dict:
            model = mobilenet_v2(a.classes, a.width_mult)
            model.load_state_dict(torch.load(a.state_dict,
                                             map_location="cpu"))
            source = os.path.basename(a.state_dict)
        else:
            if not have_torchvision():
                sys.exit("export_torchvision_mobilenet_v2: pretrained "
                         "weights need torchvision (python3-torchvision); "
                         "offline, use --state-dict FILE or --random-seed S")
            model = pretrained_mobilenet_v2(a.weights)
            source = f"torchvision MobileNet_V2_Weights.{a.weights}"
        n = export(model, a.output, source)
    except (OSError, RuntimeError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        sys.exit(f"export_torchvision_mobilenet_v2: {type(e).__name__}: "
                 f"{first} (offline, use --state-dict FILE or "
                 "--random-seed S)")
    print(f"wrote {a.output}: {n} tensors ({source})")


if __name__ == "__main__":
    main()
