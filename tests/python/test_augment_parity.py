"""Augmentation layers against PyTorch, in training mode.

Method. A one-layer libnn model (Input -> augmentation) is compiled with
binary cross-entropy from logits on the layer's output, and
model.backward(x, y, training=True) returns the loss and the input
gradient of one training pass. The loss measures the transformed images
(the forward pass) and the input gradient the backward pass (the adjoint of
the sampling); both are compared with the same loss computed by PyTorch in
float64 on a reference transform:

  * RandomFlip: torch.flip. The draws are per image and random, so each
    image is matched against the flips its mode allows; exactly one must
    fit, and over a batch every allowed flip must occur.
  * RandomRotation / RandomTranslation / RandomZoom with a fixed transform
    (lower == upper): Keras' matrix (output pixel -> input coordinate) is
    turned into a torch.nn.functional.grid_sample grid. Conventions that
    line up exactly:
      - fill "nearest"  = padding_mode "border",
      - fill "reflect"  = padding_mode "reflection" with
        align_corners=False (both reflect about the outer pixel edges,
        dcba|abcd|dcba),
      - fill "constant" = padding_mode "zeros" applied to x - fill_value,
        plus fill_value, and fill_value wherever the coordinate leaves
        [0, size - 1] (TensorFlow does not blend at the border),
      - interpolation "bilinear"/"nearest" = mode "bilinear"/"nearest"
        (away from rounding ties, which the chosen transforms avoid).
    TensorFlow's "wrap" has no grid_sample counterpart; it is checked
    against an independent reference in tests/test_layers_augment.c.
  * In inference every layer is the identity, bit for bit.
Tolerances as the layer suite: forward (loss) 1e-4, gradients 1e-3.
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


def _train_pass(build, x, y, seed=1):
    """(loss, dx) of one training-mode pass through Input -> build(...)."""
    m = libnn.Model(seed)
    build(m, m.input(x.shape[1:]))
    m.compile(libnn.SGD(), "binary_crossentropy", from_logits=True)
    return m.backward(x, y, training=True)


# --------------------------------------------------------------- identity
AUGS = {
    "flip": lambda m, i: m.random_flip(i),
    "rotation": lambda m, i: m.random_rotation(i, 0.3, fill_mode="constant"),
    "translation": lambda m, i: m.random_translation(i, 0.4, 0.4),
    "zoom": lambda m, i: m.random_zoom(i, (-0.5, 0.5)),
    "contrast": lambda m, i: m.random_contrast(i, 0.7),
}


@pytest.mark.parametrize("kind", sorted(AUGS))
def test_inference_is_identity(rng, kind):
    x = rng.standard_normal((5, 9, 7, 3)).astype(np.float32)
    m = libnn.Model(3)
    AUGS[kind](m, m.input(x.shape[1:]))
    out = m.predict(x, batch_size=2)
    assert out.tobytes() == x.tobytes()


# ------------------------------------------------------------------ flips
FLIPS = {"horizontal": [(), (2,)], "vertical": [(), (1,)],
         "horizontal_and_vertical": [(), (2,), (1,), (1, 2)]}


@pytest.mark.parametrize("mode", sorted(FLIPS))
def test_random_flip(parity, rng, mode):
    n = 24
    x = rng.standard_normal((n, 5, 6, 2)).astype(np.float32)
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    loss, dx = _train_pass(lambda m, i: m.random_flip(i, mode), x, y)
    total = x.size
    ref_loss = 0.0
    ref_dx = np.zeros_like(dx, dtype=np.float64)
    used = set()
    for b in range(n):
        fits = []
        for dims in FLIPS[mode]:
            xb = t(x[b:b + 1], grad=True)
            out = torch.flip(xb, dims) if dims else xb
            lb = F.binary_cross_entropy_with_logits(
                out, t(y[b:b + 1]), reduction="sum") / total
            lb.backward()
            g = xb.grad.numpy()[0]
            err = np.max(np.abs(g - dx[b])) / np.max(np.abs(g))
            if err < 1e-5:
                fits.append((dims, float(lb), g))
        assert len(fits) == 1, f"image {b}: {len(fits)} flips fit"
        dims, lb, g = fits[0]
        used.add(dims)
        ref_loss += lb
        ref_dx[b] = g
    assert used == set(FLIPS[mode]), f"flips seen: {sorted(used)}"
    parity.compare(loss=(loss, ref_loss, FWD_TOL),
                   dx=(dx, ref_dx, BWD_TOL))


# ---------------------------------------------------- affine transforms
def rotation_matrix(turns, h, w):
    a = turns * 2 * np.pi
    c, s = np.cos(a), np.sin(a)
    return np.array([c, -s, ((w - 1) - (c * (w - 1) - s * (h - 1))) / 2,
                     s, c, ((h - 1) - (s * (w - 1) + c * (h - 1))) / 2])


def translation_matrix(fy, fx, h, w):
    return np.array([1, 0, -fx * w, 0, 1, -fy * h], dtype=np.float64)


def zoom_matrix(fy, fx, h, w):
    zx, zy = 1 + fx, 1 + fy
    return np.array([zx, 0, (w - 1) / 2 * (1 - zx),
                     0, zy, (h - 1) / 2 * (1 - zy)])


def keras_transform(x_t, mat, fill, interp, fill_value):
    """Keras' transform (ImageProjectiveTransformV3) of NHWC x_t by the
    output -> input matrix `mat`, through grid_sample."""
    n, h, w, c = x_t.shape
    oy, ox = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ix = mat[0] * ox + mat[1] * oy + mat[2]
    iy = mat[3] * ox + mat[4] * oy + mat[5]
    if fill == "reflect":  # align_corners=False: edges at -0.5, size - 0.5
        gx, gy = (2 * ix + 1) / w - 1, (2 * iy + 1) / h - 1
        align = False
    else:  # align_corners=True: pixel centers 0 .. size-1 at -1 .. 1
        gx = 2 * ix / max(w - 1, 1) - 1
        gy = 2 * iy / max(h - 1, 1) - 1
        align = True
    grid = t(np.stack([gx, gy], -1)[None].repeat(n, 0))
    padding = {"reflect": "reflection", "nearest": "border",
               "constant": "zeros"}[fill]
    src = x_t.permute(0, 3, 1, 2)
    if fill == "constant":
        src = src - fill_value
    out = F.grid_sample(src, grid, mode=interp, padding_mode=padding,
                        align_corners=align)
    if fill == "constant":
        inside = t(((ix >= 0) & (ix <= w - 1) & (iy >= 0) & (iy <= h - 1))
                   .astype(np.float64))
        out = (out + fill_value) * inside + fill_value * (1 - inside)
    return nnref.to_nhwc(out)


def _affine_case(parity, rng, build, mat, shape, fill, interp, fill_value):
    x = rng.uniform(-1, 1, (3,) + shape).astype(np.float32)
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    loss, dx = _train_pass(build, x, y)
    x_t = t(x, grad=True)
    out = keras_transform(x_t, mat, fill, interp, fill_value)
    ref = nnref.bce_logits_mean(out, y)
    ref.backward()
    parity.compare(loss=(loss, ref, FWD_TOL), dx=(dx, x_t.grad, BWD_TOL))


FILLS = ["reflect", "nearest", "constant"]
INTERPS = ["bilinear", "nearest"]
TURNS = [30 / 360, -0.2, 0.37, 0.25, -0.45]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("turns", TURNS)
def test_random_rotation(parity, rng, turns, fill, interp):
    if turns == 0.25 and fill == "constant":
        pytest.skip("a quarter turn puts border coordinates on the edge, "
                    "inside or outside by rounding alone")
    shape = (9, 9, 2) if turns == 0.25 else (7, 10, 3)
    f32 = float(np.float32(turns))  # the layer draws a float32 factor
    build = (lambda m, i: m.random_rotation(
        i, (turns, turns), fill_mode=fill, interpolation=interp,
        fill_value=0.5))
    _affine_case(parity, rng, build, rotation_matrix(f32, *shape[:2]), shape,
                 fill, interp, 0.5)


SHIFTS = [(0.3, -0.45), (-0.62, 0.17), (0.9, 0.93)]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("fy,fx", SHIFTS)
def test_random_translation(parity, rng, fy, fx, fill, interp):
    shape = (6, 7, 2)
    fy32, fx32 = float(np.float32(fy)), float(np.float32(fx))
    build = (lambda m, i: m.random_translation(
        i, (fy, fy), (fx, fx), fill_mode=fill, interpolation=interp,
        fill_value=-1.5))
    _affine_case(parity, rng, build,
                 translation_matrix(fy32, fx32, *shape[:2]), shape, fill,
                 interp, -1.5)


ZOOMS = [(-0.3, 0.45), (0.8, -0.6), (-0.95, -0.95), (1.7, 0.33)]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("fy,fx", ZOOMS)
def test_random_zoom(parity, rng, fy, fx, fill, interp):
    shape = (6, 7, 2)
    fy32, fx32 = float(np.float32(fy)), float(np.float32(fx))
    build = (lambda m, i: m.random_zoom(
        i, (fy, fy), (fx, fx), fill_mode=fill, interpolation=interp,
        fill_value=0.25))
    _affine_case(parity, rng, build, zoom_matrix(fy32, fx32, *shape[:2]),
                 shape, fill, interp, 0.25)


def test_quarter_turn_is_rot90(rng):
    """A quarter turn of a square image with reflect fill is np.rot90 (a
    counter-clockwise turn of the picture); seen through the gradient,
    which a permutation carries over exactly."""
    x = rng.uniform(-1, 1, (2, 6, 6, 1)).astype(np.float32)
    y = rng.uniform(0, 1, x.shape).astype(np.float32)
    _, dx = _train_pass(lambda m, i: m.random_rotation(i, (0.25, 0.25)), x, y)
    out = np.rot90(x, k=1, axes=(1, 2))
    g = (1 / (1 + np.exp(-out.astype(np.float64))) - y) / x.size
    want = np.rot90(g, k=-1, axes=(1, 2))
    np.testing.assert_allclose(dx, want, rtol=1e-5, atol=1e-9)


def test_invalid_arguments():
    m = libnn.Model(1)
    i = m.input((8, 8, 3))
    with pytest.raises(ValueError):
        m.random_flip(i, "diagonal")
    with pytest.raises(ValueError):
        m.random_rotation(i, 0.2, fill_mode="mirror")
    with pytest.raises(libnn.Error):
        m.random_rotation(i, 1.5)
    with pytest.raises(libnn.Error):
        m.random_contrast(i, (-0.1, 0.2))
    v = libnn.Model(1)
    with pytest.raises(libnn.Error):
        v.random_zoom(v.input((12,)), 0.2)
