"""Optimizer parity: 20 steps of Adam and SGD against torch.optim (and a
numpy Keras Adam), weights within 1e-5 relative.

Two methods:
  * same gradients: each step libnn computes gradients (model.backward on a
    fresh batch), the very same gradients are handed to torch.optim (as
    p.grad) and to a numpy reimplementation, then libnn applies its step
    (model.apply_gradients). This isolates the update rule exactly.
  * twins: libnn and a PyTorch copy of the model each compute their own
    forward/backward on the same batches and step (model.train_batch);
    losses and weights are compared after 20 steps.

Adam's epsilon. eps_mode="torch" is torch.optim.Adam's formula and is
compared with it directly. eps_mode="keras" (lr_t * m / (sqrt(v) + eps))
equals torch's only with an epsilon that changes every step
(eps * sqrt(1 - b2^t)), which torch.optim cannot express, so it is compared
with numpy. Each mode is run with epsilon 1e-8 and with a large epsilon
(1e-3 against gradients of ~1e-3) where the two formulas differ by far more
than the tolerance, so swapping them would fail.
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
from nnref import t  # noqa: E402

F = torch.nn.functional
TOL = 1e-5
STEPS = 20
N_IN, UNITS, BATCH = 6, 4, 8


def dense_model(opt, rng, seed=5):
    """Input(6) -> Dense(4), BCE from logits: smooth, exact gradients."""
    m = libnn.Model(seed)
    layer = m.dense(m.input((N_IN,)), UNITS)
    m.compile(opt, "binary_crossentropy", from_logits=True)
    w = (rng.standard_normal((N_IN, UNITS)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(UNITS) * 0.1).astype(np.float32)
    layer.set_weights([w, b])
    return m, layer


def batches(rng, scale=1.0):
    for _ in range(STEPS):
        x = (rng.standard_normal((BATCH, N_IN)) * scale).astype(np.float32)
        y = rng.uniform(0, 1, (BATCH, UNITS)).astype(np.float32)
        yield x, y


def keras_adam(params, grads, state, lr, b1, b2, eps):
    """Keras' Adam on float64 numpy arrays (state: t, m, v)."""
    state["t"] += 1
    tt = state["t"]
    lr_t = lr * np.sqrt(1 - b2 ** tt) / (1 - b1 ** tt)
    for k, (p, g) in enumerate(zip(params, grads)):
        state["m"][k] = b1 * state["m"][k] + (1 - b1) * g
        state["v"][k] = b2 * state["v"][k] + (1 - b2) * g * g
        p -= lr_t * state["m"][k] / (np.sqrt(state["v"][k]) + eps)


def run_same_gradients(opt, make_stepper, rng, scale=1.0):
    """Steps libnn with its own gradients and hands the same gradients to
    the reference stepper (make_stepper(params) -> step(params, grads)).
    Returns libnn's and the reference's final (kernel, bias)."""
    m, layer = dense_model(opt, rng)
    ref = [layer.weights[0].astype(np.float64).copy(),
           layer.weights[1].astype(np.float64).copy()]
    tparams = [t(ref[0], grad=True), t(ref[1], grad=True)]
    stepper = make_stepper(tparams)
    for x, y in batches(rng, scale):
        m.backward(x, y, training=True, want_dx=False)
        grads = [g.astype(np.float64) for g in layer.grads]
        stepper(tparams, grads)
        m.apply_gradients()
    assert m.iterations == STEPS
    return layer.weights, [p.detach().numpy() for p in tparams]


def torch_stepper(make):
    """A stepper that runs a torch.optim optimizer on given gradients."""
    def build(tparams):
        opt = make(tparams)

        def step(params, grads):
            for p, g in zip(params, grads):
                p.grad = torch.tensor(g)
            opt.step()
        return step
    return build


def numpy_stepper(fn, **kw):
    def build(tparams):
        state = {"t": 0, "m": [0.0, 0.0], "v": [0.0, 0.0]}

        def step(params, grads):
            with torch.no_grad():
                arrs = [p.detach().numpy() for p in params]  # shares memory
                keras_adam(arrs, grads, state, **kw)
        return step
    return build


