"""Model, Layer and Context: the Keras-like face of libnn's C API.

Lifetime: a Model owns one nn_model handle. close() (or leaving a `with`
block, or garbage collection) releases it exactly once. Weight and gradient
arrays are numpy views of the model's memory whose base holds the handle, so
the C model is freed only when the last such view is gone: a view never
dangles. Layer objects and every Model method raise libnn.StateError once the
model is closed.
"""

import ctypes
import math
import os

import numpy as np

from . import _lib, errors, optimizers
from ._lib import lib
from .history import History, ProgressPrinter, verbosity
from .metrics import ConfusionMatrix, Curve, report_dict
from .tensor import Handle, as_float32, view, tensor_shape, wrap

ACTIVATIONS = {None: _lib.ACT_NONE, "linear": _lib.ACT_NONE,
               "none": _lib.ACT_NONE, "relu": _lib.ACT_RELU,
               "sigmoid": _lib.ACT_SIGMOID, "softmax": _lib.ACT_SOFTMAX,
               "relu6": _lib.ACT_RELU6, "tanh": _lib.ACT_TANH,
               "elu": _lib.ACT_ELU, "leaky_relu": _lib.ACT_LEAKY_RELU}
PADDINGS = {"valid": _lib.PADDING_VALID, "same": _lib.PADDING_SAME}
INITIALIZERS = {None: _lib.INIT_DEFAULT, "default": _lib.INIT_DEFAULT,
                "zeros": _lib.INIT_ZEROS, "ones": _lib.INIT_ONES,
                "glorot_uniform": _lib.INIT_GLOROT_UNIFORM,
                "glorot_normal": _lib.INIT_GLOROT_NORMAL,
                "he_uniform": _lib.INIT_HE_UNIFORM,
                "he_normal": _lib.INIT_HE_NORMAL,
                "random_normal": _lib.INIT_RANDOM_NORMAL}
_FLAVORS = {"keras": _lib.RESNET_KERAS,
            "torchvision": _lib.RESNET_TORCHVISION}
_WEIGHT_MAPS = {"libnn": _lib.WEIGHTS_LIBNN,
                "torchvision_resnet": _lib.WEIGHTS_TORCHVISION_RESNET,
                "torchvision_mobilenet_v2":
                    _lib.WEIGHTS_TORCHVISION_MOBILENET_V2}
_MOBILENET_FLAVORS = {"keras": _lib.MOBILENET_KERAS,
                      "torchvision": _lib.MOBILENET_TORCHVISION}
FLIP_MODES = {"horizontal": _lib.FLIP_HORIZONTAL,
              "vertical": _lib.FLIP_VERTICAL,
              "horizontal_and_vertical": _lib.FLIP_HORIZONTAL_AND_VERTICAL}
FILL_MODES = {"reflect": _lib.FILL_REFLECT, "wrap": _lib.FILL_WRAP,
              "constant": _lib.FILL_CONSTANT, "nearest": _lib.FILL_NEAREST}
INTERPOLATIONS = {"bilinear": _lib.INTERP_BILINEAR,
                  "nearest": _lib.INTERP_NEAREST}
LOSSES = {"categorical_crossentropy": _lib.LOSS_CCE,
          "sparse_categorical_crossentropy": _lib.LOSS_SPARSE_CCE,
          "binary_crossentropy": _lib.LOSS_BCE,
          "iou": _lib.LOSS_IOU, "dice": _lib.LOSS_DICE}
REDUCTIONS = {"batch": _lib.LOSS_REDUCE_BATCH,
              "image": _lib.LOSS_REDUCE_IMAGE}
WEIGHT_NORMS = {"samples": _lib.WEIGHT_NORM_SAMPLES,
                "sum": _lib.WEIGHT_NORM_SUM}
STATE_PARTS = {"all": _lib.STATE_ALL, "trainable": _lib.STATE_TRAINABLE,
               "statistics": _lib.STATE_STATISTICS}
_CHANNEL_ORDERS = {"as_model": _lib.CHANNELS_AS_MODEL,
                   "reversed": _lib.CHANNELS_REVERSED}


# ------------------------------------------------------------ argument checks
def _choice(table, value, what):
    key = value.lower() if isinstance(value, str) else value
    if key not in table:
        names = ", ".join(repr(k) for k in table if k is not None)
        raise errors.invalid(f"{what}: unknown value {value!r} (one of "
                             f"{names})")
    return table[key]


def _int(v, what, lo=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise errors.wrong_type(f"{what} must be an int, got "
                                f"{type(v).__name__}")
    v = int(v)
    if v < lo:
        raise errors.invalid(f"{what} must be >= {lo}, got {v}")
    if v > 2**31 - 1:
        raise errors.invalid(f"{what} is too large: {v}")
    return v


def _pair(v, what):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise errors.invalid(f"{what} must be an int or a pair, got "
                                 f"{v!r}")
        return _int(v[0], what), _int(v[1], what)
    v = _int(v, what)
    return v, v


def _shape(shape, what="shape"):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise errors.wrong_type(f"{what} must be an int or a non-empty "
                                f"tuple, got {shape!r}")
    return tuple(_int(d, what) for d in shape)


def _factor(v, what):
    """Keras' factor argument: a number f means (-f, f), a pair (lo, hi)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise errors.invalid(f"{what} must be a number or a pair, got "
                                 f"{v!r}")
        lo, hi = v
    else:
        lo, hi = -v, v
    for b in (lo, hi):
        if isinstance(b, bool) or not isinstance(b, (int, float,
                                                     np.floating)):
            raise errors.wrong_type(f"{what} must hold numbers, got {v!r}")
    return float(lo), float(hi)


def _fraction(v, what):
    """A number in [0, 1) (a dropout rate, a validation split)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)):
        raise errors.wrong_type(f"{what} must be a number, got "
                                f"{type(v).__name__}")
    if not 0 <= v < 1:
        raise errors.invalid(f"{what} must lie in [0, 1), got {v}")
    return float(v)


class RandomNormal:
    """Keras' RandomNormal(mean=0.0, stddev=0.05) initializer: N(0, stddev),
    not truncated. Layers whose options carry a stddev (depthwise_conv2d,
    conv2d_transpose, separable_conv2d) take any stddev; the string "random_normal" means the
    default 0.05 everywhere."""

    def __init__(self, mean=0.0, stddev=0.05):
        if mean != 0:
            raise errors.invalid(f"RandomNormal: mean must be 0, got {mean!r}")
        if isinstance(stddev, bool) or not isinstance(
                stddev, (int, float, np.floating)) or not stddev > 0 or \
                not np.isfinite(stddev):
            raise errors.invalid(f"RandomNormal: stddev must be a positive "
                                 f"number, got {stddev!r}")
        self.stddev = float(stddev)

    def __repr__(self):
        return f"RandomNormal(stddev={self.stddev})"


def _init_sd(value, what):
    """An initializer as (nn_initializer, stddev): a name of INITIALIZERS
    or a RandomNormal."""
    if isinstance(value, RandomNormal):
        return _lib.INIT_RANDOM_NORMAL, value.stddev
    return _choice(INITIALIZERS, value, what), 0.0


def _number(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                 np.floating)):
        raise errors.wrong_type(f"{what} must be a number, got "
                                f"{type(v).__name__}")
    return float(v)


def _axes_mask(axes, what):
    """Keras' shared_axes (None, an int or a list of ints >= 1, the batch
    axis being 0) as nn_prelu_opts' bit mask."""
    if axes is None:
        return 0
    if not isinstance(axes, (tuple, list)):
        axes = [axes]
    mask = 0
    for a in axes:
        a = _int(a, what)
        if a > 31:
            raise errors.invalid(f"{what}: axis {a} does not exist")
        mask |= 1 << a
    return mask


def _sides(v, what):
    """Keras' ZeroPadding2D/Cropping2D argument: n, (h, w) or
    ((top, bottom), (left, right)); returns [top, bottom, left, right]."""
    if isinstance(v, (tuple, list)) and len(v) == 2 and \
            isinstance(v[0], (tuple, list)):
        (t, b), (le, r) = v
    else:
        h, w = v if isinstance(v, (tuple, list)) else (v, v)
        t = b = h
        le = r = w
    return [_int(x, what, lo=0) for x in (t, b, le, r)]


def _opts_name(name):
    if name is not None and not isinstance(name, str):
        raise errors.wrong_type(f"name must be a str, got "
                                f"{type(name).__name__}")
    return _lib.encode(name)


