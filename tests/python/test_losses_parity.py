"""Loss parity: categorical, sparse categorical and binary cross-entropy
against torch.nn.functional (float64), loss value and gradient.

Method. A one-layer libnn model whose output is either an identity (a
Dropout layer, which is the identity in inference: backward(training=False)),
a Softmax layer or a Sigmoid layer. model.backward(x, y) returns the mean
loss over the batch and dx = d loss / d x, compared with the same function
in PyTorch differentiated by autograd.

Keras semantics:
  * probabilities (from_logits=False on a plain output): categorical rows
    are divided by their sum and clipped to [1e-7, 1 - 1e-7], binary values
    clipped; both bounds are float32 numbers as in Keras (1 - 1e-7 rounds to
    0.99999988). The clip has zero gradient outside the interval (the
    references use torch.clamp, which does the same; no value sits exactly
    on a bound).
  * an output layer ending in softmax (CCE) or sigmoid (BCE) makes Keras
    compute the loss from that layer's logits (log-softmax / log-sigmoid,
    no clipping): exact even for logits of +-40, which the tests use.
  * binary cross-entropy is the mean over a sample's values, then over the
    batch.
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
from conftest import BWD_TOL, FWD_TOL  # noqa: E402
from nnref import P_HI, P_LO, t  # noqa: E402

F = torch.nn.functional

N, C = 6, 5


def run(x, y, loss, last=None, **compile_kw):
    """libnn loss and dx for output = last(x) (identity when None); x may
    be [N, C] or [N, H, W, C]."""
    m = libnn.Model(3)
    i = m.input(x.shape[1:])
    if last is None:
        m.dropout(i, 0.0)
    else:
        getattr(m, last)(i)
    m.compile(libnn.SGD(), loss, **compile_kw)
    value, dx = m.backward(x, y, training=False)
    return m, value, dx


def check(parity, got_loss, got_dx, ref_loss, x_t):
    ref_loss.backward()
    parity.compare(loss=(got_loss, ref_loss, FWD_TOL),
                   dx=(got_dx, x_t.grad, BWD_TOL))


def one_hot(rng, n=N, c=C):
    return np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]


def soft_labels(rng, n=N, c=C):
    y = rng.uniform(0.1, 1, (n, c))
    return (y / y.sum(1, keepdims=True)).astype(np.float32)


def keras_cce_probs(p, y):
    q = torch.clamp(p / p.sum(-1, keepdim=True), P_LO, P_HI)
    return -(y * torch.log(q)).sum(-1).mean()


def keras_bce_probs(p, y):
    q = torch.clamp(p, P_LO, P_HI)
    return -(y * torch.log(q) + (1 - y) * torch.log(1 - q)).mean()


# ------------------------------------------------------------ categorical
@pytest.mark.parametrize("labels", ["onehot", "soft"])
def test_cce_probabilities_unnormalised(parity, rng, labels):
    """Rows that do not sum to 1 are normalised (and the gradient goes
    through the normalisation)."""
    x = rng.uniform(0.05, 1.0, (N, C)).astype(np.float32)
    y = one_hot(rng) if labels == "onehot" else soft_labels(rng)
    _, loss, dx = run(x, y, "categorical_crossentropy")
    x_t = t(x, grad=True)
    check(parity, loss, dx, keras_cce_probs(x_t, t(y)), x_t)


def test_cce_probabilities_clipped(parity, rng):
    """Probabilities below 1e-7 (after normalisation) are clipped: the loss
    sees log(1e-7) and their gradient is zero."""
    x = rng.uniform(0.05, 1.0, (N, C)).astype(np.float32)
    x[:, 0] = 1e-12  # far below the clip, after normalisation too
    x[0, 1] = 1e-10
    y = one_hot(rng)
    y[:3] = 0
    y[:3, 0] = 1  # these rows' true class is clipped
    _, loss, dx = run(x, y, "categorical_crossentropy")
    x_t = t(x, grad=True)
    check(parity, loss, dx, keras_cce_probs(x_t, t(y)), x_t)


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_cce_softmax_output_uses_logits(parity, rng, scale):
    """Softmax output + CCE: the loss is -sum(y * log_softmax(z)), exact
    even where softmax underflows (scale 40)."""
    x = (rng.standard_normal((N, C)) * scale).astype(np.float32)
    y = soft_labels(rng)
    _, loss, dx = run(x, y, "categorical_crossentropy", last="softmax")
    x_t = t(x, grad=True)
    ref = -(t(y) * F.log_softmax(x_t, -1)).sum(-1).mean()
    check(parity, loss, dx, ref, x_t)


def test_cce_from_logits(parity, rng):
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    y = one_hot(rng)
    _, loss, dx = run(x, y, "categorical_crossentropy", from_logits=True)
    x_t = t(x, grad=True)
    ref = F.cross_entropy(x_t, t(y).argmax(-1))
    check(parity, loss, dx, ref, x_t)


# ----------------------------------------------------- sparse categorical
def test_sparse_cce_probabilities(parity, rng):
    x = rng.uniform(0.05, 1.0, (N, C)).astype(np.float32)
    ids = rng.integers(0, C, N)
    _, loss, dx = run(x, ids.astype(np.float32),
                      "sparse_categorical_crossentropy")
    x_t = t(x, grad=True)
    ref = keras_cce_probs(x_t, F.one_hot(torch.tensor(ids), C).double())
    check(parity, loss, dx, ref, x_t)


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_sparse_cce_softmax_output(parity, rng, scale):
    x = (rng.standard_normal((N, C)) * scale).astype(np.float32)
    ids = rng.integers(0, C, N)
    _, loss, dx = run(x, ids.astype(np.float32),
                      "sparse_categorical_crossentropy", last="softmax")
    x_t = t(x, grad=True)
    check(parity, loss, dx, F.cross_entropy(x_t, torch.tensor(ids)), x_t)


def test_sparse_cce_from_logits(parity, rng):
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    ids = rng.integers(0, C, N)
    _, loss, dx = run(x, ids.astype(np.float32),
                      "sparse_categorical_crossentropy", from_logits=True)
    x_t = t(x, grad=True)
    check(parity, loss, dx, F.cross_entropy(x_t, torch.tensor(ids)), x_t)


# ----------------------------------------------------------------- binary
def test_bce_probabilities(parity, rng):
    x = rng.uniform(0.02, 0.98, (N, C)).astype(np.float32)
    y = rng.uniform(0, 1, (N, C)).astype(np.float32)
    _, loss, dx = run(x, y, "binary_crossentropy")
    x_t = t(x, grad=True)
    check(parity, loss, dx, keras_bce_probs(x_t, t(y)), x_t)


def test_bce_probabilities_clipped(parity, rng):
    """0 and 1 are clipped to float32 1e-7 and 1 - 1e-7 (zero gradient)."""
    x = rng.uniform(0.02, 0.98, (N, C)).astype(np.float32)
    x[0, :2] = 0.0
    x[1, :2] = 1.0
    x[2, 0] = 1e-9
    y = rng.integers(0, 2, (N, C)).astype(np.float32)
    y[0, 0], y[1, 0] = 1, 0  # the clipped ends count in the loss
    _, loss, dx = run(x, y, "binary_crossentropy")
    x_t = t(x, grad=True)
    check(parity, loss, dx, keras_bce_probs(x_t, t(y)), x_t)


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_bce_sigmoid_output_uses_logits(parity, rng, scale):
    x = (rng.standard_normal((N, C)) * scale).astype(np.float32)
    y = rng.uniform(0, 1, (N, C)).astype(np.float32)
    _, loss, dx = run(x, y, "binary_crossentropy", last="sigmoid")
    x_t = t(x, grad=True)
    ref = F.binary_cross_entropy_with_logits(x_t, t(y))
    check(parity, loss, dx, ref, x_t)


def test_bce_from_logits_multidim(parity, rng):
    """Per-sample values of any shape: mean over the values, then batch."""
    x = (rng.standard_normal((N, 3, 4)) * 3).astype(np.float32)
    y = rng.uniform(0, 1, (N, 3, 4)).astype(np.float32)
    _, loss, dx = run(x, y, "binary_crossentropy", from_logits=True)
    x_t = t(x, grad=True)
    ref = F.binary_cross_entropy_with_logits(x_t, t(y))
    check(parity, loss, dx, ref, x_t)


# --------------------------------------------------------------- accuracy
def test_evaluate_matches_numpy(rng):
    """evaluate(): the mean loss and Keras' accuracy (argmax for CCE,
    p > 0.5 against the label for BCE)."""
    x = rng.standard_normal((40, C)).astype(np.float32)
    ids = rng.integers(0, C, 40)
    m, _, _ = run(x, np.eye(C, dtype=np.float32)[ids],
                  "categorical_crossentropy", last="softmax")
    loss, acc = m.evaluate(x, np.eye(C, dtype=np.float32)[ids], batch_size=7)
    z = x - x.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -logp[np.arange(40), ids].mean(),
                               rtol=1e-5)
    assert acc == pytest.approx((x.argmax(1) == ids).mean())

    yb = rng.integers(0, 2, (40, C)).astype(np.float32)
    m, _, _ = run(x, yb, "binary_crossentropy", last="sigmoid")
    _, acc = m.evaluate(x, yb, batch_size=9)
    assert acc == pytest.approx(((x > 0) == (yb > 0.5)).mean())


# =========================================================== segmentation
"""Segmentation losses on outputs [N, H, W, C] (docs/losses.md), against
float64 PyTorch transcriptions of the documented formulas:

  * cross-entropies per position: Keras reduces the class axis at each
    position, then averages over positions and batch;
  * IoU = 1 - (I + s) / max(Sp + Sy - I + s, eps) and
    Dice = 1 - (2I + s) / max(Sp + Sy + s, eps), with I, Sp = sum p,
    Sy = sum y per class over the batch (reduction "batch") or per image
    and class ("image"), averaged over the groups; p is the output, or its
    sigmoid (one channel, or a sum with BCE) / softmax from logits;
  * a weighted sum is the sum of weight * term.

