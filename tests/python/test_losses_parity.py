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


def run(x, y, loss, last=None, from_logits=False):
    """libnn loss and dx for output = last(x) (identity when None)."""
    m = libnn.Model(3)
    i = m.input(x.shape[1:])
    if last is None:
        m.dropout(i, 0.0)
    else:
        getattr(m, last)(i)
    m.compile(libnn.SGD(), loss, from_logits=from_logits)
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
