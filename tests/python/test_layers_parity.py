"""Layer parity: every libnn layer against PyTorch, forward and backward.

Method. Each case builds a one-layer libnn model (Input -> layer), copies
random weights into it and into the PyTorch reference (NHWC <-> NCHW:
x.transpose(0, 3, 1, 2); Conv2D kernel [kh, kw, cin, cout] <-> torch
[cout, cin, kh, kw] via transpose(3, 2, 0, 1); Dense kernel [in, out] <->
torch Linear weight [out, in]), and compares:
  * the forward output (model.predict, inference mode),
  * the gradients w.r.t. the input and every parameter.
To get exact gradients out of libnn the model is compiled with binary
cross-entropy *from logits* applied to the layer's raw output: its gradient
is (sigmoid(out) - y) / out.size, a smooth function of the output, and
torch's F.binary_cross_entropy_with_logits (mean reduction) is the same
loss; model.backward(x, y) returns the loss and dx, layer.grads the
parameter gradients. The reference runs in float64, so the errors measured
are libnn's own. Tolerances: forward <= 1e-4, backward <= 1e-3 (max
relative error, see conftest.py).

Keras semantics the references reproduce explicitly:
  * SAME padding pads ceil-style with the extra row/column at the
    bottom/right (F.pad before the convolution/pool);
  * max pooling pads with -inf; average pooling with SAME does not count
    the padded cells (window sums / window counts);
  * Flatten flattens NHWC (channels last).
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


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ------------------------------------------------------------------ Conv2D
CONV_GRID = [(pad, stride, bias, act)
             for pad in ("valid", "same")
             for stride in (1, 2, (2, 1))
             for bias in (True, False)
             for act in (None, "relu")]

CONV_KERNELS = [  # (kernel, stride, padding, input h, w)
    (1, 1, "valid", 6, 5), (1, 2, "same", 7, 6), (1, 2, "valid", 7, 6),
    (5, 1, "valid", 9, 8), (5, 1, "same", 7, 8), (5, 2, "same", 9, 8),
    ((2, 3), 1, "same", 6, 7), ((2, 3), (1, 2), "valid", 6, 7),
    ((3, 1), 1, "same", 6, 5), ((1, 3), 2, "same", 5, 7),
    ((4, 4), 1, "same", 6, 6), ((4, 2), (2, 3), "same", 9, 10),
]


def _conv_case(parity, rng, k, stride, padding, bias, act, h, w, cin=3,
               cout=4, n=2):
    kh, kw = _pair(k)
    s = _pair(stride)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    wk = (rng.standard_normal((kh, kw, cin, cout)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.conv2d(i, cout, (kh, kw), strides=stride,
                              padding=padding, activation=act, use_bias=bias),
        x, [wk, b] if bias else [wk], rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    w_t = t(nnref.kernel_to_torch(wk), grad=True)
    b_t = t(b, grad=True) if bias else None
    z = nnref.conv2d(x_t, w_t, b_t, (kh, kw), s, padding)
    out = nnref.to_nhwc(nnref.activation(z, act))
    assert r["out"].shape == tuple(out.shape)
    extra = [("kernel_grad", r["grads"][0],
              lambda: nnref.kernel_from_torch(w_t.grad))]
    if bias:
        extra.append(("bias_grad", r["grads"][1], lambda: b_t.grad))
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    q = dict(forward=(r["out"], out, FWD_TOL),
             loss=(r["loss"], loss, FWD_TOL),
             dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL))
    for name, got, ref in extra:
        q[name] = (got, ref(), BWD_TOL)
    parity.compare(**q)


CONV_LARGE = [  # (kernel, stride, padding, h, w, cin, cout, batch)
    (3, 1, "same", 16, 16, 16, 32, 4),
    (5, 2, "valid", 17, 15, 8, 24, 3),
    (3, 1, "valid", 12, 12, 1, 32, 1),  # batch of one, one channel
]


@pytest.mark.parametrize("k,stride,padding,h,w,cin,cout,n", CONV_LARGE,
                         ids=[f"k{c[0]}-s{c[1]}-{c[2]}-{c[3]}x{c[4]}x{c[5]}"
                              f"-f{c[6]}-n{c[7]}" for c in CONV_LARGE])
def test_conv2d_larger(parity, rng, k, stride, padding, h, w, cin, cout, n):
    """Shapes big enough for the blocked/threaded kernel paths."""
    _conv_case(parity, rng, k, stride, padding, True, "relu", h, w, cin=cin,
               cout=cout, n=n)


@pytest.mark.parametrize("padding,stride,bias,act", CONV_GRID,
                         ids=[f"{p}-s{s}-{'bias' if b else 'nobias'}-{a}"
                              for p, s, b, a in CONV_GRID])
def test_conv2d_grid(parity, rng, padding, stride, bias, act):
    _conv_case(parity, rng, 3, stride, padding, bias, act, 7, 8)


@pytest.mark.parametrize("k,stride,padding,h,w", CONV_KERNELS,
                         ids=[f"k{k}-s{s}-{p}-{h}x{w}"
                              for k, s, p, h, w in CONV_KERNELS])
def test_conv2d_kernels(parity, rng, k, stride, padding, h, w):
    _conv_case(parity, rng, k, stride, padding, True, "relu", h, w)


def test_conv2d_same_padding_is_asymmetric(rng):
    """With an even kernel and stride 1 Keras pads 0 on top and 1 at the
    bottom: a one-hot input at the last row must reach output row h-1 through
    the kernel's first row, which a symmetric pad would not produce."""
    m = libnn.Model(1)
    layer = m.conv2d(m.input((4, 4, 1)), 1, 2, padding="same",
                     use_bias=False)
    k = np.zeros((2, 2, 1, 1), np.float32)
    k[0, 0, 0, 0] = 1.0  # out[i, j] = x[i + pad_top, j + pad_left]
    layer.set_weights([k])
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(m.predict(x), x)


