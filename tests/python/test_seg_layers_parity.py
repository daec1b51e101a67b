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