The metrics are compared with a numpy transcription of tf.keras' MeanIoU
(confusion matrix [truth, predicted]; classes whose denominator is 0 are
left out of the mean; divide_no_nan)."""

H, W = 4, 5


def seg_probs(rng, c, n=N):
    p = rng.uniform(0.05, 0.95, (n, H, W, c))
    if c > 1:
        p /= p.sum(-1, keepdims=True)
    return p.astype(np.float32)


def seg_ids(rng, c, n=N, used=None):
    """Class ids [n, H, W]; classes from `used` on are absent."""
    return rng.integers(0, used or c, (n, H, W))


def ref_overlap(kind, p, y, smooth=1.0, eps=1e-7, reduction="batch"):
    dims = (0, 1, 2) if reduction == "batch" else (1, 2)
    inter, sp, sy = (p * y).sum(dims), p.sum(dims), y.sum(dims)
    if kind == "iou":
        num, den = inter + smooth, sp + sy - inter + smooth
    else:
        num, den = 2 * inter + smooth, sp + sy + smooth
    return (1 - num / torch.clamp(den, min=eps)).mean()


def ref_ce(kind, x_t, y_t, logits):
    """Per-position cross-entropy; y_t dense (one-hot or mask)."""
    if kind == "binary_crossentropy":
        if logits:
            return F.binary_cross_entropy_with_logits(x_t, y_t)
        return keras_bce_probs(x_t, y_t)
    if logits:
        return -(y_t * F.log_softmax(x_t, -1)).sum(-1).mean()
    return keras_cce_probs(x_t, y_t)


# ----------------------------------------------- per-pixel cross-entropy
@pytest.mark.parametrize("mode", ["sigmoid", "from_logits", "probabilities"])
def test_seg_bce_masks(parity, rng, mode):
    """BCE on [N, H, W, 1] masks: mean over the pixels, then the batch."""
    x = (rng.standard_normal((N, H, W, 1)) * 4).astype(np.float32)
    if mode == "probabilities":
        x = seg_probs(rng, 1)
    y = (rng.uniform(0, 1, (N, H, W, 1)) > 0.6).astype(np.float32)
    _, loss, dx = run(x, y, "binary_crossentropy",
                          last="sigmoid" if mode == "sigmoid" else None,
                          from_logits=mode == "from_logits")
    x_t = t(x, grad=True)
    check(parity, loss, dx,
          ref_ce("binary_crossentropy", x_t, t(y), mode != "probabilities"),
          x_t)


@pytest.mark.parametrize("mode", ["softmax", "from_logits", "probabilities"])
@pytest.mark.parametrize("mask_shape", ["nhw", "nhw1"])
def test_seg_sparse_cce(parity, rng, mode, mask_shape):
    """Integer masks [N, H, W] (or [N, H, W, 1]): the TensorFlow
    segmentation tutorial's loss; from logits it is F.cross_entropy over
    the NCHW logits."""
    c = 3
    x = (rng.standard_normal((N, H, W, c)) * 3).astype(np.float32)
    if mode == "probabilities":
        x = seg_probs(rng, c)
    ids = seg_ids(rng, c)
    y = ids.astype(np.float32)
    if mask_shape == "nhw1":
        y = y[..., None]
    _, loss, dx = run(x, y, "sparse_categorical_crossentropy",
                          last="softmax" if mode == "softmax" else None,
                          from_logits=mode == "from_logits")
    x_t = t(x, grad=True)
    if mode == "probabilities":
        ref = keras_cce_probs(x_t, F.one_hot(torch.tensor(ids), c).double())
    else:
        ref = F.cross_entropy(x_t.permute(0, 3, 1, 2), torch.tensor(ids))
    check(parity, loss, dx, ref, x_t)


@pytest.mark.parametrize("mode", ["softmax", "probabilities"])
def test_seg_cce_one_hot(parity, rng, mode):
    c = 4
    x = (rng.standard_normal((N, H, W, c)) * 3).astype(np.float32)
    if mode == "probabilities":
        x = seg_probs(rng, c)
    y = np.eye(c, dtype=np.float32)[seg_ids(rng, c)]
    _, loss, dx = run(x, y, "categorical_crossentropy",
                          last="softmax" if mode == "softmax" else None)
    x_t = t(x, grad=True)
    check(parity, loss, dx,
          ref_ce("categorical_crossentropy", x_t, t(y), mode == "softmax"),
          x_t)


# ------------------------------------------------------------ IoU, Dice
OVERLAP_MODES = {
    # name: (channels, last layer, from_logits, how p follows from x)
    "sigmoid_1ch": (1, "sigmoid", False, torch.sigmoid),
    "logits_1ch": (1, None, True, torch.sigmoid),
    "probs_1ch": (1, None, False, None),
    "softmax_3ch": (3, "softmax", False, lambda z: torch.softmax(z, -1)),
    "logits_3ch": (3, None, True, lambda z: torch.softmax(z, -1)),
    "probs_3ch": (3, None, False, None),
}


@pytest.mark.parametrize("reduction", ["batch", "image"])
@pytest.mark.parametrize("mode", list(OVERLAP_MODES))
@pytest.mark.parametrize("kind", ["iou", "dice"])
def test_seg_overlap_losses(parity, rng, kind, mode, reduction):
    """IoU and Dice in every mode; with several channels the last class is
    absent from the labels (smooth keeps its term defined)."""
    c, last, from_logits, act = OVERLAP_MODES[mode]
    x = (rng.standard_normal((N, H, W, c)) * 2).astype(np.float32)
    if act is None and last is None:
        x = seg_probs(rng, c)
    ids = seg_ids(rng, max(c, 2), used=max(c - 1, 2))
    y = (ids[..., None].astype(np.float32) if c == 1
         else np.eye(c, dtype=np.float32)[ids])
    _, loss, dx = run(x, y, kind, last=last, from_logits=from_logits,
                          reduction=reduction)
    x_t = t(x, grad=True)
    p = x_t if act is None else act(x_t)
    check(parity, loss, dx,
          ref_overlap(kind, p, t(y), reduction=reduction), x_t)


@pytest.mark.parametrize("smooth", [0.0, 0.5])
def test_seg_overlap_sparse_labels_and_smooth(parity, rng, smooth):
    """sparse_labels: IoU reads class ids [N, H, W]; smooth and eps are
    the options given."""
    c = 3
    x = (rng.standard_normal((N, H, W, c)) * 2).astype(np.float32)
    ids = seg_ids(rng, c, used=2)
    _, loss, dx = run(x, ids.astype(np.float32), "iou",
                          from_logits=True, sparse_labels=True,
                          smooth=smooth, eps=1e-5)
    x_t = t(x, grad=True)
    y_t = F.one_hot(torch.tensor(ids), c).double()
    ref = ref_overlap("iou", torch.softmax(x_t, -1), y_t, smooth=smooth,
                      eps=1e-5)
    check(parity, loss, dx, ref, x_t)


# ----------------------------------------------------------- weighted sums
def test_seg_bce_plus_iou_sigmoid_output(parity, rng):
    """The assignment's loss: BCE + IoU after a sigmoid output; both terms
    come from the logits (the sigmoid's backward is skipped)."""
    x = (rng.standard_normal((N, H, W, 1)) * 3).astype(np.float32)
    y = (rng.uniform(0, 1, (N, H, W, 1)) > 0.5).astype(np.float32)
    m, loss, dx = run(x, y, {"binary_crossentropy": 1.0, "iou": 1.0},
                          last="sigmoid")
    assert m.loss == {"binary_crossentropy": 1.0, "iou": 1.0}
    x_t = t(x, grad=True)
    ref = (F.binary_cross_entropy_with_logits(x_t, t(y))
           + ref_overlap("iou", torch.sigmoid(x_t), t(y)))
    check(parity, loss, dx, ref, x_t)


@pytest.mark.parametrize("case", ["cce_dice_image", "scce_iou_dice",
                                  "bce_dice_multilabel"])
def test_seg_weighted_sums(parity, rng, case):
    c = 3
    x = (rng.standard_normal((N, H, W, c)) * 2).astype(np.float32)
    ids = seg_ids(rng, c, used=2)
    onehot = np.eye(c, dtype=np.float32)[ids]
    x_t = t(x, grad=True)
    if case == "cce_dice_image":
        _, loss, dx = run(x, onehot, ["categorical_crossentropy", "dice"],
                              loss_weights=[0.5, 2.0], last="softmax",
                              reduction="image")
        p = torch.softmax(x_t, -1)
        ref = (0.5 * ref_ce("categorical_crossentropy", x_t, t(onehot), True)
               + 2.0 * ref_overlap("dice", p, t(onehot), reduction="image"))
    elif case == "scce_iou_dice":
        _, loss, dx = run(x, ids.astype(np.float32),
                              {"sparse_categorical_crossentropy": 1.0,
                               "iou": 0.25, "dice": 3.0}, from_logits=True)
        p, y_t = torch.softmax(x_t, -1), t(onehot)
        ref = (F.cross_entropy(x_t.permute(0, 3, 1, 2), torch.tensor(ids))
               + 0.25 * ref_overlap("iou", p, y_t)
               + 3.0 * ref_overlap("dice", p, y_t))
    else:  # several sigmoid channels: BCE makes Dice use sigmoids too
        y = (rng.uniform(0, 1, (N, H, W, c)) > 0.5).astype(np.float32)
        _, loss, dx = run(x, y, ["binary_crossentropy", "dice"],
                              from_logits=True)
        ref = (F.binary_cross_entropy_with_logits(x_t, t(y))
               + ref_overlap("dice", torch.sigmoid(x_t), t(y)))
    check(parity, loss, dx, ref, x_t)


def test_seg_loss_arguments(rng):
    m = libnn.Model(1)
    m.sigmoid(m.input((H, W, 1)))
    with pytest.raises(libnn.InvalidArgument, match="one cross-entropy"):
        m.compile(libnn.SGD(), ["binary_crossentropy",
                                "categorical_crossentropy"])
    with pytest.raises(libnn.InvalidArgument, match="weight"):
        m.compile(libnn.SGD(), {"binary_crossentropy": 1, "iou": -1})
    with pytest.raises(ValueError, match="2 losses and 1 weights"):
        m.compile(libnn.SGD(), ["binary_crossentropy", "iou"],
                  loss_weights=[1])
    with pytest.raises(ValueError, match="reduction"):
        m.compile(libnn.SGD(), "iou", reduction="pixel")
    with pytest.raises(libnn.InvalidArgument, match="smooth"):
        m.compile(libnn.SGD(), "iou", smooth=-1)
    m.compile(libnn.SGD(), "dice")
    x = rng.uniform(0, 1, (2, H, W, 1)).astype(np.float32)
    with pytest.raises(ValueError):
        m.backward(x, np.zeros((2, H, W + 1, 1), np.float32))


# ---------------------------------------------------------------- metrics
def keras_mean_iou(truth, pred, k, target=None):
    """tf.keras MeanIoU / IoU(target_class_ids) from class ids."""
    cm = np.bincount(k * truth.ravel() + pred.ravel(),
                     minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    target = list(range(k)) if target is None else target
    tp, den = tp[target], den[target]
    valid = (den != 0).sum()
    iou = np.divide(tp, den, out=np.zeros_like(tp), where=den != 0)
    return (iou.sum() / valid if valid else 0.0), cm


def numpy_metrics(truth, pred, k):
    miou, cm = keras_mean_iou(truth, pred, k)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (rows + cols - tp)
        dice = 2 * tp / (rows + cols)
    return dict(mean_iou=miou, iou=keras_mean_iou(truth, pred, k,
                                                  list(range(1, k)))[0],
                class_iou=iou, class_dice=dice,
                mean_dice=np.nanmean(dice) if np.isfinite(dice).any() else 0,
                pixel_accuracy=np.trace(cm) / cm.sum(), confusion=cm)


def assert_metrics(got, want):
    np.testing.assert_array_equal(got["confusion"], want["confusion"])
    for k in ("mean_iou", "iou", "mean_dice", "pixel_accuracy"):
        assert got[k] == pytest.approx(want[k], rel=1e-12), k
    np.testing.assert_allclose(got["class_iou"], want["class_iou"],
                               rtol=1e-12)
    np.testing.assert_allclose(got["class_dice"], want["class_dice"],
                               rtol=1e-12)


def test_confusion_matches_keras_mean_iou(rng):
    """Several batches, 4 classes of which one never occurs and one only
    in the truth; argmax predictions; one-hot or id labels."""
    k = 4
    cm = libnn.ConfusionMatrix(k)
    truths, preds = [], []
    for b in range(3):
        out = rng.standard_normal((N, H, W, k)).astype(np.float32)
        out[..., 3] = -10  # class 3 is never predicted...
        ids = seg_ids(rng, k, used=3)  # ...nor true
        out[..., 2] = -10  # class 2 is true but never predicted
        y = ids.astype(np.float32) if b % 2 else np.eye(k, dtype=np.float32)[ids]
        cm.update(out, y)
        truths.append(ids)
        preds.append(out.argmax(-1))
    want = numpy_metrics(np.concatenate(truths), np.concatenate(preds), k)
    assert np.isnan(cm.iou(3)) and cm.iou(2) == 0
    assert_metrics(cm.summary(), want)
    cm.reset()
    assert cm.mean_iou() == 0 and cm.matrix.sum() == 0


@pytest.mark.parametrize("from_logits", [False, True])
def test_confusion_one_channel(rng, from_logits):
    out = rng.uniform(0, 1, (N, H, W, 1)).astype(np.float32)
    if from_logits:
        out = (out - 0.5) * 8
    mask = (rng.uniform(0, 1, (N, H, W, 1)) > 0.5).astype(np.float32)
    cm = libnn.ConfusionMatrix(2)
    cm.update(out, mask, from_logits=from_logits)
    pred = (out > (0 if from_logits else 0.5)).astype(np.int64)
    assert_metrics(cm.summary(),
                   numpy_metrics(mask.astype(np.int64), pred, 2))


def test_evaluate_segmentation_and_fit_history(rng):
    """evaluate_segmentation against numpy on predict's output, and fit's
    validation metrics of the last epoch against it (same weights)."""
    x = rng.uniform(0, 1, (24, 8, 8, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)
    m = libnn.Model(3)
    h = m.conv2d(m.input((8, 8, 1)), 4, 3, padding="same", activation="relu")
    m.conv2d(h, 1, 3, padding="same", activation="sigmoid")
    m.compile(libnn.Adam(learning_rate=0.02),
              {"binary_crossentropy": 1, "iou": 1})
    hist = m.fit(x, y, epochs=3, batch_size=8, validation_data=(x, y),
                 segmentation_metrics=True)
    for k in ("iou", "mean_iou", "dice", "pixel_accuracy", "val_iou",
              "val_mean_iou", "val_dice", "val_pixel_accuracy"):
        assert len(hist[k]) == 3 and all(np.isfinite(hist[k])), k
    got = m.evaluate_segmentation(x, y, batch_size=5)
    pred = (m.predict(x) > 0.5).astype(np.int64)
    assert_metrics(got, numpy_metrics(y.astype(np.int64), pred, 2))
    assert hist["val_iou"][-1] == pytest.approx(got["iou"], rel=1e-6)
    assert hist["val_mean_iou"][-1] == pytest.approx(got["mean_iou"],
                                                     rel=1e-6)
    assert hist["val_pixel_accuracy"][-1] == pytest.approx(
        hist["val_accuracy"][-1], rel=1e-6)
    loss, _ = m.evaluate(x, y, batch_size=5)
    assert got["loss"] == pytest.approx(loss, rel=1e-6)


# ================================================== weighted cross-entropy
"""Weighted cross-entropy (docs/losses.md) against PyTorch in float64.

  * class weights: the loss at a position is -sum_c w_c y_c log q_c
    (w of the class for ids), torch.nn.CrossEntropyLoss(weight=w);
  * pos_weight: -(pw y log p + (1 - y) log(1 - p)),
    BCEWithLogitsLoss(pos_weight=pw);
  * normalisation: weight_norm="sum" divides the weighted sum by the sum
    of the weights, which is PyTorch's mean with class ids; "samples"
    (the default, Keras' sum_over_batch_size) divides by the number of
    samples (positions), so the references there are
    (F.cross_entropy(..., reduction="none") * ...).sum() / N. With soft
    labels PyTorch divides by N whatever the weights: that is libnn's
    "samples"; libnn's "sum" divides by sum_n sum_c w_c y_nc instead.
  * per-sample weights go through fit (Keras' sample_weight /
    class_weight): one SGD step of learning rate 1 on a Dense layer gives
    the kernel's gradient, compared with autograd of the weighted loss;
    the reported loss is the batch's before the step.
"""

CW = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def weighted_run(x, y, loss, last=None, **kw):
    return run(x, y, loss, last=last, class_weights=list(CW), **kw)


@pytest.mark.parametrize("last", ["softmax", "logits"])
@pytest.mark.parametrize("norm", ["sum", "samples"])
def test_weighted_sparse_cce(parity, rng, last, norm):
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    ids = rng.integers(0, C, N)
    _, loss, dx = weighted_run(
        x, ids.astype(np.float32), "sparse_categorical_crossentropy",
        last="softmax" if last == "softmax" else None,
        from_logits=last == "logits", weight_norm=norm)
    x_t = t(x, grad=True)
    w = t(CW)
    if norm == "sum":
        ref = torch.nn.CrossEntropyLoss(weight=w)(x_t, torch.tensor(ids))
    else:  # Keras: the weighted sum over the number of samples
        ref = F.cross_entropy(x_t, torch.tensor(ids), weight=w,
                              reduction="none").sum() / N
    check(parity, loss, dx, ref, x_t)


@pytest.mark.parametrize("labels", ["onehot", "soft"])
def test_weighted_cce_probability_targets(parity, rng, labels):
    """Probability targets: PyTorch's mean divides by N (libnn's
    "samples"); "sum" divides by sum_n sum_c w_c y_nc."""
    x = (rng.standard_normal((N, C)) * 2).astype(np.float32)
    y = one_hot(rng) if labels == "onehot" else soft_labels(rng)
    x_t = t(x, grad=True)
    ce = torch.nn.CrossEntropyLoss(weight=t(CW), reduction="none")
    per = ce(x_t, t(y))
    _, loss, dx = weighted_run(x, y, "categorical_crossentropy",
                               last="softmax")
    check(parity, loss, dx, per.sum() / N, x_t)
    x_t = t(x, grad=True)
    per = ce(x_t, t(y))
    _, loss, dx = weighted_run(x, y, "categorical_crossentropy",
                               last="softmax", weight_norm="sum")
    check(parity, loss, dx, per.sum() / (t(y) @ t(CW)).sum(), x_t)


def test_weighted_cce_probabilities_keras(parity, rng):
    """Weights on probabilities (no activation to fuse): Keras' row
    normalisation and clipping, then -sum_c w_c y_c log q_c."""
    x = rng.uniform(0.05, 1.0, (N, C)).astype(np.float32)
    y = soft_labels(rng)
    _, loss, dx = weighted_run(x, y, "categorical_crossentropy")
    x_t = t(x, grad=True)
    q = torch.clamp(x_t / x_t.sum(-1, keepdim=True), P_LO, P_HI)
    ref = -(t(CW) * t(y) * torch.log(q)).sum(-1).mean()
    check(parity, loss, dx, ref, x_t)


def test_weighted_segmentation_cce(parity, rng):
    """Per-pixel class weights on integer masks: PyTorch's weighted mean
    over every pixel is libnn's "sum"."""
    c = 3
    x = (rng.standard_normal((N, H, W, c)) * 2).astype(np.float32)
    ids = seg_ids(rng, c)
    w = [0.2, 1.0, 5.0]
    _, loss, dx = run(x, ids.astype(np.float32),
                      "sparse_categorical_crossentropy", last="softmax",
                      class_weights=w, weight_norm="sum")
    x_t = t(x, grad=True)
    ref = F.cross_entropy(x_t.permute(0, 3, 1, 2), torch.tensor(ids),
                          weight=t(w))
    check(parity, loss, dx, ref, x_t)


@pytest.mark.parametrize("mode", ["sigmoid", "from_logits", "probabilities"])
@pytest.mark.parametrize("channels", [1, C])
def test_bce_pos_weight(parity, rng, mode, channels):
    """BCEWithLogitsLoss(pos_weight): the mean over every value (libnn:
    over a sample's values, then the batch); on probabilities Keras'
    clipping applies."""
    x = (rng.standard_normal((N, channels)) * 3).astype(np.float32)
    if mode == "probabilities":
        x = rng.uniform(0.02, 0.98, (N, channels)).astype(np.float32)
    y = (rng.uniform(0, 1, (N, channels)) > 0.7).astype(np.float32)
    pw = 4.0
    _, loss, dx = run(x, y, "binary_crossentropy",
                      last="sigmoid" if mode == "sigmoid" else None,
                      from_logits=mode == "from_logits", pos_weight=pw)
    x_t = t(x, grad=True)
    if mode == "probabilities":
        q = torch.clamp(x_t, P_LO, P_HI)
        ref = -(pw * t(y) * torch.log(q)
                + (1 - t(y)) * torch.log(1 - q)).mean()
    else:
        ref = torch.nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(pw, dtype=torch.float64))(x_t, t(y))
    check(parity, loss, dx, ref, x_t)


def fit_one_step(x, y, loss, units, act, **fit_kw):
    """A Dense(units, act) model, one SGD step of rate 1 over the whole
    batch: (reported loss, kernel gradient, kernel, bias)."""
    m = libnn.Model(5)
    d = m.dense(m.input(x.shape[1:]), units, activation=act)
    m.compile(libnn.SGD(learning_rate=1.0), loss,
              weight_norm=fit_kw.pop("weight_norm", "samples"))
    k0, b0 = (w.copy() for w in d.weights)
    hist = m.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, **fit_kw)
    return hist["loss"][0], k0 - d.weights[0], k0, b0


def torch_dense(x, k, b, act):
    kt = t(k, grad=True)
    z = t(x) @ kt + t(b)
    return kt, (torch.sigmoid(z) if act == "sigmoid" else z)


@pytest.mark.parametrize("norm", ["samples", "sum"])
def test_fit_sample_weight_bce(parity, rng, norm):
    """Keras' sample weights: F.binary_cross_entropy(weight=s) is the
    weighted sum over the number of values (libnn's "samples"); "sum"
    divides by the sum of the weights (Keras 3's
    mean_with_sample_weight)."""
    n = 12
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (rng.uniform(0, 1, (n, 1)) > 0.5).astype(np.float32)
    s = rng.uniform(0, 3, n).astype(np.float32)
    loss, grad, k, b = fit_one_step(x, y, "binary_crossentropy", 1,
                                    "sigmoid", sample_weight=s,
                                    weight_norm=norm)
    kt, z = torch_dense(x, k, b, None)
    per = F.binary_cross_entropy_with_logits(z, t(y), reduction="none")[:, 0]
    ref = (t(s) * per).sum() / (n if norm == "samples" else s.sum())
    if norm == "samples":  # the same as PyTorch's weight= mean
        same = F.binary_cross_entropy(torch.sigmoid(z), t(y),
                                      weight=t(s)[:, None])
        assert float(same) == pytest.approx(float(ref), rel=1e-12)
    ref.backward()
    parity.compare(loss=(loss, ref, FWD_TOL), kernel_grad=(grad, kt.grad,
                                                           BWD_TOL))


def test_fit_class_weight_is_keras(parity, rng):
    """fit(class_weight=): each sample's loss times the weight of its
    class, over the number of samples (Keras). With weight_norm "sum" the
    same run is PyTorch's CrossEntropyLoss(weight=)."""
    n = 15
    x = rng.standard_normal((n, 4)).astype(np.float32)
    ids = rng.integers(0, 3, n)
    cw = {0: 1.0, 1: 4.0, 2: 0.5}
    w = t([cw[0], cw[1], cw[2]])
    for norm in ("samples", "sum"):
        loss, grad, k, b = fit_one_step(
            x, ids.astype(np.float32), "sparse_categorical_crossentropy", 3,
            "softmax", class_weight=cw, weight_norm=norm)
        kt, z = torch_dense(x, k, b, None)
        if norm == "sum":
            ref = torch.nn.CrossEntropyLoss(weight=w)(z, torch.tensor(ids))
        else:
            ref = F.cross_entropy(z, torch.tensor(ids), weight=w,
                                  reduction="none").sum() / n
        ref.backward()
        parity.compare(**{f"loss_{norm}": (loss, ref, FWD_TOL),
                          f"kernel_grad_{norm}": (grad, kt.grad, BWD_TOL)})


def test_weighted_loss_arguments(rng):
    m = libnn.Model(1)
    m.softmax(m.input((3,)))
    with pytest.raises(libnn.ShapeError, match="2 class weights"):
        m.compile(libnn.SGD(), "sparse_categorical_crossentropy",
                  class_weights=[1, 2])
    with pytest.raises(ValueError, match="every class"):
        m.compile(libnn.SGD(), "sparse_categorical_crossentropy",
                  class_weights={0: 1, 2: 3})
    with pytest.raises(libnn.InvalidArgument, match="pos_weight"):
        m.compile(libnn.SGD(), "categorical_crossentropy", pos_weight=2)
    with pytest.raises(ValueError, match="weight_norm"):
        m.compile(libnn.SGD(), "categorical_crossentropy", weight_norm="max")
    m.compile(libnn.SGD(), "sparse_categorical_crossentropy",
              class_weights={0: 1, 1: 2, 2: 3})
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 1], np.float32)
    with pytest.raises(libnn.InvalidArgument, match="class weight 1 is -1"):
        m.fit(x, y, class_weight=[1, -1, 1])
    with pytest.raises(ValueError):
        m.fit(x, y, sample_weight=np.ones(3, np.float32))
