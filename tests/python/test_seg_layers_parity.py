"""Parity of the segmentation layers against PyTorch, forward and backward.

Method as in test_layers_parity.py: a one-layer libnn model (Input ->
layer) with the given weights, compiled with binary cross-entropy from
logits on the layer's raw output; the same loss on a float64 PyTorch
reference gives the reference gradients w.r.t. the input and every
parameter. Tolerances: forward <= 1e-4, gradients <= 1e-3 (max relative
error, conftest.py).

Keras semantics the references reproduce explicitly:
  * DepthwiseConv2D with SAME pads as Keras/TensorFlow does, ceil-style
    with the odd row/column at the bottom/right, so the reference pads
    with F.pad before F.conv2d(groups=C); the kernel [kh, kw, C, M] is
    torch's [C * M, 1, kh, kw] (output channel c * M + m).
  * Conv2DTranspose: Keras' output length (deconv_output_length) and
    TensorFlow's leading pad, as PyTorch's conv_transpose2d(padding=P,
    output_padding=A); when SAME pads an odd total (A would be -1) the
    reference runs with A = 0 and crops PyTorch's extra last row/column.
    The kernel [kh, kw, filters, in] is torch's [in, filters, kh, kw].
  * UpSampling2D: nearest repeats pixels (F.interpolate "nearest" at an
    integer factor); bilinear has half-pixel centers (tf.image.resize,
    F.interpolate(align_corners=False)).
  * SeparableConv2D is that depthwise convolution (no bias) followed by a
    1x1 F.conv2d with the bias.
  * Cropping2D is slicing; ReLU6 is F.relu6.
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


def _compare(parity, r, x_t, out, extra=()):
    """Forward, loss, dx and each (name, libnn grad, torch grad) of extra."""
    assert r["out"].shape == tuple(out.shape)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    q = dict(forward=(r["out"], out, FWD_TOL),
             loss=(r["loss"], loss, FWD_TOL),
             dx=(r["dx"], nnref.to_nhwc(x_t.grad), BWD_TOL))
    for name, got, ref in extra:
        q[name] = (got, ref(), BWD_TOL)
    parity.compare(**q)


# ------------------------------------------------------------------- ReLU6
@pytest.mark.parametrize("fused", [False, True], ids=["layer", "dense-act"])
def test_relu6(parity, rng, fused):
    """Inputs spread over [-9, 9] so both clamps are crossed."""
    x = (rng.uniform(-9, 9, (3, 4, 5, 6))).astype(np.float32)
    if not fused:
        r = nnref.single_layer(lambda m, i: m.relu6(i), x, rng=rng)
        x_t = t(nnref.nchw(x), grad=True)
        _compare(parity, r, x_t, nnref.to_nhwc(F.relu6(x_t)))
        return
    wk = (rng.standard_normal((6, 5)) * 0.8).astype(np.float32)
    b = (rng.standard_normal(5) * 0.5).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.dense(i, 5, activation="relu6"),
                           x, [wk, b], rng=rng)
    x_t = t(x, grad=True)
    w_t, b_t = t(wk, grad=True), t(b, grad=True)
    out = F.relu6(x_t @ w_t + b_t)
    assert r["out"].shape == tuple(out.shape)
    loss = nnref.bce_logits_mean(out, r["y"])
    loss.backward()
    parity.compare(forward=(r["out"], out, FWD_TOL),
                   dx=(r["dx"], x_t.grad, BWD_TOL),
                   kernel_grad=(r["grads"][0], w_t.grad, BWD_TOL),
                   bias_grad=(r["grads"][1], b_t.grad, BWD_TOL))


# --------------------------------------------------------- DepthwiseConv2D
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _depthwise_case(parity, rng, k, stride, padding, mult, bias, h, w, c=3,
                    n=2, act=None):
    kh, kw = _pair(k)
    s = _pair(stride)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wk = (rng.standard_normal((kh, kw, c, mult)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(c * mult) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.depthwise_conv2d(i, (kh, kw), strides=stride,
                                        padding=padding,
                                        depth_multiplier=mult,
                                        activation=act, use_bias=bias),
        x, [wk, b] if bias else [wk], rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    # [kh, kw, C, M] -> torch [C * M, 1, kh, kw]: output channel c * M + m
    w_t = t(wk.transpose(2, 3, 0, 1).reshape(c * mult, 1, kh, kw), grad=True)
    b_t = t(b, grad=True) if bias else None
    xp = nnref.pad_same(x_t, (kh, kw), s) if padding == "same" else x_t
    z = F.conv2d(xp, w_t, b_t, stride=s, groups=c)
    z = F.relu6(z) if act == "relu6" else nnref.activation(z, act)
    extra = [("kernel_grad", r["grads"][0],
              lambda: w_t.grad.reshape(c, mult, kh, kw).permute(2, 3, 0, 1))]
    if bias:
        extra.append(("bias_grad", r["grads"][1], lambda: b_t.grad))
    _compare(parity, r, x_t, nnref.to_nhwc(z), extra)


DW_GRID = [(k, s, p, mult, bias, hw)
           for k in (3, (2, 4))
           for s in (1, 2, 3)
           for p in ("valid", "same")
           for mult in (1, 2)
           for bias, hw in ((True, (7, 6)), (False, (8, 9)))]


@pytest.mark.parametrize("k,stride,padding,mult,bias,hw", DW_GRID,
                         ids=[f"k{k}-s{s}-{p}-m{m}-{'bias' if b else 'nobias'}"
                              f"-{hw[0]}x{hw[1]}"
                              for k, s, p, m, b, hw in DW_GRID])
def test_depthwise_conv2d(parity, rng, k, stride, padding, mult, bias, hw):
    _depthwise_case(parity, rng, k, stride, padding, mult, bias, *hw)


DW_LARGE = [  # (k, stride, padding, mult, h, w, c, n, activation)
    (3, 1, "same", 1, 16, 16, 32, 4, "relu6"),
    (3, 2, "same", 1, 17, 16, 40, 3, None),
    (5, (1, 2), "valid", 2, 12, 13, 19, 2, "relu"),
]


@pytest.mark.parametrize("k,stride,padding,mult,h,w,c,n,act", DW_LARGE,
                         ids=[f"k{d[0]}-s{d[1]}-{d[2]}-m{d[3]}-{d[4]}x{d[5]}"
                              f"x{d[6]}-n{d[7]}-{d[8]}" for d in DW_LARGE])
def test_depthwise_conv2d_larger(parity, rng, k, stride, padding, mult, h, w,
                                 c, n, act):
    """Channel counts that fill and overrun the kernel's vectors, and the
    fused activations."""
    _depthwise_case(parity, rng, k, stride, padding, mult, True, h, w, c=c,
                    n=n, act=act)


# --------------------------------------------------------- SeparableConv2D
SEP_CASES = [  # (k, stride, padding, mult, bias, h, w, activation)
    (3, 1, "same", 1, True, 7, 6, None),
    (3, 2, "same", 2, False, 8, 9, "relu"),
    ((2, 4), (1, 3), "valid", 1, True, 7, 8, "relu6"),
    (3, 3, "valid", 3, True, 9, 7, None),
]


@pytest.mark.parametrize("k,stride,padding,mult,bias,h,w,act", SEP_CASES,
                         ids=[f"k{d[0]}-s{d[1]}-{d[2]}-m{d[3]}-{d[7]}"
                              for d in SEP_CASES])
def test_separable_conv2d(parity, rng, k, stride, padding, mult, bias, h, w,
                          act):
    """F.conv2d(groups=C) with Keras' SAME, then a 1x1 F.conv2d."""
    kh, kw = _pair(k)
    s = _pair(stride)
    c, f, n = 3, 5, 2
    x = (rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    wd = (rng.standard_normal((kh, kw, c, mult)) * 0.4).astype(np.float32)
    wp = (rng.standard_normal((1, 1, c * mult, f)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(f) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.separable_conv2d(i, f, (kh, kw), strides=stride,
                                        padding=padding,
                                        depth_multiplier=mult,
                                        activation=act, use_bias=bias),
        x, [wd, wp, b] if bias else [wd, wp], rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    wd_t = t(wd.transpose(2, 3, 0, 1).reshape(c * mult, 1, kh, kw),
             grad=True)
    wp_t = t(nnref.kernel_to_torch(wp), grad=True)
    b_t = t(b, grad=True) if bias else None
    xp = nnref.pad_same(x_t, (kh, kw), s) if padding == "same" else x_t
    z = F.conv2d(F.conv2d(xp, wd_t, None, stride=s, groups=c), wp_t, b_t)
    z = F.relu6(z) if act == "relu6" else nnref.activation(z, act)
    extra = [("depthwise_grad", r["grads"][0],
              lambda: wd_t.grad.reshape(c, mult, kh, kw).permute(2, 3, 0, 1)),
             ("pointwise_grad", r["grads"][1],
              lambda: nnref.kernel_from_torch(wp_t.grad))]
    if bias:
        extra.append(("bias_grad", r["grads"][2], lambda: b_t.grad))
    _compare(parity, r, x_t, nnref.to_nhwc(z), extra)


# --------------------------------------------------------- Conv2DTranspose
def _deconv_length(n, k, s, padding, op):
    """keras.utils.conv_utils.deconv_output_length, dilation 1."""
    if op is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad0 = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad0 + op


def _tf_accepts(n, k, s, padding, length):
    """TensorFlow's conv2d_transpose wants the convolution of the output
    to give the input back."""
    back = -(-length // s) if padding == "same" else (length - k) // s + 1
    return length >= 1 and back == n


def _tf_pad(n, k, s, padding, length):
    """The leading pad TensorFlow derives from the output length."""
    if padding == "valid":
        return 0
    return max((n - 1) * s + k - length, 0) // 2


def _transpose_ref(x_t, w_t, b_t, k, s, padding, op, hw):
    """Keras' Conv2DTranspose through F.conv_transpose2d: padding P is
    TensorFlow's leading pad, output_padding A the rest of the length; an
    A of -1 (SAME with an odd total pad, which TensorFlow puts at the end)
    runs as 0 and crops PyTorch's extra last row/column."""
    lengths, pads, extra = [], [], []
    for n, kk, ss, o in zip(hw, k, s, op):
        length = _deconv_length(n, kk, ss, padding, o)
        p = _tf_pad(n, kk, ss, padding, length)
        a = length - ((n - 1) * ss + kk - 2 * p)
        assert -1 <= a < ss
        lengths.append(length)
        pads.append(p)
        extra.append(max(a, 0))
    y = F.conv_transpose2d(x_t, w_t, b_t, stride=s, padding=tuple(pads),
                           output_padding=tuple(extra))
    return y[:, :, :lengths[0], :lengths[1]]


def _transpose_case(parity, rng, k, stride, padding, op, bias, h, w, c=3,
                    f=4, n=2, act=None):
    kh, kw = _pair(k)
    s = _pair(stride)
    ops = (None, None) if op is None else _pair(op)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wk = (rng.standard_normal((kh, kw, f, c)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(f) * 0.3).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.conv2d_transpose(i, f, (kh, kw), strides=stride,
                                        padding=padding, output_padding=op,
                                        activation=act, use_bias=bias),
        x, [wk, b] if bias else [wk], rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    w_t = t(wk.transpose(3, 2, 0, 1), grad=True)  # torch [in, out, kh, kw]
    b_t = t(b, grad=True) if bias else None
    z = _transpose_ref(x_t, w_t, b_t, (kh, kw), s, padding, ops, (h, w))
    z = F.relu6(z) if act == "relu6" else nnref.activation(z, act)
    extra = [("kernel_grad", r["grads"][0],
              lambda: w_t.grad.permute(2, 3, 1, 0))]
    if bias:
        extra.append(("bias_grad", r["grads"][1], lambda: b_t.grad))
    _compare(parity, r, x_t, nnref.to_nhwc(z), extra)


def _transpose_grid():
    cases = []
    for k in (3, (4, 2)):
        for s in (1, 2, 3):
            for p in ("valid", "same"):
                for op in [None] + list(range(s)):
                    for hw in ((3, 4), (4, 5)):
                        ok = all(_tf_accepts(n, kk, s, p, _deconv_length(
                            n, kk, s, p, op)) for n, kk in zip(hw, _pair(k)))
                        if ok:
                            cases.append((k, s, p, op, hw))
    return cases


CT_GRID = _transpose_grid()


@pytest.mark.parametrize("k,stride,padding,op,hw", CT_GRID,
                         ids=[f"k{k}-s{s}-{p}-op{o}-{hw[0]}x{hw[1]}"
                              for k, s, p, o, hw in CT_GRID])
def test_conv2d_transpose(parity, rng, k, stride, padding, op, hw):
    bias = (hw[0] + stride) % 2 == 0
    _transpose_case(parity, rng, k, stride, padding, op, bias, *hw)


CT_LARGE = [  # (k, stride, padding, op, h, w, c, f, n, activation)
    (3, 2, "same", None, 8, 8, 32, 16, 4, "relu"),  # the pix2pix decoder's
    (4, 2, "same", None, 5, 6, 12, 24, 3, None),
    (3, (3, 2), "valid", (1, 0), 6, 7, 9, 5, 2, "relu6"),
]


@pytest.mark.parametrize("k,stride,padding,op,h,w,c,f,n,act", CT_LARGE,
                         ids=[f"k{d[0]}-s{d[1]}-{d[2]}-op{d[3]}-{d[4]}x{d[5]}"
                              f"x{d[6]}-f{d[7]}-{d[9]}" for d in CT_LARGE])
def test_conv2d_transpose_larger(parity, rng, k, stride, padding, op, h, w,
                                 c, f, n, act):
    _transpose_case(parity, rng, k, stride, padding, op, True, h, w, c=c,
                    f=f, n=n, act=act)


def test_conv2d_transpose_refuses_what_tensorflow_refuses():
    """SAME, an even kernel and output_padding 0 give a length whose
    convolution does not map back to the input: an error, as in
    TensorFlow, not a silently different layer."""
    m = libnn.Model(1)
    x = m.input((4, 4, 2))
    assert not _tf_accepts(4, 4, 2, "same", _deconv_length(4, 4, 2, "same", 0))
    with pytest.raises(libnn.ShapeError):
        m.conv2d_transpose(x, 3, 4, strides=2, padding="same",
                           output_padding=0)
    with pytest.raises(libnn.InvalidArgument):
        m.conv2d_transpose(x, 3, 3, strides=2, output_padding=2)
    layer = m.conv2d_transpose(x, 3, 4, strides=2, padding="same",
                               output_padding=1)
    assert layer.output_shape == (7, 7, 3)


# ------------------------------------------------------------ UpSampling2D
UPSAMPLE_CASES = [  # (size, interpolation, h, w)
    (2, "nearest", 4, 5), ((3, 2), "nearest", 3, 3),
    (2, "bilinear", 4, 5), (2, "bilinear", 5, 4),
    ((3, 2), "bilinear", 3, 4), ((1, 3), "bilinear", 2, 5),
]


@pytest.mark.parametrize("size,interp,h,w", UPSAMPLE_CASES,
                         ids=[f"{s}-{i}-{h}x{w}"
                              for s, i, h, w in UPSAMPLE_CASES])
def test_upsampling2d(parity, rng, size, interp, h, w):
    sh, sw = (size, size) if isinstance(size, int) else size
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    r = nnref.single_layer(
        lambda m, i: m.upsampling2d(i, size, interpolation=interp), x,
        rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    if interp == "nearest":
        out = F.interpolate(x_t, scale_factor=(sh, sw), mode="nearest")
    else:
        out = F.interpolate(x_t, size=(h * sh, w * sw), mode="bilinear",
                            align_corners=False)
    _compare(parity, r, x_t, nnref.to_nhwc(out))


# -------------------------------------------------------------- Cropping2D
CROP_CASES = [((1, 2), (0, 3)), ((0, 0), (2, 1)), ((3, 0), (0, 0))]


@pytest.mark.parametrize("crop", CROP_CASES, ids=[str(c) for c in CROP_CASES])
def test_cropping2d(parity, rng, crop):
    (top, bottom), (left, right) = crop
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    r = nnref.single_layer(lambda m, i: m.cropping2d(i, crop), x, rng=rng)
    x_t = t(nnref.nchw(x), grad=True)
    out = x_t[:, :, top:7 - bottom, left:6 - right]
    _compare(parity, r, x_t, nnref.to_nhwc(out))


# ------------------------------------------------------------ initializers
def test_random_normal_initializer():
    """RandomNormal(stddev) reaches the layers whose options carry a stddev;
    "random_normal" is Keras' default N(0, 0.05) everywhere."""
    m = libnn.Model(3)
    x = m.input((4, 4, 8))
    ct = m.conv2d_transpose(x, 64, 5, kernel_initializer=libnn.RandomNormal(
        stddev=0.02))
    w = ct.weights[0]
    assert w.shape == (5, 5, 64, 8)
    assert abs(w.std() / 0.02 - 1) < 0.05 and abs(w.mean()) < 0.002
    dw = m.depthwise_conv2d(x, 3, depth_multiplier=100,
                            depthwise_initializer="random_normal")
    assert abs(dw.weights[0].std() / 0.05 - 1) < 0.05
    with pytest.raises(ValueError):
        libnn.RandomNormal(stddev=-1.0)
    with pytest.raises(ValueError):
        libnn.RandomNormal(mean=0.5)