ADAM_CASES = [  # (lr, beta1, beta2, eps, gradient scale)
    (1e-3, 0.9, 0.999, 1e-8, 1.0),
    (1e-2, 0.8, 0.99, 1e-8, 1.0),
    (1e-2, 0.9, 0.999, 1e-3, 0.01),  # eps comparable to sqrt(v)
]
ADAM_IDS = ["default", "lr1e-2-betas", "large-eps"]


@pytest.mark.parametrize("lr,b1,b2,eps,scale", ADAM_CASES, ids=ADAM_IDS)
def test_adam_torch_mode_vs_torch_optim(parity, rng, lr, b1, b2, eps, scale):
    opt = libnn.Adam(lr, b1, b2, eps, eps_mode="torch")
    got, ref = run_same_gradients(
        opt, torch_stepper(lambda ps: torch.optim.Adam(
            ps, lr=lr, betas=(b1, b2), eps=eps)), rng, scale)
    parity.compare(kernel=(got[0], ref[0], TOL), bias=(got[1], ref[1], TOL))


@pytest.mark.parametrize("lr,b1,b2,eps,scale", ADAM_CASES, ids=ADAM_IDS)
def test_adam_keras_mode_vs_numpy(parity, rng, lr, b1, b2, eps, scale):
    opt = libnn.Adam(lr, b1, b2, eps, eps_mode="keras")
    got, ref = run_same_gradients(
        opt, numpy_stepper(keras_adam, lr=lr, b1=b1, b2=b2, eps=eps), rng,
        scale)
    parity.compare(kernel=(got[0], ref[0], TOL), bias=(got[1], ref[1], TOL))


def test_adam_eps_modes_differ_with_large_eps(rng):
    """The large-eps case really tells the two formulas apart."""
    finals = []
    for mode in ("keras", "torch"):
        r = np.random.default_rng(7)
        m, layer = dense_model(libnn.Adam(1e-2, epsilon=1e-3, eps_mode=mode),
                               r)
        for x, y in batches(r, 0.01):
            m.train_batch(x, y)
        finals.append(layer.weights[0].copy())
    diff = np.abs(finals[0] - finals[1]).max() / np.abs(finals[1]).max()
    assert diff > 100 * TOL, diff


SGD_CASES = [(0.1, 0.0, False), (0.05, 0.9, False), (0.05, 0.9, True),
             (0.2, 0.5, True)]


@pytest.mark.parametrize("lr,momentum,nesterov", SGD_CASES,
                         ids=["plain", "momentum", "nesterov",
                              "nesterov-0.5"])
def test_sgd_vs_torch_optim(parity, rng, lr, momentum, nesterov):
    opt = libnn.SGD(lr, momentum, nesterov)
    got, ref = run_same_gradients(
        opt, torch_stepper(lambda ps: torch.optim.SGD(
            ps, lr=lr, momentum=momentum, nesterov=nesterov)), rng)
    parity.compare(kernel=(got[0], ref[0], TOL), bias=(got[1], ref[1], TOL))


TWIN_CASES = [
    ("adam", lambda: libnn.Adam(1e-2, epsilon=1e-8, eps_mode="torch"),
     lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-8)),
    ("sgd-nesterov", lambda: libnn.SGD(0.1, 0.9, True),
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
]


@pytest.mark.parametrize("name,make_nn,make_torch", TWIN_CASES,
                         ids=[c[0] for c in TWIN_CASES])
def test_twin_training(parity, rng, name, make_nn, make_torch):
    """Each side computes its own gradients: the honest end-to-end check."""
    m, layer = dense_model(make_nn(), rng)
    w_t = t(layer.weights[0].T, grad=True)
    b_t = t(layer.weights[1], grad=True)
    topt = make_torch([w_t, b_t])
    losses, ref_losses = [], []
    for x, y in batches(rng):
        losses.append(m.train_batch(x, y)[0])
        topt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(F.linear(t(x), w_t, b_t),
                                                  t(y))
        loss.backward()
        topt.step()
        ref_losses.append(loss.item())
    parity.compare(losses=(losses, ref_losses, TOL),
                   kernel=(layer.weights[0], w_t.T, TOL),
                   bias=(layer.weights[1], b_t, TOL))
