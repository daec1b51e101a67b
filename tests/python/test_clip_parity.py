"""Gradient clipping parity: libnn's global_clipnorm / clipvalue and the
clipped Adam step against torch.nn.utils.clip_grad_norm_ /
clip_grad_value_ + torch.optim.Adam (eps_mode "torch"), and the reported
global norm against clip_grad_norm_'s return value.

Method ("same gradients", as in test_optimizers_parity.py): every step
libnn computes gradients of a two-layer model on a fresh batch
(model.backward), the very same gradients are handed to torch (as p.grad,
in float64), torch clips them and steps, then libnn clips and steps
(model.apply_gradients). After the step libnn's gradient buffers hold the
clipped gradients, which are compared with torch's every step; the weights
are compared after 20 steps.

One documented difference: torch divides by (norm + 1e-6) where Keras'
tf.clip_by_global_norm (libnn) divides by the norm. The gradients here
have norms between 0.6 and 3, so the two differ by 3e-7 to 1.6e-6
relative (the largest error measured below), inside the tolerance.
"""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
from nnref import t  # noqa: E402

TOL = 1e-5
STEPS = 20
N_IN, HIDDEN, UNITS, BATCH = 6, 5, 4, 8


def model(opt, rng):
    """Input(6) -> Dense(5, relu) -> Dense(4), BCE from logits."""
    m = libnn.Model(3)
    h = m.dense(m.input((N_IN,)), HIDDEN, activation="relu")
    out = m.dense(h, UNITS)
    m.compile(opt, "binary_crossentropy", from_logits=True)
    for layer, (i, o) in ((h, (N_IN, HIDDEN)), (out, (HIDDEN, UNITS))):
        layer.set_weights([(rng.standard_normal((i, o)) * 0.8)
                           .astype(np.float32),
                           (rng.standard_normal(o) * 0.1).astype(np.float32)])
    return m, [h, out]


def batches(rng, scale):
    for _ in range(STEPS):
        x = (rng.standard_normal((BATCH, N_IN)) * scale).astype(np.float32)
        y = rng.uniform(0, 1, (BATCH, UNITS)).astype(np.float32)
        yield x, y


def weights(layers):
    return [w for layer in layers for w in layer.weights]


def grads(layers):
    return [g.astype(np.float64).copy() for layer in layers
            for g in layer.grads]


def run(opt, torch_clip, rng, scale=4.0, record=False):
    """Steps libnn and torch (Adam, torch's epsilon) on the same gradients.
    torch_clip(params) clips params' .grad and returns the norm it saw
    (or None). Returns (libnn's and torch's clipped gradients of all steps
    as two flat arrays, libnn weights, torch weights, libnn and torch
    pre-clip norms)."""
    m, layers = model(opt, rng)
    if record:
        m.set_diagnostics(record=True)
    tparams = [t(w, grad=True) for w in weights(layers)]
    topt = torch.optim.Adam(tparams, lr=opt.learning_rate,
                            betas=(opt.beta_1, opt.beta_2), eps=opt.epsilon)
    clipped, ref_clipped, norms, ref_norms = [], [], [], []
    for x, y in batches(rng, scale):
        m.backward(x, y, training=True, want_dx=False)
        for p, g in zip(tparams, grads(layers)):
            p.grad = t(g)
        ref_norms.append(torch_clip(tparams))
        topt.step()
        m.apply_gradients()
        if record:
            norms.append(m.grad_report()["global_norm"])
        clipped += [g.ravel() for g in grads(layers)]
        ref_clipped += [p.grad.numpy().ravel() for p in tparams]
    got = weights(layers)
    ref = [p.detach().numpy() for p in tparams]
    return ((np.concatenate(clipped), np.concatenate(ref_clipped)), got, ref,
            norms, ref_norms)


def adam(**clip):
    return libnn.Adam(1e-2, epsilon=1e-8, eps_mode="torch", **clip)