# ------------------------------------------------------------------- layers
class Layer:
    """A layer of a Model (owned by it: layers are never freed alone)."""

    def __init__(self, model, ptr):
        self._model = model
        self._raw = ctypes.cast(ptr, ctypes.c_void_p).value

    @property
    def _ptr(self):
        self._model._ptr  # raises once the model is closed
        return ctypes.cast(self._raw, _lib.LayerP)

    @property
    def model(self):
        return self._model

    @property
    def name(self):
        return _lib.decode(lib.nn_layer_name(self._ptr))

    @property
    def type(self):
        """Keras class name: "Conv2D", "MaxPooling2D", ..."""
        return _lib.decode(lib.nn_layer_type(self._ptr))

    @property
    def output_shape(self):
        """Per-sample output shape (batch axis excluded)."""
        buf = (ctypes.c_int * _lib.MAX_RANK)()
        rank = lib.nn_layer_output_shape(self._ptr, buf, _lib.MAX_RANK)
        if rank < 0:
            raise errors.from_status(rank, _lib.last_error(),
                                     "nn_layer_output_shape")
        return tuple(buf[:rank])

    @property
    def num_params(self):
        return int(lib.nn_layer_num_params(self._ptr))

    @property
    def inputs(self):
        p = self._ptr
        return [Layer(self._model, lib.nn_layer_input(p, i))
                for i in range(lib.nn_layer_num_inputs(p))]

    @property
    def weight_names(self):
        p = self._ptr
        return [_lib.decode(lib.nn_layer_weight_name(p, i))
                for i in range(lib.nn_layer_num_weights(p))]

    def _tensor_view(self, getter, i):
        t = getter(self._ptr, i)
        if not t:
            return None
        return view(lib.nn_tensor_data(t), tensor_shape(t), self._model._h)

    @property
    def weights(self):
        """Parameters in Keras order (kernel, bias) as writable numpy views
        of the model's memory: writing to them changes the weights."""
        n = lib.nn_layer_num_weights(self._ptr)
        return [self._tensor_view(lib.nn_layer_weight, i) for i in range(n)]

    @property
    def grads(self):
        """Gradients of the loss w.r.t. the parameters after the last
        train_batch/backward, as views (None before any)."""
        n = lib.nn_layer_num_weights(self._ptr)
        return [self._tensor_view(lib.nn_layer_weight_grad, i)
                for i in range(n)]

    def weight(self, name):
        """One parameter by name ("kernel", "bias")."""
        names = self.weight_names
        if name not in names:
            raise KeyError(f"layer {self.name!r} has no weight {name!r} "
                           f"(has {names})")
        return self.weights[names.index(name)]

    def grad(self, name):
        names = self.weight_names
        if name not in names:
            raise KeyError(f"layer {self.name!r} has no weight {name!r}")
        return self.grads[names.index(name)]

    def set_weights(self, values):
        """Copies arrays into the parameters (shapes must match)."""
        ws = self.weights
        if len(values) != len(ws):
            raise errors.invalid(f"layer {self.name!r} has {len(ws)} "
                                 f"weights, got {len(values)}")
        for w, v in zip(ws, values):
            v = np.asarray(v)
            if v.shape != w.shape:
                raise errors.wrong_shape(f"layer {self.name!r}: weight shape "
                                         f"{v.shape}, expected {w.shape}")
            w[...] = v

    @property
    def trainable(self):
        """False once frozen: no updates, counted as non-trainable; a
        frozen BatchNormalization runs in inference mode."""
        return bool(lib.nn_layer_trainable(self._ptr))

    @trainable.setter
    def trainable(self, value):
        lib.nn_layer_set_trainable(self._ptr, int(bool(value)))

    @property
    def receptive_field(self):
        """(rows, cols, jump_h, jump_w) of the model input that one output
        position sees, and the stride product."""
        v = [ctypes.c_int() for _ in range(4)]
        lib.nn_layer_receptive_field(self._ptr, *[ctypes.byref(i) for i in v])
        return tuple(i.value for i in v)

    def __eq__(self, other):
        return isinstance(other, Layer) and other._raw == self._raw

    def __hash__(self):
        return hash(self._raw)

    def __repr__(self):
        if self._model.closed:
            return "<libnn.Layer of a closed model>"
        return (f"<libnn.Layer {self.name!r} ({self.type}) "
                f"output {self.output_shape}>")


# ------------------------------------------------------------------ progress
class Progress:
    """What a fit callback receives (a copy of nn_progress)."""

    __slots__ = ("event", "epoch", "epochs", "batch", "batches",
                 "samples_seen", "loss", "accuracy", "val_loss",
                 "val_accuracy", "elapsed_s", "images_per_s", "iou",
                 "mean_iou", "val_iou", "val_mean_iou")

    def __init__(self, p):
        self.event = ("batch_end" if p.event == _lib.PROGRESS_BATCH_END
                      else "epoch_end")
        for k in self.__slots__[1:]:
            setattr(self, k, getattr(p, k))

    def __repr__(self):
        return "Progress(" + ", ".join(f"{k}={getattr(self, k)!r}"
                                       for k in self.__slots__) + ")"


