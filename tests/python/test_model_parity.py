"""Whole-model parity: the assignment's Q3a CNN trained 5 steps in libnn
and in a PyTorch twin from the same weights on the same batches.

  Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
  MaxPooling2D(2) - Flatten - Dropout - Dense(10, softmax)

The twin's weights are PyTorch's own initialisation, copied into libnn
(Conv2D kernels transposed to [kh, kw, cin, cout], the Dense kernel to
[in, out]). Flatten is NHWC in libnn, so the twin permutes to NHWC before
flattening. Dropout is built with rate 0.0 (a valid rate: the layer is
there but keeps everything) so training is deterministic on both sides.
Categorical cross-entropy on the softmax output (libnn computes it from the
logits, as Keras does; the twin uses F.cross_entropy on the logits), Adam
with eps_mode="torch", eps 1e-8, lr 1e-3 against torch.optim.Adam. The twin
runs in float64. Losses of every step and all final weights must agree
within 1e-4 relative; inference afterwards within 1e-4 too.
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
import nnref  # noqa: E402
from nnref import t  # noqa: E402

nn = torch.nn
F = torch.nn.functional
TOL = 1e-4
STEPS, BATCH, H, W, CIN, CLASSES = 5, 16, 28, 28, 1, 10


class Twin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(CIN, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dense = nn.Linear(5 * 5 * 64, CLASSES)

    def forward(self, x_nhwc):
        x = x_nhwc.permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC flatten
        return self.dense(x)  # logits; softmax lives in the loss


def build_libnn():
    m = libnn.Model(42)
    x = m.input((H, W, CIN))
    x = m.conv2d(x, 32, 3, activation="relu", name="conv1")
    x = m.maxpool2d(x, 2)
    x = m.conv2d(x, 64, 3, activation="relu", name="conv2")
    x = m.maxpool2d(x, 2)
    x = m.flatten(x)
    x = m.dropout(x, 0.0)
    m.dense(x, CLASSES, activation="softmax", name="dense")
    m.compile(libnn.Adam(1e-3, epsilon=1e-8, eps_mode="torch"),
              "categorical_crossentropy")
    return m


def copy_weights(twin, m):
    for name in ("conv1", "conv2"):
        conv = getattr(twin, name)
        m.layer(name).set_weights([
            nnref.kernel_from_torch(conv.weight.detach()).numpy(),
            conv.bias.detach().numpy()])
    m.layer("dense").set_weights([twin.dense.weight.detach().numpy().T,
                                  twin.dense.bias.detach().numpy()])


def test_q3a_cnn_five_adam_steps(parity, rng):
    torch.manual_seed(0)
    twin = Twin().double()
    m = build_libnn()
    copy_weights(twin, m)
    assert m.num_params == sum(p.numel() for p in twin.parameters())
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-8)

    xs = rng.uniform(0, 1, (STEPS, BATCH, H, W, CIN)).astype(np.float32)
    ids = rng.integers(0, CLASSES, (STEPS, BATCH))
    ys = np.eye(CLASSES, dtype=np.float32)[ids]
    losses, ref_losses = [], []
    for k in range(STEPS):
        losses.append(m.train_batch(xs[k], ys[k])[0])
        opt.zero_grad()
        loss = F.cross_entropy(twin(t(xs[k])), torch.tensor(ids[k]))
        loss.backward()
        opt.step()
        ref_losses.append(loss.item())

    q = {"losses": (losses, ref_losses, TOL)}
    for name in ("conv1", "conv2"):
        conv = getattr(twin, name)
        kernel, bias = m.layer(name).weights
        q[f"{name}.kernel"] = (kernel, nnref.kernel_from_torch(conv.weight),
                               TOL)
        q[f"{name}.bias"] = (bias, conv.bias, TOL)
    kernel, bias = m.layer("dense").weights
    q["dense.kernel"] = (kernel, twin.dense.weight.T, TOL)
    q["dense.bias"] = (bias, twin.dense.bias, TOL)
    with torch.no_grad():
        probs = torch.softmax(twin(t(xs[0])), -1)
    q["predict"] = (m.predict(xs[0]), probs, TOL)
    parity.compare(**q)
    assert m.iterations == STEPS