def compare_weights(parity, got, ref, **extra):
    names = ["kernel", "bias", "kernel_1", "bias_1"]
    parity.compare(**{n: (g, r, TOL) for n, g, r in zip(names, got, ref)},
                   **extra)


@pytest.mark.parametrize("max_norm", [0.1, 0.5])
def test_clip_grad_norm_adam(parity, rng, max_norm):
    def clip(ps):
        return float(torch.nn.utils.clip_grad_norm_(ps, max_norm))

    (g, r), got, ref, norms, ref_norms = run(
        adam(global_clipnorm=max_norm), clip, rng, record=True)
    # the case really clips: the norms before clipping exceed max_norm
    assert min(ref_norms) > max_norm
    parity.compare(clipped_grads=(g, r, TOL),
                   global_norm=(norms, ref_norms, TOL))
    compare_weights(parity, got, ref)


@pytest.mark.parametrize("value", [0.05, 0.3])
def test_clip_grad_value_adam(parity, rng, value):
    clipped = []

    def clip(ps):
        clipped.append(sum(int((p.grad.abs() > value).sum()) for p in ps))
        torch.nn.utils.clip_grad_value_(ps, value)

    (g, r), got, ref, _, _ = run(adam(clipvalue=value), clip, rng)
    assert sum(clipped) > 0  # values were clamped
    parity.compare(clipped_grads=(g, r, TOL))
    compare_weights(parity, got, ref)


def test_clip_value_then_norm_adam(parity, rng):
    """Both set: clamp first, then scale to the global norm (torch: the two
    utilities in that order)."""
    def clip(ps):
        torch.nn.utils.clip_grad_value_(ps, 0.4)
        return float(torch.nn.utils.clip_grad_norm_(ps, 0.6))

    (g, r), got, ref, _, _ = run(adam(clipvalue=0.4, global_clipnorm=0.6),
                                 clip, rng)
    parity.compare(clipped_grads=(g, r, TOL))
    compare_weights(parity, got, ref)


def test_no_clip_when_below(parity, rng):
    """A threshold above every norm leaves the gradients untouched."""
    def clip(ps):
        return float(torch.nn.utils.clip_grad_norm_(ps, 1e6))

    (g, r), got, ref, _, _ = run(adam(global_clipnorm=1e6), clip, rng)
    assert np.array_equal(g, r)
    compare_weights(parity, got, ref)


def test_clipping_arguments():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            libnn.Adam(global_clipnorm=bad)
        with pytest.raises(ValueError):
            libnn.SGD(clipvalue=bad)
    opt = libnn.SGD(0.1, global_clipnorm=None, clipvalue=0)
    assert opt.global_clipnorm == 0 and opt.clipvalue == 0


def test_binding_diagnostics(rng):
    """The binding's diagnostics: fit's gradient columns, the report, the
    summary and the finite check's error."""
    m, layers = model(libnn.SGD(0.05), rng)
    x = rng.standard_normal((40, N_IN)).astype(np.float32)
    y = rng.uniform(0, 1, (40, UNITS)).astype(np.float32)
    h = m.fit(x, y, epochs=2, batch_size=10, record_grad_norm=2)
    assert len(h["grad_norm"]) == 2 and len(h["step_grad_norm"]) == 8
    assert np.isclose(h["grad_norm"][1], np.mean(h["step_grad_norm"][4:]),
                      rtol=1e-5)
    r = m.grad_report()
    assert r["step"] == 8 and [l["name"] for l in r["layers"]] == \
        [layer.name for layer in layers]
    assert r["health"] == "ok" and r["layers"][0]["update_ratio"] > 0
    assert "Global gradient norm" in m.grad_summary()
    w = layers[1].weights
    w[0][0, 0] = np.nan
    layers[1].set_weights(w)
    with pytest.raises(libnn.NumericError, match=layers[1].name):
        m.fit(x, y, epochs=1, batch_size=10, stop_on_nonfinite=True)