# -------------------------------------------------------------------- model
class Model:
    """A libnn model: a graph of layers built with Keras-like calls.

    >>> m = Model(seed=42)
    >>> x = m.input((28, 28, 1))
    >>> x = m.conv2d(x, 32, 3, activation="relu")
    >>> x = m.maxpool2d(x, 2)
    >>> x = m.flatten(x)
    >>> x = m.dense(x, 10, activation="softmax")
    >>> m.compile(Adam(), "categorical_crossentropy")
    """

    def __init__(self, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise errors.wrong_type(f"seed must be an int, got "
                                    f"{type(seed).__name__}")
        if not 0 <= int(seed) < 2**64:
            raise errors.invalid(f"seed {seed} outside [0, 2**64)")
        self._init(lib.nn_model_create(int(seed)))

    def _init(self, ptr):
        self._h = Handle(ptr, lib.nn_model_free)
        self._input = None
        self._output = None
        self._loss = None
        self._optimizer = None
        self._metrics = []

    # ---- lifetime
    @property
    def _ptr(self):
        h = getattr(self, "_h", None)
        if not h:
            raise errors.StateError("the model is closed")
        return h.ptr

    @property
    def closed(self):
        return not getattr(self, "_h", None)

    def close(self):
        """Releases the model. Weight views still alive keep the memory
        until they go; everything else about the model raises afterwards."""
        h = getattr(self, "_h", None)
        self._h = Handle(None, None)
        del h  # freed now unless a view still refers to it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- building
    def _layer(self, x, what):
        if not isinstance(x, Layer):
            raise errors.wrong_type(f"{what}: input must be a libnn.Layer, "
                                    f"got {type(x).__name__}")
        if x._model is not self:
            raise errors.invalid(f"{what}: the input layer belongs to "
                                 f"another model")
        return x._ptr

    def _added(self, ptr):
        layer = Layer(self, ptr)
        self._output = layer
        return layer

    def input(self, shape, name=None):
        """Input of per-sample `shape` ((h, w, c) for images)."""
        shape = _shape(shape)
        if len(shape) > _lib.MAX_RANK - 1:
            raise errors.invalid(f"input rank {len(shape)} is too large "
                                 f"(at most {_lib.MAX_RANK - 1})")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        dims = (ctypes.c_int * len(shape))(*shape)
        layer = self._added(lib.nn_input(self._ptr, len(shape), dims, o))
        self._input = layer
        return layer

    def conv2d(self, x, filters, kernel_size, strides=1, padding="valid",
               activation=None, use_bias=True, kernel_initializer=None,
               bias_initializer=None, name=None):
        """Conv2D; kernel layout [kh, kw, in, filters]. padding "same" pads
        like Keras (the extra row/column at the bottom/right)."""
        p = self._layer(x, "conv2d")
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(strides, "strides")
        o = _lib.make_opts(
            _lib.nn_conv2d_opts, name=_opts_name(name), stride_h=sh,
            stride_w=sw, padding=_choice(PADDINGS, padding, "padding"),
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            kernel_init=_choice(INITIALIZERS, kernel_initializer,
                                "kernel_initializer"),
            bias_init=_choice(INITIALIZERS, bias_initializer,
                              "bias_initializer"))
        return self._added(lib.nn_conv2d(self._ptr, p,
                                         _int(filters, "filters"), kh, kw, o))

    def _pool(self, fn, what, x, pool_size, strides, padding, name):
        p = self._layer(x, what)
        ph, pw = _pair(pool_size, "pool_size")
        sh, sw = (0, 0) if strides is None else _pair(strides, "strides")
        o = _lib.make_opts(_lib.nn_pool2d_opts, name=_opts_name(name),
                           stride_h=sh, stride_w=sw,
                           padding=_choice(PADDINGS, padding, "padding"))
        return self._added(fn(self._ptr, p, ph, pw, o))

    def maxpool2d(self, x, pool_size=2, strides=None, padding="valid",
                  name=None):
        """MaxPooling2D; strides default to the pool size."""
        return self._pool(lib.nn_maxpool2d, "maxpool2d", x, pool_size,
                          strides, padding, name)

    def avgpool2d(self, x, pool_size=2, strides=None, padding="valid",
                  name=None):
        """AveragePooling2D; with "same" the padded cells are not counted."""
        return self._pool(lib.nn_avgpool2d, "avgpool2d", x, pool_size,
                          strides, padding, name)

    def _simple(self, fn, what, x, name):
        p = self._layer(x, what)
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(fn(self._ptr, p, o))

    def flatten(self, x, name=None):
        """Flatten in NHWC order (as Keras with channels_last)."""
        return self._simple(lib.nn_flatten, "flatten", x, name)

    def relu(self, x, name=None):
        return self._simple(lib.nn_relu, "relu", x, name)

    def sigmoid(self, x, name=None):
        return self._simple(lib.nn_sigmoid, "sigmoid", x, name)

    def softmax(self, x, name=None):
        """Softmax over the last axis."""
        return self._simple(lib.nn_softmax, "softmax", x, name)

    def dropout(self, x, rate, name=None):
        """Inverted dropout; identity in inference."""
        p = self._layer(x, "dropout")
        rate = _fraction(rate, "dropout rate")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_dropout(self._ptr, p, rate, o))

    def dense(self, x, units, activation=None, use_bias=True,
              kernel_initializer=None, bias_initializer=None, name=None):
        """Dense over the last axis; kernel layout [in, units]."""
        p = self._layer(x, "dense")
        o = _lib.make_opts(
            _lib.nn_dense_opts, name=_opts_name(name),
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            kernel_init=_choice(INITIALIZERS, kernel_initializer,
                                "kernel_initializer"),
            bias_init=_choice(INITIALIZERS, bias_initializer,
                              "bias_initializer"))
        return self._added(lib.nn_dense(self._ptr, p, _int(units, "units"),
                                        o))

    # ---- augmentation (active in training only; docs/augmentation.md)
    def random_flip(self, x, mode="horizontal_and_vertical", name=None):
        """RandomFlip: each axis of the mode flipped with probability 1/2
        per image."""
        p = self._layer(x, "random_flip")
        code = _choice(FLIP_MODES, mode, "mode")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_random_flip(self._ptr, p, code, o))

    def _aug_opts(self, name, fill_mode, interpolation, fill_value):
        return _lib.make_opts(
            _lib.nn_augment_opts, name=_opts_name(name),
            fill_mode=_choice(FILL_MODES, fill_mode, "fill_mode"),
            interpolation=_choice(INTERPOLATIONS, interpolation,
                                  "interpolation"),
            fill_value=float(fill_value))

    def random_rotation(self, x, factor, fill_mode="reflect",
                        interpolation="bilinear", fill_value=0.0,
                        name=None):
        """RandomRotation(factor): angle uniform in [lo, hi] * 2 pi, with
        (lo, hi) = (-factor, factor) or the pair given."""
        p = self._layer(x, "random_rotation")
        lo, hi = _factor(factor, "factor")
        o = self._aug_opts(name, fill_mode, interpolation, fill_value)
        return self._added(lib.nn_random_rotation(self._ptr, p, lo, hi, o))

    def random_translation(self, x, height_factor, width_factor,
                           fill_mode="reflect", interpolation="bilinear",
                           fill_value=0.0, name=None):
        """RandomTranslation: shifts by fractions of the height and width
        (a number f means (-f, f))."""
        p = self._layer(x, "random_translation")
        hl, hh = _factor(height_factor, "height_factor")
        wl, wh = _factor(width_factor, "width_factor")
        o = self._aug_opts(name, fill_mode, interpolation, fill_value)
        return self._added(lib.nn_random_translation(self._ptr, p, hl, hh,
                                                     wl, wh, o))

    def random_zoom(self, x, height_factor, width_factor=None,
                    fill_mode="reflect", interpolation="bilinear",
                    fill_value=0.0, name=None):
        """RandomZoom: zoom 1 + factor per axis (negative zooms in);
        width_factor None zooms both axes alike."""
        p = self._layer(x, "random_zoom")
        hl, hh = _factor(height_factor, "height_factor")
        if width_factor is None:
            wl = wh = float("nan")
        else:
            wl, wh = _factor(width_factor, "width_factor")
        o = self._aug_opts(name, fill_mode, interpolation, fill_value)
        return self._added(lib.nn_random_zoom(self._ptr, p, hl, hh, wl, wh,
                                              o))

    def random_contrast(self, x, factor, name=None):
        """RandomContrast: per image, (x - mean) * f + mean per channel,
        f uniform in [1 - lower, 1 + upper] (a number means lower = upper).
        """
        p = self._layer(x, "random_contrast")
        if isinstance(factor, (tuple, list)):
            lo, hi = _factor(factor, "factor")
        else:
            lo = hi = _factor(factor, "factor")[1]
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_random_contrast(self._ptr, p, lo, hi, o))

    # ---- graph-model layers
    def batchnorm(self, x, momentum=0.99, epsilon=1e-3, center=True,
                  scale=True, name=None):
        """BatchNormalization over the last axis (Keras momentum: PyTorch's
        momentum m is 1 - m here). Weights: gamma, beta, moving_mean,
        moving_variance."""
        p = self._layer(x, "batchnorm")
        o = _lib.make_opts(_lib.nn_batchnorm_opts, name=_opts_name(name),
                           momentum=float(momentum), epsilon=float(epsilon),
                           center=int(bool(center)), scale=int(bool(scale)))
        return self._added(lib.nn_batchnorm(self._ptr, p, o))

    def zeropad2d(self, x, padding=1, name=None):
        """ZeroPadding2D; padding as Keras: n, (h, w) or
        ((top, bottom), (left, right))."""
        p = self._layer(x, "zeropad2d")
        vals = _sides(padding, "padding")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_zeropad2d(self._ptr, p, *vals, o))

    def _merge(self, fn, what, inputs, name):
        if not isinstance(inputs, (tuple, list)):
            raise errors.wrong_type(f"{what}: inputs must be a list of "
                                    f"layers")
        arr = (_lib.LayerP * len(inputs))(
            *[self._layer(x, what) for x in inputs])
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(fn(self._ptr, len(inputs), arr, o))

    def add(self, inputs, name=None):
        """Add: element-wise sum of equal shapes."""
        return self._merge(lib.nn_add, "add", inputs, name)

    def concatenate(self, inputs, name=None):
        """Concatenate along the last (channel) axis."""
        return self._merge(lib.nn_concatenate, "concatenate", inputs, name)

    def global_avgpool2d(self, x, name=None):
        """GlobalAveragePooling2D: [H, W, C] -> [C]."""
        return self._simple(lib.nn_global_avgpool2d, "global_avgpool2d", x,
                            name)

    def resizing(self, x, height, width, interpolation="bilinear",
                 name=None):
        """Resizing with half-pixel centers (tf.image.resize, PyTorch
        interpolate(align_corners=False))."""
        p = self._layer(x, "resizing")
        o = _lib.make_opts(_lib.nn_resizing_opts, name=_opts_name(name),
                           interpolation=_choice(INTERPOLATIONS,
                                                 interpolation,
                                                 "interpolation"))
        return self._added(lib.nn_resizing(self._ptr, p,
                                           _int(height, "height"),
                                           _int(width, "width"), o))

    def repeat_channels(self, x, times, name=None):
        """Each channel repeated `times` times (grayscale -> RGB)."""
        p = self._layer(x, "repeat_channels")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_repeat_channels(self._ptr, p,
                                                  _int(times, "times"), o))

    def locally_connected2d(self, x, filters, kernel_size, strides=1,
                            padding="valid", activation=None, use_bias=True,
                            kernel_initializer=None, bias_initializer=None,
                            name=None):
        """LocallyConnected2D (VALID only): kernel [oh*ow, kh*kw*in,
        filters], bias [oh, ow, filters]."""
        p = self._layer(x, "locally_connected2d")
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(strides, "strides")
        o = _lib.make_opts(
            _lib.nn_conv2d_opts, name=_opts_name(name), stride_h=sh,
            stride_w=sw, padding=_choice(PADDINGS, padding, "padding"),
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            kernel_init=_choice(INITIALIZERS, kernel_initializer,
                                "kernel_initializer"),
            bias_init=_choice(INITIALIZERS, bias_initializer,
                              "bias_initializer"))
        return self._added(lib.nn_locally_connected2d(
            self._ptr, p, _int(filters, "filters"), kh, kw, o))

    # ---- activation layers
    def tanh(self, x, name=None):
        """Keras' Activation("tanh")."""
        return self._simple(lib.nn_tanh, "tanh", x, name)

    def leaky_relu(self, x, alpha=0.3, name=None):
        """LeakyReLU: x > 0 ? x : alpha * x; alpha >= 0 (Keras 2.x
        `alpha`, Keras 3 `negative_slope`, default 0.3)."""
        p = self._layer(x, "leaky_relu")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_leaky_relu(
            self._ptr, p, _number(alpha, "alpha"), o))

    def elu(self, x, alpha=1.0, name=None):
        """ELU: x > 0 ? x : alpha * (exp(x) - 1)."""
        p = self._layer(x, "elu")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_elu(self._ptr, p,
                                      _number(alpha, "alpha"), o))

    def prelu(self, x, alpha_initializer="zeros", shared_axes=None,
              name=None):
        """PReLU with a learned "alpha" of the input's shape, 1 on the
        shared_axes (Keras' axes: 1 is the first after the batch; [1, 2]
        on an image gives one alpha per channel). alpha_initializer: an
        initializer name or a number, the constant every alpha starts at
        (PyTorch starts at 0.25)."""
        p = self._layer(x, "prelu")
        if isinstance(alpha_initializer, str) or alpha_initializer is None:
            init = _choice(INITIALIZERS, alpha_initializer or "zeros",
                           "alpha_initializer")
            value = 0.0
        else:
            init = _lib.INIT_DEFAULT
            value = _number(alpha_initializer, "alpha_initializer")
        o = _lib.make_opts(_lib.nn_prelu_opts, name=_opts_name(name),
                           shared_axes=_axes_mask(shared_axes,
                                                  "shared_axes"),
                           alpha_init=init, alpha_init_value=value)
        return self._added(lib.nn_prelu(self._ptr, p, o))

    # ---- segmentation layers
    def relu6(self, x, name=None):
        """ReLU(max_value=6): min(max(x, 0), 6) (Keras type "ReLU")."""
        return self._simple(lib.nn_relu6, "relu6", x, name)

    def depthwise_conv2d(self, x, kernel_size, strides=1, padding="valid",
                         depth_multiplier=1, activation=None, use_bias=True,
                         depthwise_initializer=None, bias_initializer=None,
                         name=None):
        """DepthwiseConv2D: kernel [kh, kw, in, depth_multiplier]; output
        channel c * depth_multiplier + k reads input channel c. Initializers
        take a name or a RandomNormal."""
        p = self._layer(x, "depthwise_conv2d")
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(strides, "strides")
        ki, ks = _init_sd(depthwise_initializer, "depthwise_initializer")
        bi, bs = _init_sd(bias_initializer, "bias_initializer")
        o = _lib.make_opts(
            _lib.nn_depthwise_conv2d_opts, name=_opts_name(name),
            stride_h=sh, stride_w=sw,
            padding=_choice(PADDINGS, padding, "padding"),
            depth_multiplier=_int(depth_multiplier, "depth_multiplier"),
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            kernel_init=ki, bias_init=bi, kernel_init_stddev=ks,
            bias_init_stddev=bs)
        return self._added(lib.nn_depthwise_conv2d(self._ptr, p, kh, kw, o))

    def conv2d_transpose(self, x, filters, kernel_size, strides=1,
                         padding="valid", output_padding=None,
                         activation=None, use_bias=True,
                         kernel_initializer=None, bias_initializer=None,
                         name=None):
        """Conv2DTranspose: kernel [kh, kw, filters, in]; output size as
        Keras' (output_padding None, an int or a pair, each < its stride).
        Initializers take a name or a RandomNormal."""
        p = self._layer(x, "conv2d_transpose")
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(strides, "strides")
        if output_padding is None:
            oph = opw = -1
        elif isinstance(output_padding, (tuple, list)):
            if len(output_padding) != 2:
                raise ValueError("output_padding must be None, an int or a "
                                 f"pair, got {output_padding!r}")
            oph, opw = (_int(v, "output_padding", lo=0)
                        for v in output_padding)
        else:
            oph = opw = _int(output_padding, "output_padding", lo=0)
        ki, ks = _init_sd(kernel_initializer, "kernel_initializer")
        bi, bs = _init_sd(bias_initializer, "bias_initializer")
        o = _lib.make_opts(
            _lib.nn_conv2d_transpose_opts, name=_opts_name(name),
            stride_h=sh, stride_w=sw,
            padding=_choice(PADDINGS, padding, "padding"),
            output_padding_h=oph, output_padding_w=opw,
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            kernel_init=ki, bias_init=bi, kernel_init_stddev=ks,
            bias_init_stddev=bs)
        return self._added(lib.nn_conv2d_transpose(
            self._ptr, p, _int(filters, "filters"), kh, kw, o))

    def separable_conv2d(self, x, filters, kernel_size, strides=1,
                         padding="valid", depth_multiplier=1,
                         activation=None, use_bias=True,
                         depthwise_initializer=None,
                         pointwise_initializer=None, bias_initializer=None,
                         name=None):
        """SeparableConv2D: depthwise (no bias) then a 1x1 convolution to
        `filters` with the bias and activation. Weights depthwise_kernel
        [kh, kw, in, mult], pointwise_kernel [1, 1, in * mult, filters],
        bias."""
        p = self._layer(x, "separable_conv2d")
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(strides, "strides")
        di, ds = _init_sd(depthwise_initializer, "depthwise_initializer")
        pi, ps = _init_sd(pointwise_initializer, "pointwise_initializer")
        bi, bs = _init_sd(bias_initializer, "bias_initializer")
        o = _lib.make_opts(
            _lib.nn_separable_conv2d_opts, name=_opts_name(name),
            stride_h=sh, stride_w=sw,
            padding=_choice(PADDINGS, padding, "padding"),
            depth_multiplier=_int(depth_multiplier, "depth_multiplier"),
            use_bias=int(bool(use_bias)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            depthwise_init=di, pointwise_init=pi, bias_init=bi,
            depthwise_init_stddev=ds, pointwise_init_stddev=ps,
            bias_init_stddev=bs)
        return self._added(lib.nn_separable_conv2d(
            self._ptr, p, _int(filters, "filters"), kh, kw, o))

    def upsampling2d(self, x, size=2, interpolation="nearest", name=None):
        """UpSampling2D(size): [H, W, C] -> [H * sh, W * sw, C]; nearest
        repeats pixels, bilinear has half-pixel centers (Keras, PyTorch's
        interpolate(align_corners=False))."""
        p = self._layer(x, "upsampling2d")
        sh, sw = _pair(size, "size")
        o = _lib.make_opts(_lib.nn_upsampling2d_opts, name=_opts_name(name),
                           interpolation=_choice(INTERPOLATIONS,
                                                 interpolation,
                                                 "interpolation"))
        return self._added(lib.nn_upsampling2d(self._ptr, p, sh, sw, o))

    def cropping2d(self, x, cropping=((0, 0), (0, 0)), name=None):
        """Cropping2D; cropping as Keras: n, (h, w) or
        ((top, bottom), (left, right))."""
        p = self._layer(x, "cropping2d")
        vals = _sides(cropping, "cropping")
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_cropping2d(self._ptr, p, *vals, o))

    def set_trainable(self, trainable):
        """Freezes (False) or unfreezes (True) every layer."""
        lib.nn_model_set_trainable(self._ptr, int(bool(trainable)))

    def apply(self, x, inner, output=None, name=None):
        """Uses model `inner` as a block fed by `x`, sharing its weights
        (Keras: calling a model as a layer). `output` (a Layer of inner)
        keeps only the layers up to it."""
        p = self._layer(x, "apply")
        if not isinstance(inner, Model):
            raise errors.wrong_type("apply: inner must be a libnn.Model")
        out_ptr = None
        if output is not None:
            if not isinstance(output, Layer) or output._model is not inner:
                raise errors.invalid("apply: output must be a layer of "
                                     "inner")
            out_ptr = output._ptr
        o = _lib.make_opts(_lib.nn_layer_opts, name=_opts_name(name))
        return self._added(lib.nn_model_apply(self._ptr, p, inner._ptr,
                                              out_ptr, o))

    @property
    def name(self):
        return lib.nn_model_name(self._ptr).decode()

    @name.setter
    def name(self, value):
        lib.nn_model_set_name(self._ptr, _lib.encode(value))

    def set_output(self, layer):
        """Marks the output layer (default: the last layer added)."""
        lib.nn_model_set_output(self._ptr, self._layer(layer, "set_output"))
        self._output = layer

    # ---- introspection
    @property
    def layers(self):
        p = self._ptr
        return [Layer(self, lib.nn_model_layer(p, i))
                for i in range(lib.nn_model_num_layers(p))]

    def layer(self, key):
        """A layer by name or by index."""
        if isinstance(key, str):
            ptr = lib.nn_model_find_layer(self._ptr, _lib.encode(key))
            if not ptr:
                raise KeyError(f"no layer named {key!r}")
            return Layer(self, ptr)
        n = lib.nn_model_num_layers(self._ptr)
        i = _int(key, "layer index", lo=-n)
        if i < 0:
            i += n
        if i >= n:
            raise IndexError(f"layer index {key} of {n} layers")
        return Layer(self, lib.nn_model_layer(self._ptr, i))

    @property
    def input_layer(self):
        self._ptr
        if self._input is None:
            raise errors.StateError("the model has no input layer")
        return self._input

    @property
    def output_layer(self):
        self._ptr
        if self._output is None:
            raise errors.StateError("the model has no layers")
        return self._output

    @property
    def input_shape(self):
        return self.input_layer.output_shape

    @property
    def output_shape(self):
        return self.output_layer.output_shape

    @property
    def num_params(self):
        return int(lib.nn_model_num_params(self._ptr))

    @property
    def num_trainable_params(self):
        return int(lib.nn_model_num_trainable_params(self._ptr))

    def summary(self):
        """The Keras-style summary table as a str."""
        need = ctypes.c_size_t(0)
        lib.nn_model_summary(self._ptr, None, 0, ctypes.byref(need))
        buf = ctypes.create_string_buffer(max(need.value, 1))
        lib.nn_model_summary(self._ptr, buf, len(buf), None)
        return buf.value.decode("utf-8", "replace")

    def __repr__(self):
        if self.closed:
            return "<libnn.Model closed>"
        return (f"<libnn.Model {lib.nn_model_num_layers(self._ptr)} layers, "
                f"{self.num_params} params>")

    # ---- compile
    def compile(self, optimizer="adam", loss="categorical_crossentropy",
                from_logits=False, loss_weights=None, smooth=1.0, eps=1e-7,
                reduction="batch", sparse_labels=False, class_weights=None,
                pos_weight=1.0, weight_norm="samples", metrics=None):
        """Attaches an optimizer (Adam(...), SGD(...) or a name) and a loss
        ("categorical_crossentropy", "sparse_categorical_crossentropy",
        "binary_crossentropy", "iou", "dice"), or a weighted sum of losses:
        a list of names with loss_weights (default 1 each) or a dict
        {name: weight}, e.g. {"binary_crossentropy": 1, "iou": 1}.
        smooth, eps, reduction ("batch" or "image") and sparse_labels
        configure IoU and Dice (docs/losses.md). metrics, as Keras', names
        what fit records besides the loss: "accuracy" (always recorded),
        and "iou", "mean_iou", "dice", "pixel_accuracy" (any of them turns
        on fit's segmentation metrics); other names are refused.

        Weighted cross-entropy (docs/losses.md): class_weights, one weight
        per class (a list, or a dict {class: weight} over every class), for
        (sparse) categorical cross-entropy, as CrossEntropyLoss(weight=);
        pos_weight for binary cross-entropy, as BCEWithLogitsLoss;
        weight_norm "samples" (Keras: the weighted sum over the number of
        samples) or "sum" (over the sum of the weights, PyTorch's mean)."""
        opt = optimizers.get(optimizer)
        terms = _loss_terms(loss, loss_weights)
        codes = [_choice(LOSSES, name, "loss") for name, _ in terms]
        wanted = _metrics(metrics)
        m = self._ptr
        cw = _weights_array(class_weights, "class_weights")
        o = _lib.make_opts(_lib.nn_loss_opts,
                           from_logits=int(bool(from_logits)),
                           smooth=float(smooth), eps=float(eps),
                           reduction=_choice(REDUCTIONS, reduction,
                                             "reduction"),
                           sparse_labels=int(bool(sparse_labels)),
                           pos_weight=float(pos_weight),
                           weight_norm=_choice(WEIGHT_NORMS, weight_norm,
                                               "weight_norm"))
        if cw is not None:  # the library copies it
            o.class_weights = cw.ctypes.data_as(_lib.FloatP)
            o.num_class_weights = cw.size
        optp = opt._create()
        try:
            if len(terms) == 1 and terms[0][1] == 1.0:
                lib.nn_model_compile(m, optp, codes[0], o)
            else:
                n = len(terms)
                lib.nn_model_compile_weighted(
                    m, optp, n, (ctypes.c_int * n)(*codes),
                    (ctypes.c_float * n)(*(w for _, w in terms)), o)
        except BaseException:
            lib.nn_optimizer_free(optp)  # on failure the caller owns it
            raise
        self._optimizer = opt
        self._set_loss(terms)
        self._metrics = wanted

    def _set_loss(self, terms):
        self._loss = (terms[0][0] if len(terms) == 1 and terms[0][1] == 1.0
                      else dict(terms))

    def _adopt_loss(self):
        """The loss a loaded model's file stored (nn_model_loss)."""
        n = lib.nn_model_loss(self._ptr, None, None, 0, None)
        if n <= 0:
            return
        kinds, ws = (ctypes.c_int * n)(), (ctypes.c_float * n)()
        lib.nn_model_loss(self._ptr, kinds, ws, n, None)
        names = {code: name for name, code in LOSSES.items()}
        self._set_loss([(names[k], float(w)) for k, w in zip(kinds, ws)])

    @property
    def optimizer(self):
        """The model's optimizer (libnn.Optimizer: learning_rate,
        iterations, config), compiled or loaded; None without one."""
        if not lib.nn_model_optimizer(self._ptr):
            return None
        return optimizers.Optimizer(self, self._optimizer)

    @property
    def loss(self):
        """The compiled loss, or the one a loaded model's file stored: a
        name, or a dict {name: weight} for a sum."""
        return self._loss

    @property
    def metrics(self):
        """The metrics compile() received, by their canonical names."""
        return list(self._metrics)

    def _opt(self):
        opt = self.optimizer
        if opt is None:
            raise errors.StateError(
                "the model has no optimizer: compile() it, or load a model "
                "saved with save(path, optimizer=True)")
        return opt

    @property
    def iterations(self):
        """Optimizer steps taken so far."""
        return self._opt().iterations

    def set_learning_rate(self, lr):
        """The same as ``model.optimizer.learning_rate = lr``."""
        self._opt().learning_rate = lr

    # ---- data checks: types here, shapes in the library (its messages
    # name the argument, both shapes and the layers involved)
    def _x(self, x, what="x"):
        return wrap(x, what)

    def _y(self, y, n, what="y"):
        return wrap(y, what)

    def _xy(self, x, y, what=""):
        tx = self._x(x, what + "x")
        return tx, self._y(y, tx.shape[0], what + "y")

    # ---- training and inference
    def train_batch(self, x, y):
        """One optimizer step on a batch; returns (loss, accuracy)."""
        tx, ty = self._xy(x, y)
        loss, acc = ctypes.c_float(), ctypes.c_float()
        lib.nn_model_train_batch(self._ptr, tx._ptr, ty._ptr,
                                 ctypes.byref(loss), ctypes.byref(acc))
        return float(loss.value), float(acc.value)

    def backward(self, x, y, training=False, want_dx=True):
        """Forward + loss + backward without an update. Returns (loss, dx);
        dx is the gradient w.r.t. x (None unless want_dx). Parameter
        gradients are then in layer.grads."""
        tx, ty = self._xy(x, y)
        loss = ctypes.c_float()
        dx = tdx = None
        if want_dx:
            dx = np.zeros(tx.shape, np.float32)
            tdx = wrap(dx, "dx", writable=True)
        lib.nn_model_backward(self._ptr, tx._ptr, ty._ptr, int(bool(training)),
                              ctypes.byref(loss),
                              tdx._ptr if tdx is not None else None)
        return float(loss.value), dx

    def apply_gradients(self):
        """One optimizer step with the current gradients."""
        lib.nn_model_apply_gradients(self._ptr)

    def evaluate(self, x, y, batch_size=32):
        """(loss, accuracy) over (x, y) in inference mode."""
        tx, ty = self._xy(x, y)
        loss, acc = ctypes.c_float(), ctypes.c_float()
        lib.nn_model_evaluate(self._ptr, tx._ptr, ty._ptr,
                              _int(batch_size, "batch_size"),
                              ctypes.byref(loss), ctypes.byref(acc))
        return float(loss.value), float(acc.value)

    def evaluate_segmentation(self, x, y, batch_size=32):
        """Thresholded metrics over (x, y) in inference mode, from a
        confusion matrix (Keras MeanIoU semantics; docs/losses.md): a dict
        with loss, iou (classes but 0), mean_iou (every class), dice,
        mean_dice, pixel_accuracy, class_iou and class_dice (lists, NaN for
        a class in neither truth nor prediction) and confusion (the counts,
        [truth, predicted])."""
        tx, ty = self._xy(x, y)
        classes = self.output_shape[-1]
        cm = ConfusionMatrix(classes if classes > 1 else 2)
        loss = ctypes.c_float()
        lib.nn_model_evaluate_confusion(self._ptr, tx._ptr, ty._ptr,
                                        _int(batch_size, "batch_size"),
                                        cm._ptr, ctypes.byref(loss))
        out = cm.summary()
        out["loss"] = float(loss.value)
        cm.close()
        return out

    def evaluate_binary(self, x, y, positive_class=None, negative_class=None,
                        threshold=0.5, batch_size=32):
        """The model as a binary decision (docs/metrics.md): positive is
        class positive_class (default 1; the sigmoid's class for one
        channel), or every class but negative_class (defective = not
        class 0). Returns (report, curve): the decision at `threshold`
        (score >= threshold) as a dict (tp, fp, tn, fn, precision, recall,
        f1, accuracy, roc_auc, average_precision) and the Curve of the
        scores, for threshold_for_recall / _precision."""
        tx, ty = self._xy(x, y)
        bo = _binary_opts(positive_class, negative_class, threshold)
        r = _lib.make_opts(_lib.nn_binary_report)
        c = _lib.CurveP()
        lib.nn_model_evaluate_binary(self._ptr, tx._ptr, ty._ptr,
                                     _int(batch_size, "batch_size"),
                                     ctypes.byref(bo), ctypes.byref(r),
                                     ctypes.byref(c))
        return report_dict(r), Curve(_ptr=c)

    def predict(self, x, batch_size=32):
        """Inference on x [N, ...]; returns a new float32 array."""
        tx = self._x(x)
        out = np.empty((tx.shape[0],) + self.output_shape, np.float32)
        tout = wrap(out, "out", writable=True)  # alive across the call
        lib.nn_model_predict(self._ptr, tx._ptr, tout._ptr,
                             _int(batch_size, "batch_size"))
        return out

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None,
            shuffle=True, callback=None, record_grad_norm=0,
            stop_on_nonfinite=False, segmentation_metrics=None,
            class_weight=None, sample_weight=None, decision_metrics=None,
            verbose="auto", validation_split=0.0, parallel=None):
        """Trains for `epochs` and returns a History (Keras'): its
        ``history`` dict holds per epoch loss, accuracy, (val_loss,
        val_accuracy,) seconds; the History also reads as that dict.

        validation_split (0 <= f < 1) holds out the last fraction of x and
        y, before any shuffling, as validation data (Keras' rule); or give
        validation_data=(x, y), not both.

        verbose: 0 silent; 1 ("auto") Keras' progress output, "Epoch 1/10"
        then "N/N - 5s - loss: ... - accuracy: ... - val_loss: ..." per
        epoch, with a bar that fills as batches go when stdout is a
        terminal; 2 one line per epoch without the bar.

        segmentation_metrics adds iou, mean_iou, dice and pixel_accuracy
        (and their val_ forms with validation data) per epoch; None (the
        default) turns them on when compile's metrics named one.

        class_weight ({class: weight} over every class, or a list) and
        sample_weight ([N]) weigh each training sample's loss, as Keras
        (normalised as compile's weight_norm says). decision_metrics (True,
        or a dict of positive_class / negative_class / threshold, as
        evaluate_binary) adds precision, recall, f1 and roc_auc (and val_)
        per epoch (docs/metrics.md).

        callback(progress) is called after every batch and epoch with a
        Progress; a true return value stops training (the history of the
        finished epochs is returned). An exception raised by the callback
        stops training and propagates.

        record_grad_norm 1 adds grad_norm, grad_norm_max and health (0-3)
        per epoch, 2 also step_loss, step_grad_norm and step_health per
        step; stop_on_nonfinite stops at the first NaN/Inf naming the
        layer (docs/diagnostics.md).

        parallel: a libnn.mpi.Session of this model for a data-parallel
        fit over MPI (docs/mpi.md): batch_size is then per process."""
        verbose = verbosity(verbose)
        if segmentation_metrics is None:
            segmentation_metrics = any(k in _SEG_NAMES for k in self._metrics)
        x, y, validation_data = _split(x, y, validation_data,
                                       validation_split)
        tx, ty = self._xy(x, y)
        o = _lib.make_opts(_lib.nn_fit_opts, epochs=_int(epochs, "epochs"),
                           batch_size=_int(batch_size, "batch_size"),
                           shuffle=int(bool(shuffle)),
                           record_grad_norm=_int(record_grad_norm,
                                                 "record_grad_norm", lo=0),
                           stop_on_nonfinite=int(bool(stop_on_nonfinite)),
                           segmentation_metrics=int(bool(
                               segmentation_metrics)))
        keep = []
        cw = _weights_array(class_weight, "class_weight")
        if cw is not None:
            o.class_weight = cw.ctypes.data_as(_lib.FloatP)
            o.num_class_weight = cw.size
            keep.append(cw)
        if sample_weight is not None:
            sw = np.ascontiguousarray(sample_weight, dtype=np.float32)
            tsw = wrap(sw, "sample_weight", shape=(x.shape[0],))
            o.sample_weight = tsw._ptr
            keep += [sw, tsw]
        if decision_metrics:
            kw = {} if decision_metrics is True else dict(decision_metrics)
            bo = _binary_opts(**kw)
            o.decision_metrics = ctypes.pointer(bo)
            keep.append(bo)
        if parallel is not None:
            parallel._fit_opts(self, o)
            keep.append(parallel)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or \
                    len(validation_data) != 2:
                raise errors.wrong_type("validation_data must be a pair "
                                        "(x, y)")
            vx, vy = self._xy(validation_data[0], validation_data[1], "val_")
            o.val_x, o.val_y = vx._ptr, vy._ptr
            keep += [vx, vy]
        if callback is not None and not callable(callback):
            raise errors.wrong_type("callback must be callable")
        printer = ProgressPrinter(verbose, o.epochs) if verbose else None
        state = {"stopped": False, "error": None}

        def trampoline(p, user):
            try:
                progress = Progress(p.contents)
                if printer is not None:
                    if progress.event == "batch_end":
                        printer.batch(progress)
                    else:
                        printer.epoch_end(progress)
                stop = callback is not None and bool(callback(progress))
            except BaseException as e:  # cannot cross into C
                state["error"] = e
                return 1
            state["stopped"] = state["stopped"] or stop
            return 1 if stop else 0

        if callback is not None or printer is not None:
            o.progress = _lib.nn_progress_fn(trampoline)
            keep.append(o.progress)
        hist = _lib.HistoryP()
        status = lib.nn_model_fit(self._ptr, tx._ptr, ty._ptr, ctypes.byref(o),
                                  ctypes.byref(hist))
        message = _lib.last_error()
        try:
            history = _history_dict(hist, validation_data is not None,
                                    o.record_grad_norm,
                                    o.segmentation_metrics,
                                    bool(decision_metrics))
        finally:
            lib.nn_history_free(hist)
        steps = -(-tx.shape[0] // o.batch_size)
        history = History(history, dict(epochs=o.epochs, steps=steps,
                                        verbose=verbose), self)
        if state["error"] is not None:
            raise state["error"]
        if status == _lib.NN_ERR_CANCELLED and state["stopped"]:
            return history
        if status != _lib.NN_OK:
            raise errors.from_status(status, message, "nn_model_fit")
        return history

    def context(self):
        """A new execution context for concurrent inference."""
        return Context(self)

    # ---- the state as one buffer (data-parallel training, docs/mpi.md)
    def state_size(self, part="all"):
        """Floats in a part of the state: "all" parameters, the
        "trainable" ones (the gradient hook's layout) or the "statistics"
        (BatchNormalization's moving mean and variance)."""
        return int(lib.nn_model_state_size(
            self._ptr, _choice(STATE_PARTS, part, "part")))

    def get_state(self, part="all"):
        """A part of the state as a new float32 array, layers in order,
        each layer's weights in order."""
        n = self.state_size(part)
        a = np.empty(n, dtype=np.float32)
        lib.nn_model_get_state(self._ptr, STATE_PARTS[part.lower()],
                               a.ctypes.data_as(_lib.FloatP), n)
        return a

    def set_state(self, values, part="all"):
        """Overwrites a part of the state from a float32 array of
        state_size(part) values (as get_state returns)."""
        a = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        lib.nn_model_set_state(self._ptr,
                               _choice(STATE_PARTS, part, "part"),
                               a.ctypes.data_as(_lib.FloatP), a.size)

    # ---- inference for a product (docs/inference.md)
    def set_preprocess(self, scale=1.0 / 255.0, mean=(0, 0, 0, 0),
                       std=(1, 1, 1, 1), channel_order="as_model",
                       resize=False, positive_class=None,
                       negative_class=None, threshold=0.5):
        """Stores how 8-bit frames become the model's input, (pixel *
        scale - mean[c]) / std[c] per model channel, and the decision:
        defective where the probability of class positive_class (default
        1), or of every class but negative_class, is >= threshold. save()
        writes them into the file. channel_order "reversed": frames come
        BGR for an RGB model (or the other way round); resize: frames of
        another size are resized to the input (bilinear)."""
        def four(v, what):
            v = [float(x) for x in v]
            if not 1 <= len(v) <= 4:
                raise ValueError(f"{what}: give 1 to 4 values, one per "
                                 f"channel")
            return (ctypes.c_float * 4)(*(v + [0.0 if what == "mean" else
                                               1.0] * (4 - len(v))))
        bo = _binary_opts(positive_class, negative_class, threshold)
        o = _lib.make_opts(
            _lib.nn_preprocess_opts, scale=float(scale),
            mean=four(mean, "mean"), std=four(std, "std"),
            channel_order=_choice(_CHANNEL_ORDERS, channel_order,
                                  "channel_order"),
            resize=1 if resize else 0, positive_class=bo.positive_class,
            threshold=bo.threshold)
        lib.nn_model_set_preprocess(self._ptr, ctypes.byref(o))

    @property
    def preprocess(self):
        """The stored preprocessing and decision as a dict, or None."""
        o = _lib.make_opts(_lib.nn_preprocess_opts)
        status = lib.nn_model_get_preprocess(self._ptr, ctypes.byref(o))
        if status == _lib.NN_ERR_STATE:
            return None
        if status != _lib.NN_OK:
            raise errors.from_status(status, _lib.last_error(),
                                     "nn_model_get_preprocess")
        order = {v: k for k, v in _CHANNEL_ORDERS.items()}
        d = dict(scale=o.scale, mean=list(o.mean), std=list(o.std),
                 channel_order=order[o.channel_order],
                 resize=bool(o.resize), threshold=o.threshold)
        if o.positive_class < 0:
            d["negative_class"] = -1 - o.positive_class
        else:
            d["positive_class"] = o.positive_class
        return d

    # ---- gradient diagnostics (docs/diagnostics.md)
    def set_diagnostics(self, record=True, check_finite=False, **thresholds):
        """Turns the gradient diagnostics on (thresholds: window,
        vanishing_ratio, vanishing_floor, exploding_ratio,
        exploding_ceiling, exploding_growth), or off with record=None."""
        if record is None:
            lib.nn_model_set_diagnostics(self._ptr, None)
            return
        o = _lib.make_opts(_lib.nn_diag_opts, record=int(bool(record)),
                           check_finite=int(bool(check_finite)),
                           **thresholds)
        lib.nn_model_set_diagnostics(self._ptr, o)

    def grad_report(self):
        """The last step's gradient report as a dict: step, global_norm,
        health / window_health (names) with their reasons, and layers: a
        list of dicts (name, grad_norm, weight_norm, update_ratio, and
        per-weight lists of the same)."""
        r = _lib.GradReportP()
        lib.nn_model_grad_report(self._ptr, ctypes.byref(r))
        try:
            return _grad_report_dict(r)
        finally:
            lib.nn_grad_report_free(r)

    def grad_summary(self):
        """The last gradient report as a table (str)."""
        need = ctypes.c_size_t(0)
        lib.nn_model_grad_summary(self._ptr, None, 0, ctypes.byref(need))
        buf = ctypes.create_string_buffer(max(need.value, 1))
        lib.nn_model_grad_summary(self._ptr, buf, len(buf), None)
        return buf.value.decode("utf-8", "replace")

    # ---- model zoo and weight import
    @classmethod
    def resnet50(cls, input_shape=(224, 224, 3), include_top=True,
                 classes=1000, flavor="keras", classifier_activation="softmax",
                 seed=0, name=None):
        """ResNet50 with Keras' layer names; flavor "keras" (v1, Keras'
        weights) or "torchvision" (v1.5, loads torchvision's weights)."""
        h, w, c = _shape(input_shape, "input_shape")
        o = _lib.make_opts(
            _lib.nn_resnet_opts, name=_opts_name(name),
            flavor=_choice(_FLAVORS, flavor, "flavor"),
            include_top=int(bool(include_top)), classes=_int(classes, "classes"),
            classifier_activation=_choice(ACTIVATIONS, classifier_activation,
                                          "classifier_activation"))
        m = cls.__new__(cls)
        m._init(lib.nn_resnet50(h, w, c, int(seed), o))
        m._adopt_graph()
        return m

    @classmethod
    def mobilenet_v2(cls, input_shape=(224, 224, 3), alpha=1.0,
                     include_top=True, classes=1000, flavor="keras",
                     classifier_activation="softmax", seed=0, name=None):
        """MobileNetV2 with Keras' layer names; flavor "keras" or
        "torchvision" (loads torchvision's weights)."""
        h, w, c = _shape(input_shape, "input_shape")
        o = _lib.make_opts(
            _lib.nn_mobilenet_v2_opts, name=_opts_name(name),
            flavor=_choice(_MOBILENET_FLAVORS, flavor, "flavor"),
            include_top=int(bool(include_top)), classes=_int(classes, "classes"),
            classifier_activation=_choice(ACTIVATIONS, classifier_activation,
                                          "classifier_activation"),
            alpha=float(alpha))
        m = cls.__new__(cls)
        m._init(lib.nn_mobilenet_v2(h, w, c, int(seed), o))
        m._adopt_graph()
        return m

    @classmethod
    def unet(cls, encoder, skips, filters, classes, seed=0, name=None,
             encoder_name=None, freeze_encoder=False, activation=None,
             dropout=0.0, bn_momentum=0.99):
        """A U-Net on `encoder` (a Model): skips are encoder layer names
        from the shallowest to the deepest, filters the decoder's counts
        (one fewer than the skips). Weights are shared with `encoder`."""
        if not isinstance(encoder, Model):
            raise TypeError("unet: encoder must be a libnn.Model")
        names = (ctypes.c_char_p * max(len(skips), 1))(
            *[_lib.encode(s) for s in skips])
        fs = (ctypes.c_int * max(len(filters), 1))(
            *[_int(f, "filters") for f in filters])
        o = _lib.make_opts(
            _lib.nn_unet_opts, name=_opts_name(name),
            encoder_name=_opts_name(encoder_name),
            freeze_encoder=int(bool(freeze_encoder)),
            activation=_choice(ACTIVATIONS, activation, "activation"),
            dropout=float(dropout), bn_momentum=float(bn_momentum))
        m = cls.__new__(cls)
        m._init(lib.nn_unet(encoder._ptr, len(skips), names, len(filters),
                            fs, _int(classes, "classes"), int(seed), o))
        m._adopt_graph()
        return m

    def resnet_identity_block(self, x, kernel, filters, prefix,
                              flavor="keras"):
        f1, f2, f3 = (_int(f, "filters") for f in filters)
        return self._added(lib.nn_resnet_identity_block(
            self._ptr, self._layer(x, "resnet_identity_block"),
            _int(kernel, "kernel"), f1, f2, f3,
            _choice(_FLAVORS, flavor, "flavor"), _lib.encode(prefix)))

    def resnet_conv_block(self, x, kernel, filters, prefix, strides=2,
                          flavor="keras"):
        f1, f2, f3 = (_int(f, "filters") for f in filters)
        return self._added(lib.nn_resnet_conv_block(
            self._ptr, self._layer(x, "resnet_conv_block"),
            _int(kernel, "kernel"), f1, f2, f3, _int(strides, "strides"),
            _choice(_FLAVORS, flavor, "flavor"), _lib.encode(prefix)))

    def load_safetensors(self, path, names="libnn"):
        """Loads every weight from a safetensors file; names "libnn"
        ("<layer>/<weight>"), "torchvision_resnet" or
        "torchvision_mobilenet_v2" (state_dict keys)."""
        lib.nn_model_load_safetensors(
            self._ptr, _lib.encode(os.fspath(path)),
            _choice(_WEIGHT_MAPS, names, "names"))

    def save_safetensors(self, path):
        """Writes every weight as "<layer>/<weight>" float32 tensors."""
        lib.nn_model_save_safetensors(self._ptr,
                                      _lib.encode(os.fspath(path)))

    # ---- saving
    def save(self, path, optimizer=False):
        """Writes graph + weights (+ optimizer state) atomically."""
        path = os.fspath(path)
        flags = _lib.SAVE_OPTIMIZER if optimizer else _lib.SAVE_DEFAULT
        lib.nn_model_save(self._ptr, _lib.encode(path), flags)

    @classmethod
    def load(cls, path):
        """Loads a model saved by save(): its loss (``loss``) when it was
        compiled, and its optimizer (``optimizer``: learning rate, steps)
        when saved with optimizer=True, which makes it ready to train on."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise errors.FileError(f"'{path}' does not exist", -4,
                                 "nn_model_load")
        ptr = lib.nn_model_load(_lib.encode(path))
        if not ptr:
            raise _lib.null_error("nn_model_load", errors.FormatError)
        m = cls.__new__(cls)
        m._init(ptr)
        m._adopt_graph()
        m._adopt_loss()
        return m

    def _adopt_graph(self):
        """Finds the input and output layers of a loaded model."""
        by_addr = {layer._raw: layer for layer in self.layers}

        def find(ptr):
            return by_addr.get(ctypes.cast(ptr, ctypes.c_void_p).value)
        self._input = find(lib.nn_model_input(self._ptr))
        self._output = find(lib.nn_model_output(self._ptr))


# compile's metrics: Keras names of what fit records, and what they turn on.
_METRICS = {"accuracy": "accuracy", "acc": "accuracy", "iou": "iou",
            "mean_iou": "mean_iou", "dice": "dice",
            "pixel_accuracy": "pixel_accuracy"}
_SEG_NAMES = ("iou", "mean_iou", "dice", "pixel_accuracy")


def _metrics(metrics):
    """compile's metrics as canonical names; unknown ones are refused."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise errors.wrong_type(f"metrics must be a list of names, got "
                                f"{metrics!r}")
    out = []
    for k in metrics:
        name = k.lower() if isinstance(k, str) else None
        if name not in _METRICS:
            raise errors.invalid(
                f"metrics: {k!r} is not a metric libnn computes. fit records "
                f"the loss and accuracy always, and with 'iou', 'mean_iou', "
                f"'dice' or 'pixel_accuracy' the segmentation metrics "
                f"(docs/losses.md); other metrics can be computed from "
                f"predict()'s output")
        if _METRICS[name] not in out:
            out.append(_METRICS[name])
    return out