# ------------------------------------------------------------------- pools
POOL_CASES = [  # (pool, strides, padding, h, w)
    (2, None, "valid", 8, 8), (2, None, "valid", 7, 9),
    (3, 2, "valid", 9, 8), ((2, 3), (1, 2), "valid", 7, 9),
    ((3, 2), (2, 1), "valid", 8, 7),
    (2, None, "same", 7, 9), (3, 2, "same", 8, 7), (3, 1, "same", 6, 5),
    ((2, 3), (1, 2), "same", 7, 8), ((3, 2), (2, 3), "same", 9, 10),
    (2, 3, "valid", 8, 9), (2, 3, "same", 8, 9),  # stride > pool
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,strides,padding,h,w", POOL_CASES,
                         ids=[f"p{p}-s{s}-{pad}-{h}x{w}"
                              for p, s, pad, h, w in POOL_CASES])
def test_pool2d(parity, rng, kind, pool, strides, padding, h, w):
    k = _pair(pool)
    s = k if strides is None else _pair(strides)
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    build = (lambda m, i: (m.maxpool2d if kind == "max" else m.avgpool2d)(
        i, pool, strides=strides, padding=padding))
    r = nnref.single_layer(build, x, rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    fn = nnref.maxpool2d if kind == "max" else nnref.avgpool2d
    out = nnref.to_nhwc(fn(x_t, k, s, padding))
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL))


# ------------------------------------------------------------------- Dense
DENSE_CASES = [(bias, act) for bias in (True, False)
               for act in (None, "relu", "sigmoid", "softmax")]


@pytest.mark.parametrize("bias,act", DENSE_CASES,
                         ids=[f"{'bias' if b else 'nobias'}-{a}"
                              for b, a in DENSE_CASES])
def test_dense(parity, rng, bias, act):
    _dense_case(parity, rng, (12,), 5, bias, act)


def test_dense_on_last_axis_of_rank3(parity, rng):
    _dense_case(parity, rng, (3, 4, 6), 5, True, "relu")


def test_dense_larger(parity, rng):
    _dense_case(parity, rng, (300,), 70, True, "softmax", n=33)


