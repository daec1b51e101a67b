"""Parity of the graph-model layers against PyTorch, forward and backward.

Method as in test_layers_parity.py: libnn runs the layer in a small model
compiled with binary cross-entropy from logits on its raw output, the
reference runs the same computation in float64 PyTorch, and the suite
compares the output, the loss, the input gradient and every parameter
gradient (max relative error; forward <= 1e-4, backward <= 1e-3).

References:
  * BatchNormalization: torch.nn.BatchNorm2d (NCHW) in eval and train mode,
    with momentum_torch = 1 - momentum_keras and the same eps. In training
    PyTorch normalizes with the biased batch variance and moves
    running_var with the unbiased one, as libnn (and Keras) do for images.
    The moving statistics at every rank follow a float64 transcription of
    tf.keras' update rule instead, which differs by rank: its fused path
    (inputs [N, H, W, C] and [N, D, H, W, C]) moves the variance
    Bessel-corrected, its unfused path (every other rank: features [N, C],
    sequences [N, T, C]) with tf.nn.moments' biased variance. The training-mode
    output is not returned by any libnn call; it is read off exactly through
    a LocallyConnected2D 1x1 with identity kernels after the BN, whose
    kernel gradient at position p is bn_out[p, c] * g[p, f] and bias
    gradient g[p, f] (batch of one), so bn_out = dkernel / dbias.
  * Resizing: F.interpolate(mode="bilinear", align_corners=False), up and
    down (antialias off, as Keras' Resizing); nearest: mode="nearest-exact"
    (TensorFlow's half-pixel nearest).
  * ZeroPadding2D: F.pad; GlobalAveragePooling2D: mean over H, W;
    RepeatChannels: repeat_interleave on the channel axis.
  * Add / Concatenate: branch graphs (one tensor feeding several layers)
    built from 1x1 convolutions and the input itself.
  * LocallyConnected2D: an explicit patch-extraction reference (windows in
    (ky, kx, c) order, one [K, F] kernel per position).
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


def _bce(out_nhwc, y):
    return nnref.bce_logits_mean(out_nhwc, y)


# -------------------------------------------------------- BatchNormalization
BN_CASES = [  # (shape h, w, c, batch, keras momentum, eps)
    (5, 4, 3, 4, 0.99, 1e-3),
    (7, 6, 8, 2, 0.9, 1e-5),       # PyTorch's defaults (momentum 0.1)
    (4, 4, 16, 3, 0.99, 1.001e-5),  # Keras' ResNet50
    (1, 1, 6, 8, 0.5, 1e-3),        # after global pooling: batch only
]


def _bn_weights(rng, c):
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32) * 0.3
    mean = rng.standard_normal(c).astype(np.float32) * 0.5
    var = rng.uniform(0.5, 2.0, c).astype(np.float32)
    return gamma, beta, mean, var


def _torch_bn(c, momentum, eps, weights, train):
    bn = torch.nn.BatchNorm2d(c, eps=eps, momentum=1.0 - momentum).double()
    gamma, beta, mean, var = weights
    with torch.no_grad():
        bn.weight.copy_(t(gamma))
        bn.bias.copy_(t(beta))
        bn.running_mean.copy_(t(mean))
        bn.running_var.copy_(t(var))
    bn.train(train)
    return bn


@pytest.mark.parametrize("h,w,c,n,momentum,eps", BN_CASES,
                         ids=[f"{h}x{w}x{c}-n{n}-m{m}-eps{e}"
                              for h, w, c, n, m, e in BN_CASES])
def test_batchnorm_eval(parity, rng, h, w, c, n, momentum, eps):
    x = (rng.standard_normal((n, h, w, c)) * 2 + 1).astype(np.float32)
    wts = _bn_weights(rng, c)
    r = nnref.single_layer(
        lambda m, i: m.batchnorm(i, momentum=momentum, epsilon=eps),
        x, list(wts), rng=rng)
    bn = _torch_bn(c, momentum, eps, wts, train=False)
    x_t = t(nnref.nchw(x), grad=True)
    out = nnref.to_nhwc(bn(x_t))
    loss = _bce(out, r["y"])
    loss.backward()
    # Inference never moves the statistics.
    np.testing.assert_array_equal(r["layer"].weights[2], wts[2])
    np.testing.assert_array_equal(r["layer"].weights[3], wts[3])
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL),
                   gamma_grad=(r["grads"][0], bn.weight.grad, BWD_TOL),
                   beta_grad=(r["grads"][1], bn.bias.grad, BWD_TOL))


@pytest.mark.parametrize("h,w,c,n,momentum,eps", BN_CASES,
                         ids=[f"{h}x{w}x{c}-n{n}-m{m}-eps{e}"
                              for h, w, c, n, m, e in BN_CASES])
def test_batchnorm_train(parity, rng, h, w, c, n, momentum, eps):
    x = (rng.standard_normal((n, h, w, c)) * 2 + 1).astype(np.float32)
    wts = _bn_weights(rng, c)
    m = libnn.Model(3)
    layer = m.batchnorm(m.input((h, w, c)), momentum=momentum, epsilon=eps)
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    layer.set_weights(list(wts))
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    loss, dx = m.backward(x, y, training=True)
    bn = _torch_bn(c, momentum, eps, wts, train=True)
    x_t = t(nnref.nchw(x), grad=True)
    out = nnref.to_nhwc(bn(x_t))
    ref_loss = _bce(out, y)
    ref_loss.backward()
    mm, mv = layer.weights[2], layer.weights[3]
    parity.compare(loss=(loss, ref_loss, FWD_TOL),
                   moving_mean=(mm, bn.running_mean, FWD_TOL),
                   moving_variance=(mv, bn.running_var, FWD_TOL),
                   dx=(dx, nnref.to_nhwc(x_t.grad), BWD_TOL),
                   gamma_grad=(layer.grads[0], bn.weight.grad, BWD_TOL),
                   beta_grad=(layer.grads[1], bn.bias.grad, BWD_TOL))


@pytest.mark.parametrize("h,w,c", [(6, 5, 3), (4, 4, 8), (9, 2, 1)])
def test_batchnorm_train_forward(parity, rng, h, w, c):
    """The training-mode output itself, read off through an identity
    LocallyConnected2D 1x1 (see the module docstring)."""
    x = (rng.standard_normal((1, h, w, c)) * 3 - 2).astype(np.float32)
    wts = _bn_weights(rng, c)
    m = libnn.Model(4)
    bn_layer = m.batchnorm(m.input((h, w, c)), momentum=0.9, epsilon=1e-3)
    lc = m.locally_connected2d(bn_layer, c, 1)
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    bn_layer.set_weights(list(wts))
    eye = np.broadcast_to(np.eye(c, dtype=np.float32), (h * w, c, c))
    lc.set_weights([eye.copy(), np.zeros((h, w, c), np.float32)])
    y = np.zeros((1, h, w, c), np.float32)
    m.backward(x, y, training=True, want_dx=False)
    dk, db = lc.grads
    got = dk[:, :, 0] / db.reshape(h * w, c)[:, :1]
    bn = _torch_bn(c, 0.9, 1e-3, wts, train=True)
    ref = nnref.to_nhwc(bn(t(nnref.nchw(x)))).reshape(h * w, c)
    parity.compare(train_forward=(got, ref, FWD_TOL))


def _keras_moving_stats(x, mm, mv, momentum):
    """tf.keras 2's BatchNormalization update of the moving statistics for
    an input x of any rank, channels last, in float64
    (keras/layers/normalization/batch_normalization.py):
      * rank 4 or 5 (fused=True by default): fused_batch_norm with
        exponential_avg_factor = 1 - momentum, whose variance carries
        Bessel's correction: new = (1 - f) * old + f * batch;
      * other ranks: tf.nn.moments (biased) and _assign_moving_average:
        new = old - (old - batch) * (1 - momentum)."""
    x = x.astype(np.float64)
    rows = x.reshape(-1, x.shape[-1])
    mean, var = rows.mean(axis=0), rows.var(axis=0)
    if x.ndim in (4, 5):
        n = rows.shape[0]
        f = 1.0 - momentum
        return ((1 - f) * mm + f * mean,
                (1 - f) * mv + f * var * n / (n - 1))
    decay = 1.0 - momentum
    return mm - (mm - mean) * decay, mv - (mv - var) * decay


BN_RANKS = [  # per-sample shape; the batch axis makes the Keras rank
    (5,),          # features after a Dense: rank 2, biased
    (7, 3),        # a sequence [T, C]: rank 3, biased
    (4, 3, 6),     # an image [H, W, C]: rank 4, Bessel-corrected
    (2, 3, 2, 4),  # a volume [D, H, W, C]: rank 5, Bessel-corrected
]


@pytest.mark.parametrize("shape", BN_RANKS,
                         ids=[f"rank{len(s) + 1}" for s in BN_RANKS])
def test_batchnorm_moving_stats_follow_keras_per_rank(parity, rng, shape):
    c, n, momentum = shape[-1], 6, 0.5
    x = (rng.standard_normal((n,) + shape) * 2 + 1).astype(np.float32)
    wts = _bn_weights(rng, c)
    m = libnn.Model(6)
    layer = m.batchnorm(m.input(shape), momentum=momentum)
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    layer.set_weights(list(wts))
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    m.backward(x, y, training=True, want_dx=False)
    mm, mv = _keras_moving_stats(x, wts[2].astype(np.float64),
                                 wts[3].astype(np.float64), momentum)
    parity.compare(moving_mean=(layer.weights[2], mm, FWD_TOL),
                   moving_variance=(layer.weights[3], mv, FWD_TOL))


def test_batchnorm_frozen_runs_inference(rng):
    """A frozen BN in a training pass normalizes with the moving statistics
    and leaves them alone (Keras: trainable=False means inference mode)."""
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    wts = _bn_weights(rng, 2)
    m = libnn.Model(5)
    layer = m.batchnorm(m.input((3, 3, 2)))
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    layer.set_weights(list(wts))
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    loss_eval, dx_eval = m.backward(x, y, training=False)
    layer.trainable = False
    assert not layer.trainable and m.num_trainable_params == 0
    loss, dx = m.backward(x, y, training=True)
    assert loss == loss_eval
    np.testing.assert_array_equal(dx, dx_eval)
    np.testing.assert_array_equal(layer.weights[2], wts[2])
    np.testing.assert_array_equal(layer.weights[3], wts[3])


# ------------------------------------------------------------------ Resizing
RESIZE_CASES = [  # (h, w, out h, out w, interpolation)
    (4, 4, 8, 8, "bilinear"), (5, 3, 11, 7, "bilinear"),
    (32, 32, 224, 224, "bilinear"),  # Q3d's resize
    (9, 8, 4, 3, "bilinear"), (16, 12, 5, 7, "bilinear"),
    (6, 7, 3, 14, "bilinear"), (7, 5, 7, 5, "bilinear"),
    (4, 4, 9, 6, "nearest"), (9, 8, 4, 3, "nearest"),
]


@pytest.mark.parametrize("h,w,oh,ow,interp", RESIZE_CASES,
                         ids=[f"{h}x{w}-to-{oh}x{ow}-{i}"
                              for h, w, oh, ow, i in RESIZE_CASES])
def test_resizing(parity, rng, h, w, oh, ow, interp):
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.resizing(i, oh, ow, interpolation=interp), x, rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    if interp == "bilinear":
        z = F.interpolate(x_t, size=(oh, ow), mode="bilinear",
                          align_corners=False)
    else:
        z = F.interpolate(x_t, size=(oh, ow), mode="nearest-exact")
    out = nnref.to_nhwc(z)
    loss = _bce(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL))


# ------------------------------------------------- padding, pooling, repeat
@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (3, 3, 3, 3), (0, 2, 1, 0),
                                 (2, 0, 0, 3)])
def test_zeropad2d(parity, rng, pad):
    top, bottom, left, right = pad
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.zeropad2d(i, ((top, bottom), (left, right))), x,
        rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    out = nnref.to_nhwc(F.pad(x_t, (left, right, top, bottom)))
    loss = _bce(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL))


@pytest.mark.parametrize("h,w,c", [(7, 7, 16), (3, 5, 2), (1, 1, 4)])
def test_global_avgpool2d(parity, rng, h, w, c):
    x = rng.standard_normal((3, h, w, c)).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.global_avgpool2d(i), x, rng=rng)
    x_t = t(x, grad=True)
    out = x_t.mean(dim=(1, 2))
    loss = _bce(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL))


@pytest.mark.parametrize("c,times", [(1, 3), (2, 2), (3, 1)])
def test_repeat_channels(parity, rng, c, times):
    x = rng.standard_normal((2, 4, 3, c)).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.repeat_channels(i, times), x,
                           rng=rng)
    x_t = t(x, grad=True)
    out = torch.repeat_interleave(x_t, times, dim=3)
    loss = _bce(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   loss=(r["loss"], loss, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL))


# --------------------------------------------------------- Add, Concatenate
def _branch_case(parity, rng, merge):
    """x feeds two 1x1 convolutions and the merge itself; conv a feeds the
    merge twice: x's and a's gradients accumulate over several users."""
    n, h, w, c = 3, 4, 5, 3
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wa = (rng.standard_normal((1, 1, c, c)) * 0.5).astype(np.float32)
    wb = (rng.standard_normal((1, 1, c, c)) * 0.5).astype(np.float32)
    ba = (rng.standard_normal(c) * 0.2).astype(np.float32)
    bb = (rng.standard_normal(c) * 0.2).astype(np.float32)
    m = libnn.Model(6)
    i = m.input((h, w, c))
    a = m.conv2d(i, c, 1)
    b = m.conv2d(i, c, 1, activation="relu")
    out_l = getattr(m, merge)([a, b, i, a])
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    a.set_weights([wa, ba])
    b.set_weights([wb, bb])
    out = m.predict(x)
    y = rng.uniform(0, 1, out.shape).astype(np.float32)
    loss, dx = m.backward(x, y)
    x_t = t(x, grad=True)
    wa_t, wb_t = t(wa, grad=True), t(wb, grad=True)
    ba_t, bb_t = t(ba, grad=True), t(bb, grad=True)
    za = torch.einsum("nhwc,cf->nhwf", x_t, wa_t[0, 0]) + ba_t
    zb = torch.relu(torch.einsum("nhwc,cf->nhwf", x_t, wb_t[0, 0]) + bb_t)
    parts = [za, zb, x_t, za]
    ref = sum(parts) if merge == "add" else torch.cat(parts, dim=3)
    ref_loss = _bce(ref, y)
    ref_loss.backward()
    assert out_l.output_shape == tuple(ref.shape[1:])
    parity.compare(forward=(out, ref, FWD_TOL),
                   loss=(loss, ref_loss, FWD_TOL),
                   dx=(dx, x_t.grad, BWD_TOL),
                   a_kernel_grad=(a.grads[0], wa_t.grad, BWD_TOL),
                   a_bias_grad=(a.grads[1], ba_t.grad, BWD_TOL),
                   b_kernel_grad=(b.grads[0], wb_t.grad, BWD_TOL),
                   b_bias_grad=(b.grads[1], bb_t.grad, BWD_TOL))


def test_add_branches(parity, rng):
    _branch_case(parity, rng, "add")


def test_concatenate_branches(parity, rng):
    _branch_case(parity, rng, "concatenate")


# -------------------------------------------------------- LocallyConnected2D
def _local_ref(x_t, w_t, b_t, kh, kw, sh, sw):
    """NHWC float64 reference: out[n, p, f] = patch[n, p] . w[p] + b[p]."""
    n, h, w, c = x_t.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    patches = []
    for oy in range(oh):
        for ox in range(ow):
            win = x_t[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :]
            patches.append(win.reshape(n, -1))
    p = torch.stack(patches, dim=1)  # [n, P, K] in (ky, kx, c) order
    out = torch.einsum("npk,pkf->npf", p, w_t)
    if b_t is not None:
        out = out + b_t.reshape(oh * ow, -1)
    return out.reshape(n, oh, ow, -1)


LC_CASES = [  # (h, w, c, filters, kernel, strides, bias, activation)
    (6, 6, 3, 16, 3, 1, True, None),
    (8, 7, 2, 4, (3, 2), (2, 1), True, "relu"),
    (7, 9, 3, 5, (2, 3), 2, False, None),
    (5, 5, 4, 3, 1, 1, True, "sigmoid"),
    (10, 10, 16, 32, 3, 1, True, None),  # Q2b's second layer at n = 12
]


@pytest.mark.parametrize("h,w,c,f,k,s,bias,act", LC_CASES,
                         ids=[f"{h}x{w}x{c}-f{f}-k{k}-s{s}-"
                              f"{'bias' if b else 'nobias'}-{a}"
                              for h, w, c, f, k, s, b, a in LC_CASES])
def test_locally_connected2d(parity, rng, h, w, c, f, k, s, bias, act):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    x = rng.standard_normal((3, h, w, c)).astype(np.float32)
    wk = (rng.standard_normal((oh * ow, kh * kw * c, f)) * 0.3)
    wk = wk.astype(np.float32)
    b = (rng.standard_normal((oh, ow, f)) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.locally_connected2d(i, f, k, strides=s,
                                           use_bias=bias, activation=act),
        x, [wk, b] if bias else [wk], rng=rng)
    assert r["layer"].num_params == wk.size + (b.size if bias else 0)
    x_t, w_t = t(x, grad=True), t(wk, grad=True)
    b_t = t(b, grad=True) if bias else None
    out = nnref.activation(_local_ref(x_t, w_t, b_t, kh, kw, sh, sw), act)
    loss = _bce(out, r["y"])
    loss.backward()
    q = dict(forward=(r["out"], out, FWD_TOL),
             loss=(r["loss"], loss, FWD_TOL),
             dx=(r["dx"], x_t.grad, BWD_TOL),
             kernel_grad=(r["grads"][0], w_t.grad, BWD_TOL))
    if bias:
        q["bias_grad"] = (r["grads"][1], b_t.grad, BWD_TOL)
    parity.compare(**q)


# ------------------------------------------------------- the Q2a module
def test_inception_module(parity, rng):
    """The Q2a module (n = 8) against the same graph in PyTorch."""
    n = 8
    m = libnn.Model(7)
    i = m.input((n, n, 3))
    conv = {}

    def c(x, f, k, key):
        conv[key] = m.conv2d(x, f, k, padding="same")
        return conv[key]
    a = c(i, 32, 1, "a")
    b = c(c(i, 32, 1, "b1"), 32, 3, "d")
    cc = c(c(c(i, 32, 1, "c1"), 32, 3, "e"), 32, 3, "g")
    out_l = c(m.concatenate([a, b, cc]), 256, 1, "out")
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    assert m.num_params == 52960
    assert out_l.receptive_field == (5, 5, 1, 1)
    ws = {}
    for key, layer in conv.items():
        kw, kb = layer.weights
        ws[key] = [(rng.standard_normal(kw.shape) * 0.2).astype(np.float32),
                   (rng.standard_normal(kb.shape) * 0.1).astype(np.float32)]
        layer.set_weights(ws[key])
    x = rng.standard_normal((2, n, n, 3)).astype(np.float32)
    out = m.predict(x)
    y = rng.uniform(0, 1, out.shape).astype(np.float32)
    loss, dx = m.backward(x, y)
    tw = {k: (t(nnref.kernel_to_torch(v[0]), grad=True), t(v[1], grad=True))
          for k, v in ws.items()}

    def tc(z, key):
        w_, b_ = tw[key]
        return nnref.conv2d(z, w_, b_, tuple(w_.shape[2:]), (1, 1), "same")
    x_t = t(nnref.nchw(x), grad=True)
    ta = tc(x_t, "a")
    tb = tc(tc(x_t, "b1"), "d")
    tcc = tc(tc(tc(x_t, "c1"), "e"), "g")
    ref = nnref.to_nhwc(tc(torch.cat([ta, tb, tcc], dim=1), "out"))
    ref_loss = _bce(ref, y)
    ref_loss.backward()
    q = dict(forward=(out, ref, FWD_TOL), loss=(loss, ref_loss, FWD_TOL),
             dx=(dx, nnref.to_nhwc(x_t.grad), BWD_TOL))
    for key in ("a", "d", "g", "out"):
        q[f"{key}_kernel_grad"] = (conv[key].grads[0],
                                   nnref.kernel_from_torch(tw[key][0].grad),
                                   BWD_TOL)
    parity.compare(**q)


# ---------------------------------------------------------------- freezing
def test_frozen_layers_keep_weights(rng):
    """fit leaves frozen layers bit-identical and trains the rest; the
    counts follow the flags."""
    m = libnn.Model(8)
    i = m.input((6, 6, 2))
    c1 = m.conv2d(i, 4, 3)
    bn = m.batchnorm(c1)
    f = m.flatten(m.relu(bn))
    d = m.dense(f, 3, activation="softmax")
    total = m.num_params
    c1.trainable = False
    bn.trainable = False
    assert m.num_trainable_params == d.num_params
    assert "Non-trainable params: 92" in m.summary()
    m.compile(libnn.Adam(), "categorical_crossentropy")
    x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    frozen = [w.copy() for w in c1.weights + bn.weights]
    dense_before = [w.copy() for w in d.weights]
    m.fit(x, y, epochs=2, batch_size=4)
    for a, b in zip(frozen, c1.weights + bn.weights):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(dense_before, d.weights))
    m.set_trainable(True)
    assert m.num_trainable_params == total - 8
    m.fit(x, y, epochs=1, batch_size=4)  # the optimizer follows the change
    assert (c1.weights[0] != frozen[0]).any()