def _split(x, y, validation_data, split):
    """(x, y, validation_data) with Keras' validation_split applied: the
    last fraction of the samples, taken before fit shuffles."""
    split = _fraction(split, "validation_split")
    if not split:
        return x, y, validation_data
    if validation_data is not None:
        raise errors.invalid("give validation_data or validation_split, "
                             "not both")
    x, y = as_float32(x, "x"), as_float32(y, "y")
    n = x.shape[0] if x.ndim else 0
    at = int(math.floor(n * (1.0 - split)))
    if at == 0 or at == n:
        raise errors.invalid(
            f"validation_split={split} of {n} samples leaves "
            f"{'no training' if at == 0 else 'no validation'} sample; give "
            f"more data or another fraction")
    if y.ndim == 0 or y.shape[0] != n:
        raise errors.wrong_shape(f"y has {y.shape[0] if y.ndim else 0} "
                                 f"samples, x has {n}; give one label per "
                                 f"sample")
    return x[:at], y[:at], (x[at:], y[at:])


def _loss_terms(loss, weights):
    """[(name, weight)] of a loss name, a list of names (with
    loss_weights) or a dict {name: weight}."""
    if isinstance(loss, str):
        names, ws = [loss], [1.0] if weights is None else [weights]
    elif isinstance(loss, dict):
        if weights is not None:
            raise errors.wrong_type("loss_weights with a dict loss: put "
                                    "the weights in the dict")
        names, ws = list(loss), list(loss.values())
    elif isinstance(loss, (list, tuple)):
        names = list(loss)
        ws = [1.0] * len(names) if weights is None else list(weights)
    else:
        raise errors.wrong_type("loss must be a name, a list of names or a "
                                "dict {name: weight}")
    if len(ws) != len(names) or not names:
        raise errors.invalid(f"{len(names)} losses and {len(ws)} weights")
    for name in names:
        if not isinstance(name, str):
            raise errors.wrong_type(f"loss names are str, got "
                                    f"{type(name).__name__}")
    return [(n.lower(), float(w)) for n, w in zip(names, ws)]