def _dense_case(parity, rng, in_shape, units, bias, act, n=4):
    x = rng.standard_normal((n,) + in_shape).astype(np.float32)
    wk = (rng.standard_normal((in_shape[-1], units)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(units) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.dense(i, units, activation=act, use_bias=bias),
        x, [wk, b] if bias else [wk], rng=rng)
    x_t = t(x, grad=True)
    w_t = t(wk.T, grad=True)  # torch Linear weight [out, in]
    b_t = t(b, grad=True) if bias else None
    out = nnref.activation(F.linear(x_t, w_t, b_t), act)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    q = dict(forward=(r["out"], out, FWD_TOL),
             loss=(r["loss"], loss, FWD_TOL),
             dx=(r["dx"], x_t.grad, BWD_TOL),
             kernel_grad=(r["grads"][0], w_t.grad.T, BWD_TOL))
    if bias:
        q["bias_grad"] = (r["grads"][1], b_t.grad, BWD_TOL)
    parity.compare(**q)


# ----------------------------------------------------------------- Flatten
def test_flatten_is_nhwc_order(parity, rng):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.flatten(i), x, rng=rng)
    assert r["out"].shape == (3, 120)
    # NHWC order: channels vary fastest, exactly numpy's reshape.
    np.testing.assert_array_equal(r["out"], x.reshape(3, -1))
    x_t = t(x, grad=True)
    out = x_t.reshape(3, -1)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL))


# ----------------------------------------------------- activation layers
ACT_CASES = [(kind, shape) for kind in ("relu", "sigmoid", "softmax")
             for shape in ((7,), (3, 4, 5))]


@pytest.mark.parametrize("kind,shape", ACT_CASES,
                         ids=[f"{k}-{'x'.join(map(str, s))}"
                              for k, s in ACT_CASES])
def test_activation_layer(parity, rng, kind, shape):
    x = (rng.standard_normal((4,) + shape) * 2).astype(np.float32)
    r = nnref.single_layer(lambda m, i: getattr(m, kind)(i), x, rng=rng)
    x_t = t(x, grad=True)
    out = nnref.activation(x_t, kind)  # softmax over the last axis
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL))


# ----------------------------------------------------------------- Dropout
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_dropout_inference_is_identity(parity, rng, rate):
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.dropout(i, rate), x, rng=rng)
    np.testing.assert_array_equal(r["out"], x)
    x_t = t(x, grad=True)
    loss = nnref.bce_logits_mean(x_t, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], x_t, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL))


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.8])
def test_dropout_training_mask_and_scale(rate):
    """In training, with a constant input c and labels 0 the input gradient
    is mask * s * sigmoid(s * c) / size with s = 1 / (1 - rate): it reveals
    the mask (zero where dropped) and the scaling of the kept values."""
    n, d, c = 50, 400, 0.5
    m = libnn.Model(123)
    m.dropout(m.input((d,)), rate)
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    x = np.full((n, d), c, np.float32)
    y = np.zeros((n, d), np.float32)
    s = 1.0 / (1.0 - rate)
    masks = []
    for _ in range(2):
        loss, dx = m.backward(x, y, training=True)
        kept = dx != 0
        masks.append(kept)
        expect = s / (1 + np.exp(-s * c)) / (n * d)
        np.testing.assert_allclose(dx[kept], expect, rtol=1e-5)
        # Loss: softplus(s*c) where kept, softplus(0) = log 2 where dropped.
        p = kept.mean()
        want = p * np.log1p(np.exp(s * c)) + (1 - p) * np.log(2)
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        # The dropped fraction is Binomial(n*d, rate): within 5 sigma.
        sigma = np.sqrt(rate * (1 - rate) / (n * d))
        assert abs((1 - p) - rate) < 5 * sigma, (1 - p, rate)
    # Every step draws a new mask.
    assert (masks[0] != masks[1]).mean() > 0.5 * 2 * rate * (1 - rate)
    # Inference is still the identity.
    np.testing.assert_array_equal(m.predict(x), x)
