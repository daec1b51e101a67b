"""Optimizer settings. They are plain descriptions: Model.compile() creates
the library's optimizer from them and the model then owns it."""

import math

from . import _lib, errors
from ._lib import lib

EPS_MODES = {"keras": _lib.ADAM_EPS_KERAS, "torch": _lib.ADAM_EPS_TORCH}


def _positive(name, v, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise errors.wrong_type(f"{name} must be a number, got "
                                f"{type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise errors.invalid(f"{name} must be finite and "
                             f"{'>=' if allow_zero else '>'} 0, got {v}")
    return v


def _clipping(global_clipnorm, clipvalue):
    """Validated (global_clipnorm, clipvalue); None or 0 turns one off."""
    return (_positive("global_clipnorm", global_clipnorm or 0, True),
            _positive("clipvalue", clipvalue or 0, True))


def _set_clipping(opt, ptr):
    """Applies opt's clipping to a freshly created C optimizer."""
    try:
        lib.nn_optimizer_set_global_clipnorm(ptr, opt.global_clipnorm)
        lib.nn_optimizer_set_clipvalue(ptr, opt.clipvalue)
    except BaseException:
        lib.nn_optimizer_free(ptr)
        raise
    return ptr


class Adam:
    """Adam. ``eps_mode="keras"`` (default) puts epsilon where Keras does:
    lr_t * m / (sqrt(v) + eps); ``"torch"`` where torch.optim.Adam does:
    lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Keras' default
    epsilon is 1e-7, PyTorch's 1e-8."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, eps_mode="keras", global_clipnorm=None,
                 clipvalue=None):
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.beta_1 = _positive("beta_1", beta_1, allow_zero=True)
        self.beta_2 = _positive("beta_2", beta_2, allow_zero=True)
        if self.beta_1 >= 1 or self.beta_2 >= 1:
            raise errors.invalid(f"beta_1 {self.beta_1} and beta_2 "
                                 f"{self.beta_2} must be < 1")
        self.epsilon = _positive("epsilon", epsilon, allow_zero=True)
        if eps_mode not in EPS_MODES:
            raise errors.invalid(f"eps_mode must be 'keras' or 'torch', "
                                 f"got {eps_mode!r}")
        self.eps_mode = eps_mode
        self.global_clipnorm, self.clipvalue = _clipping(global_clipnorm,
                                                         clipvalue)

    def _create(self):
        o = _lib.make_opts(_lib.nn_adam_opts,
                           learning_rate=self.learning_rate,
                           beta1=self.beta_1, beta2=self.beta_2,
                           epsilon=self.epsilon,
                           eps_mode=EPS_MODES[self.eps_mode])
        return _set_clipping(self, lib.nn_adam(o))

    def __repr__(self):
        return (f"Adam(learning_rate={self.learning_rate}, beta_1="
                f"{self.beta_1}, beta_2={self.beta_2}, epsilon="
                f"{self.epsilon}, eps_mode={self.eps_mode!r})")


class SGD:
    """Stochastic gradient descent with Keras' momentum form (equal to
    torch.optim.SGD's for a constant learning rate)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False,
                 global_clipnorm=None, clipvalue=None):
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise errors.invalid(f"momentum {self.momentum} must be < 1")
        self.nesterov = bool(nesterov)
        self.global_clipnorm, self.clipvalue = _clipping(global_clipnorm,
                                                         clipvalue)

    def _create(self):
        o = _lib.make_opts(_lib.nn_sgd_opts, learning_rate=self.learning_rate,
                           momentum=self.momentum, nesterov=int(self.nesterov))
        return _set_clipping(self, lib.nn_sgd(o))

    def __repr__(self):
        return (f"SGD(learning_rate={self.learning_rate}, momentum="
                f"{self.momentum}, nesterov={self.nesterov})")


def get(optimizer):
    """An optimizer description from an object or a name ("adam", "sgd")."""
    if isinstance(optimizer, (Adam, SGD)):
        return optimizer
    if isinstance(optimizer, str):
        names = {"adam": Adam, "sgd": SGD}
        if optimizer.lower() in names:
            return names[optimizer.lower()]()
        raise errors.invalid(f"unknown optimizer {optimizer!r} (adam, sgd)")
    raise errors.wrong_type(f"optimizer must be libnn.Adam, libnn.SGD or a "
                            f"name, got {type(optimizer).__name__}")


class Optimizer:
    """The optimizer a model owns (``Model.optimizer``), read and changed
    through the library, as Keras' ``model.optimizer``: ``learning_rate``
    (assignable), ``iterations`` (steps taken), and ``config``, the
    Adam/SGD description compile() received (None for a model loaded from
    a file, whose optimizer the file described)."""

    def __init__(self, model, config=None):
        self._model = model
        self.config = config

    @property
    def _ptr(self):
        p = lib.nn_model_optimizer(self._model._ptr)
        if not p:
            raise errors.StateError(_lib.last_error(), None,
                                    "nn_model_optimizer")
        return p

    @property
    def learning_rate(self):
        return float(lib.nn_optimizer_learning_rate(self._ptr))

    @learning_rate.setter
    def learning_rate(self, lr):
        lib.nn_optimizer_set_learning_rate(
            self._ptr, _positive("learning_rate", lr))

    @property
    def iterations(self):
        """Optimizer steps taken so far (a loaded model's count goes on
        from the file's)."""
        return int(lib.nn_optimizer_iterations(self._ptr))

    def __repr__(self):
        kind = type(self.config).__name__ if self.config else "optimizer"
        return (f"<libnn.Optimizer {kind}, learning_rate="
                f"{self.learning_rate:g}, iterations={self.iterations}>")