def _grad_report_dict(r):
    health = {}
    for window, key in ((0, "health"), (1, "window_health")):
        v, why = ctypes.c_int(), ctypes.c_char_p()
        lib.nn_grad_report_health(r, window, ctypes.byref(v),
                                  ctypes.byref(why))
        health[key] = _lib.HEALTH_NAMES[v.value]
        health[key + "_why"] = _lib.decode(why.value)
    layers = []
    for k in range(lib.nn_grad_report_num_layers(r)):
        nw = lib.nn_grad_report_num_weights(r, k)
        entry = {"name": _lib.decode(lib.nn_grad_report_layer_name(r, k))}
        for key, fn in (("grad_norm", lib.nn_grad_report_grad_norm),
                        ("weight_norm", lib.nn_grad_report_weight_norm),
                        ("update_ratio", lib.nn_grad_report_update_ratio)):
            entry[key] = float(fn(r, k, -1))
            entry[key + "s"] = [float(fn(r, k, j)) for j in range(nw)]
        layers.append(entry)
    return dict(step=int(lib.nn_grad_report_step(r)),
                global_norm=float(lib.nn_grad_report_global_norm(r)),
                layers=layers, **health)


_SEG_METRICS = (("iou", _lib.METRIC_IOU), ("mean_iou", _lib.METRIC_MEAN_IOU),
                ("dice", _lib.METRIC_DICE),
                ("pixel_accuracy", _lib.METRIC_PIXEL_ACCURACY))
