"""Parity of the activation layers (LeakyReLU, PReLU, ELU, tanh) and the
fused activations "tanh", "elu" and "leaky_relu" against PyTorch, forward
and backward.

Method as in test_layers_parity.py: a one-layer libnn model (Input ->
layer) with the given weights, compiled with binary cross-entropy from
logits on the layer's raw output; the same loss on a float64 PyTorch
reference gives the reference gradients w.r.t. the input and every
parameter. Tolerances: forward <= 1e-4, gradients <= 1e-3 (max relative
error, conftest.py).

Keras semantics the references reproduce explicitly:
  * PReLU's alpha has Keras' shape, the input's per-sample shape (NHWC)
    with 1 on the shared axes. shared_axes=[1, 2] (one alpha per channel)
    is torch.nn.PReLU(num_parameters=C) on the NCHW input, its weight the
    alpha [1, 1, C] flattened; all axes shared is PReLU(1). Other sharing
    patterns have no torch module: the reference is
    torch.where(x > 0, x, alpha * x) with alpha broadcast over NHWC.
  * The "leaky_relu" activation string has Keras 3's slope, 0.2
    (F.leaky_relu(z, 0.2)); "elu" has alpha 1 (F.elu).
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
import nnref  # noqa: E402
from conftest import BWD_TOL, FWD_TOL  # noqa: E402
from nnref import t  # noqa: E402

F = torch.nn.functional


def _compare(parity, r, x_t, out, extra=(), nchw=False):
    """Forward, loss, dx (x_t NHWC, or NCHW with nchw) and each (name,
    libnn grad, torch grad thunk) of extra."""
    assert r["out"].shape == tuple(out.shape)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    q = dict(forward=(r["out"], out, FWD_TOL),
             loss=(r["loss"], loss, FWD_TOL),
             dx=(r["dx"], nnref.to_nhwc(x_t.grad) if nchw else x_t.grad,
                 BWD_TOL))
    for name, got, ref in extra:
        q[name] = (got, ref(), BWD_TOL)
    parity.compare(**q)


def _x(rng, shape=(3, 5, 4, 6), scale=3.0):
    return rng.uniform(-scale, scale, shape).astype(np.float32)


@pytest.mark.parametrize("alpha", [0.3, 0.01, 0.0, 2.0])
def test_leaky_relu(parity, rng, alpha):
    x = _x(rng)
    r = nnref.single_layer(lambda m, i: m.leaky_relu(i, alpha=alpha), x,
                           rng=rng)
    x_t = t(x, grad=True)
    _compare(parity, r, x_t, F.leaky_relu(x_t, alpha))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0, -0.5])
def test_elu(parity, rng, alpha):
    x = _x(rng)
    r = nnref.single_layer(lambda m, i: m.elu(i, alpha=alpha), x, rng=rng)
    x_t = t(x, grad=True)
    _compare(parity, r, x_t, F.elu(x_t, alpha))


def test_tanh(parity, rng):
    x = _x(rng)
    r = nnref.single_layer(lambda m, i: m.tanh(i), x, rng=rng)
    assert r["layer"].type == "Activation"
    x_t = t(x, grad=True)
    _compare(parity, r, x_t, torch.tanh(x_t))


PRELU_CASES = [  # (input shape with batch, shared_axes)
    ((3, 5, 4, 6), [1, 2]),     # torch.nn.PReLU(C) on NCHW
    ((3, 5, 4, 6), [1, 2, 3]),  # torch.nn.PReLU(1)
    ((3, 5, 4, 6), None),
    ((3, 5, 4, 6), [3]),
    ((3, 5, 4, 6), [1]),
    ((4, 7), None),
    ((4, 7), [1]),
]


def _alpha_shape(shape, shared):
    return tuple(1 if (k + 1) in (shared or []) else d
                 for k, d in enumerate(shape[1:]))


@pytest.mark.parametrize("shape,shared", PRELU_CASES,
                         ids=[f"{len(s) - 1}d-{a}" for s, a in PRELU_CASES])
def test_prelu(parity, rng, shape, shared):
    x = _x(rng, shape)
    alpha = rng.uniform(-0.5, 1.5, _alpha_shape(shape, shared)).astype(
        np.float32)
    r = nnref.single_layer(lambda m, i: m.prelu(i, shared_axes=shared), x,
                           [alpha], rng=rng)
    assert r["layer"].weight_names == ["alpha"]
    assert r["layer"].num_params == alpha.size
    if len(shape) == 4 and shared in ([1, 2], [1, 2, 3]):
        mod = torch.nn.PReLU(num_parameters=alpha.size).double()
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(alpha.reshape(-1)))
        x_t = t(nnref.nchw(x), grad=True)
        out = nnref.to_nhwc(mod(x_t))
        _compare(parity, r, x_t, out, [
            ("alpha_grad", r["grads"][0],
             lambda: mod.weight.grad.reshape(alpha.shape))], nchw=True)
        return
    x_t = t(x, grad=True)
    a_t = t(alpha, grad=True)
    out = torch.where(x_t > 0, x_t, a_t * x_t)
    _compare(parity, r, x_t, out, [("alpha_grad", r["grads"][0],
                                    lambda: a_t.grad)])


def test_prelu_initializers():
    m = libnn.Model(3)
    i = m.input((4, 5, 6))
    keras = m.prelu(i, shared_axes=[1, 2])
    torch_like = m.prelu(i, alpha_initializer=0.25, shared_axes=(1, 2))
    ones = m.prelu(i, alpha_initializer="ones", shared_axes=3)
    assert keras.weights[0].shape == (1, 1, 6)
    assert np.all(keras.weights[0] == 0)
    assert np.all(torch_like.weights[0] == 0.25)
    assert ones.weights[0].shape == (4, 5, 1) and np.all(ones.weights[0] == 1)
    with pytest.raises(libnn.InvalidArgument):
        m.prelu(i, shared_axes=[0])
    with pytest.raises(libnn.ShapeError):
        m.prelu(i, shared_axes=[4])
    with pytest.raises(libnn.InvalidArgument):
        m.leaky_relu(i, alpha=-0.1)
    with pytest.raises(libnn.InvalidArgument):
        m.elu(i, alpha=float("nan"))


@pytest.mark.parametrize("act,ref", [
    ("tanh", torch.tanh), ("elu", F.elu),
    ("leaky_relu", lambda z: F.leaky_relu(z, 0.2))])
def test_fused_dense(parity, rng, act, ref):
    x = _x(rng, (4, 6), 1.5)
    wk = (rng.standard_normal((6, 5)) * 0.8).astype(np.float32)
    b = (rng.standard_normal(5) * 0.5).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.dense(i, 5, activation=act), x,
                           [wk, b], rng=rng)
    x_t = t(x, grad=True)
    w_t, b_t = t(wk, grad=True), t(b, grad=True)
    _compare(parity, r, x_t, ref(x_t @ w_t + b_t), [
        ("kernel_grad", r["grads"][0], lambda: w_t.grad),
        ("bias_grad", r["grads"][1], lambda: b_t.grad)])


@pytest.mark.parametrize("act,ref", [
    ("tanh", torch.tanh), ("elu", F.elu),
    ("leaky_relu", lambda z: F.leaky_relu(z, 0.2))])
def test_fused_conv2d(parity, rng, act, ref):
    x = _x(rng, (2, 6, 5, 3), 1.5)
    wk = (rng.standard_normal((3, 3, 3, 4)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(4) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.conv2d(i, 4, 3, padding="same", activation=act), x,
        [wk, b], rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    w_t = t(nnref.kernel_to_torch(wk), grad=True)
    b_t = t(b, grad=True)
    z = nnref.conv2d(x_t, w_t, b_t, (3, 3), (1, 1), "same")
    out = nnref.to_nhwc(ref(z))
    assert r["out"].shape == tuple(out.shape)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL),
                   kernel_grad=(r["grads"][0],
                                nnref.kernel_from_torch(w_t.grad), BWD_TOL),
                   bias_grad=(r["grads"][1], b_t.grad, BWD_TOL))
