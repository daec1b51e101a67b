"""Helpers of the parity suite: PyTorch references with Keras semantics and
the single-layer libnn harness. Imported by the test modules (pytest puts
this directory on sys.path)."""

import importlib.util
import os

import numpy as np

import libnn

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the test modules skip themselves
    torch = F = None

DT = None if torch is None else torch.float64

# Keras clips probabilities to [eps, 1 - eps] computed in float32.
P_LO = float(np.float32(1e-7))
P_HI = float(np.float32(1.0) - np.float32(1e-7))


def t(a, grad=False):
    """A float64 torch tensor of a numpy array (the reference runs in
    double, so the measured error is libnn's own)."""
    return torch.tensor(np.asarray(a, np.float64), dtype=DT,
                        requires_grad=grad)


def nchw(a):
    return a.transpose(0, 3, 1, 2)


def to_nhwc(x):
    return x.permute(0, 2, 3, 1)


def kernel_to_torch(w):
    """Keras Conv2D kernel [kh, kw, cin, cout] -> torch [cout, cin, kh, kw]."""
    return w.transpose(3, 2, 0, 1)


def kernel_from_torch(wt):
    """torch [cout, cin, kh, kw] -> Keras [kh, kw, cin, cout]."""
    return wt.permute(2, 3, 1, 0)


def same_pads(n, k, s):
    """Keras/TensorFlow SAME: out = ceil(n/s); the odd pixel of an uneven
    total goes after (bottom/right)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_same(x, k, s, value=0.0):
    """Pads NCHW x for SAME with kernel k=(kh, kw), stride s=(sh, sw)."""
    top, bottom = same_pads(x.shape[2], k[0], s[0])
    left, right = same_pads(x.shape[3], k[1], s[1])
    return F.pad(x, (left, right, top, bottom), value=value)


def activation(z, act):
    if act in (None, "linear"):
        return z
    if act == "relu":
        return torch.relu(z)
    if act == "sigmoid":
        return torch.sigmoid(z)
    if act == "softmax":
        return torch.softmax(z, dim=-1)
    raise ValueError(act)


def conv2d(x, w, b, k, s, padding):
    """Keras Conv2D on NCHW torch tensors (w in torch layout)."""
    if padding == "same":
        x = pad_same(x, k, s)
    return F.conv2d(x, w, b, stride=s)


def maxpool2d(x, k, s, padding):
    if padding == "same":
        x = pad_same(x, k, s, value=float("-inf"))
    return F.max_pool2d(x, k, s)


def avgpool2d(x, k, s, padding):
    """Keras AveragePooling2D: with SAME the padded cells are not counted,
    so the reference divides window sums by window counts."""
    if padding == "valid":
        return F.avg_pool2d(x, k, s)
    area = k[0] * k[1]
    sums = F.avg_pool2d(pad_same(x, k, s), k, s) * area
    ones = torch.ones_like(x[:1, :1])
    counts = F.avg_pool2d(pad_same(ones, k, s), k, s) * area
    return sums / counts


def bce_logits_mean(out, y):
    """The loss the layer tests differentiate: BCE from logits, mean over
    every value (libnn: mean over the batch of per-sample means)."""
    return F.binary_cross_entropy_with_logits(out, t(y))


def single_layer(build, x, weights=(), seed=1, y=None, rng=None):
    """Runs one libnn layer (Input -> layer) on x.

    The model is compiled with binary cross-entropy *from logits* on the
    layer's raw output, so d loss / d out = (sigmoid(out) - y) / out.size
    exactly and the same loss in PyTorch gives the same gradients. Returns
    a dict: out (predict, inference mode), y, loss, dx, grads (copies),
    model, layer."""
    m = libnn.Model(seed)
    layer = build(m, m.input(x.shape[1:]))
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    if weights:
        layer.set_weights(weights)
    out = m.predict(x, batch_size=x.shape[0])
    if y is None:
        y = rng.uniform(0, 1, out.shape).astype(np.float32)
    loss, dx = m.backward(x, y, training=False)
    grads = [None if g is None else g.copy() for g in layer.grads]
    return dict(out=out, y=y, loss=loss, dx=dx, grads=grads, model=m,
                layer=layer)


def load_script(name):
    """A script of scripts/ (e.g. "export_torchvision_resnet50.py") as a
    module, for the tests that use its model definitions and writer."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..",
                                        ".."))
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(name)[0], os.path.join(root, "scripts", name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