_DEC_METRICS = (("precision", _lib.METRIC_PRECISION),
                ("recall", _lib.METRIC_RECALL), ("f1", _lib.METRIC_F1),
                ("roc_auc", _lib.METRIC_ROC_AUC))


def _weights_array(w, what):
    """Class weights as float32 values: a list, or a dict {class: weight}
    whose keys are 0 .. C-1 (Keras' class_weight)."""
    if w is None:
        return None
    if isinstance(w, dict):
        keys = sorted(w)
        if keys != list(range(len(keys))):
            raise ValueError(f"{what}: give a weight for every class 0 .. "
                             f"C-1, got the classes {keys}")
        w = [w[k] for k in keys]
    return np.ascontiguousarray(w, dtype=np.float32).ravel()


def _binary_opts(positive_class=None, negative_class=None, threshold=0.5):
    """nn_binary_opts: class positive_class, or every class but
    negative_class (NN_ALL_BUT)."""
    if positive_class is not None and negative_class is not None:
        raise ValueError("give positive_class or negative_class, not both")
    if negative_class is not None:
        code = -1 - _int(negative_class, "negative_class", lo=0)
    else:
        code = _int(1 if positive_class is None else positive_class,
                    "positive_class", lo=0)
    return _lib.make_opts(_lib.nn_binary_opts, positive_class=code,
                          threshold=float(threshold))


def _history_dict(hist, with_val, grad=0, seg=0, dec=False):
    n = lib.nn_history_epochs(hist) if hist else 0
    metrics = [("loss", _lib.METRIC_LOSS), ("accuracy", _lib.METRIC_ACCURACY)]
    if with_val:
        metrics += [("val_loss", _lib.METRIC_VAL_LOSS),
                    ("val_accuracy", _lib.METRIC_VAL_ACCURACY)]
    metrics.append(("seconds", _lib.METRIC_EPOCH_SECONDS))
    if grad:
        metrics += [("grad_norm", _lib.METRIC_GRAD_NORM),
                    ("grad_norm_max", _lib.METRIC_GRAD_NORM_MAX),
                    ("health", _lib.METRIC_HEALTH)]
    if seg:
        metrics += list(_SEG_METRICS)
        if with_val:  # each validation metric follows its training one
            metrics += [("val_" + k, code + 1) for k, code in _SEG_METRICS]
    if dec:
        metrics += list(_DEC_METRICS)
        if with_val:
            metrics += [("val_" + k, code + 1) for k, code in _DEC_METRICS]
    out = {k: [float(lib.nn_history_get(hist, code, e)) for e in range(n)]
           for k, code in metrics}
    if grad > 1:
        steps = lib.nn_history_num_steps(hist) if hist else 0
        for k, code in (("step_loss", _lib.METRIC_LOSS),
                        ("step_grad_norm", _lib.METRIC_GRAD_NORM),
                        ("step_health", _lib.METRIC_HEALTH)):
            out[k] = [float(lib.nn_history_step_get(hist, code, i))
                      for i in range(steps)]
    return out


class Context:
    """An execution context: many contexts can predict from one model at the
    same time (one per thread). It keeps the model's memory alive."""

    def __init__(self, model):
        if not isinstance(model, Model):
            raise errors.wrong_type("Context needs a libnn.Model")
        ptr = lib.nn_context_create(model._ptr)
        # The context holds the model handle: the model is freed after it.
        self._h = Handle(ptr, lib.nn_context_free, keep=(model._h,))
        self._in_shape = model.input_shape
        self._out_shape = model.output_shape

    def predict(self, x, batch_size=32):
        """Inference on x [N, ...] with this context's own buffers."""
        if not self._h:
            raise errors.StateError("the context is closed")
        tx = wrap(x, "x")
        out = np.empty((tx.shape[0],) + self._out_shape, np.float32)
        tout = wrap(out, "out", writable=True)  # alive across the call
        lib.nn_context_predict(self._h.ptr, tx._ptr, tout._ptr,
                               _int(batch_size, "batch_size"))
        return out

    def _live(self):
        if not self._h:
            raise errors.StateError("the context is closed")
        return self._h.ptr

    def _verdicts(self, n):
        """n nn_verdict structs with room for every class's probability."""
        k = 2 if self._out_shape == (1,) else int(np.prod(self._out_shape))
        probs = np.zeros((n, k), np.float32)
        vs = (_lib.nn_verdict * n)()
        for i in range(n):
            vs[i].size = ctypes.sizeof(_lib.nn_verdict)
            vs[i].probs = probs[i].ctypes.data_as(_lib.FloatP)
            vs[i].num_probs = k
        return vs, probs

    @staticmethod
    def _results(vs, probs):
        n = len(vs)
        return {"probabilities": probs,
                "predicted_class": np.array([vs[i].predicted_class
                                             for i in range(n)], np.int64),
                "score": np.array([vs[i].score for i in range(n)],
                                  np.float32),
                "defective": np.array([bool(vs[i].defective)
                                       for i in range(n)])}

    def classify(self, x):
        """Verdicts on x [N, ...input shape], already preprocessed, with
        the model's stored decision: a dict of arrays probabilities [N, K],
        predicted_class [N], score [N], defective [N]."""
        ptr = self._live()
        tx = wrap(x, "x", shape=(None,) + self._in_shape)
        vs, probs = self._verdicts(x.shape[0])
        lib.nn_context_classify(ptr, tx._ptr, vs)
        return self._results(vs, probs)

    def classify_u8(self, frames):
        """Verdicts on 8-bit frames, [H, W, C] or [N, H, W, C] (uint8,
        rows may be strided), preprocessed as the model says: a dict of
        arrays as classify(); of scalars (and probabilities [K]) for one
        frame."""
        ptr = self._live()
        a = frames
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
            raise TypeError("frames: expected a numpy.ndarray of uint8")
        one = a.ndim == 3
        if one:
            a = a[None]
        if a.ndim != 4 or a.size == 0:
            raise ValueError(f"frames: shape {frames.shape}, expected "
                             f"(H, W, C) or (N, H, W, C)")
        n, h, w, c = a.shape
        if a.strides[3] != 1 or a.strides[2] != c or a.strides[1] < w * c:
            a = np.ascontiguousarray(a)
        ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data + i * a.strides[0]
                                       for i in range(n)])
        vs, probs = self._verdicts(n)
        lib.nn_context_classify_u8_batch(ptr, ptrs, n, h, w, c,
                                         a.strides[1], vs)
        r = self._results(vs, probs)
        if one:
            return {"probabilities": probs[0],
                    "predicted_class": int(r["predicted_class"][0]),
                    "score": float(r["score"][0]),
                    "defective": bool(r["defective"][0])}
        return r

    def close(self):
        h, self._h = self._h, Handle(None, None)
        h.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
