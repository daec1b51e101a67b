"""libnn for Python: a ctypes binding of the libnn C library.

    import numpy as np, libnn
    m = libnn.Model(seed=42)
    x = m.input((28, 28, 1))
    x = m.conv2d(x, 32, 3, activation="relu")
    x = m.maxpool2d(x, 2)
    x = m.flatten(x)
    x = m.dense(x, 10, activation="softmax")
    m.compile(libnn.Adam(), "categorical_crossentropy")
    history = m.fit(x_train, y_train, epochs=2, batch_size=128)

Arrays are float32, C-contiguous, NHWC (others are converted by the rule
of docs/python.md, "Arrays"); see docs/python.md.
"""

import ctypes

from . import _lib, errors
from .errors import (Cancelled, Error, FileError, FormatError,
                     InvalidArgument, InvalidType, NumericError, OutOfMemory,
                     ShapeError, StateError, UnsupportedError)
from .tensor import Tensor
from .optimizers import SGD, Adam, Optimizer
from .history import History
from .model import Context, Layer, Model, Progress, RandomNormal
from .metrics import (ConfusionMatrix, Curve, average_precision_score,
                      precision_recall_curve, roc_auc_score, roc_curve)
from .data import (load_cifar10, load_idx, load_image, load_mask,
                   load_segmentation_manifest, one_hot, random_flip,
                   save_image, save_mask, synthetic_defects)

__all__ = [
    "Model", "Layer", "Context", "Progress", "History", "Optimizer",
    "Tensor", "Adam", "SGD", "RandomNormal",
    "ConfusionMatrix", "Curve", "roc_curve", "precision_recall_curve",
    "roc_auc_score", "average_precision_score",
    "load_idx", "load_cifar10", "one_hot", "load_image", "load_mask",
    "load_segmentation_manifest", "save_image", "save_mask", "random_flip",
    "synthetic_defects", "version", "version_number",
    "set_num_threads", "get_num_threads", "set_limits", "get_limits",
    "library_path",
    "Error", "InvalidArgument", "InvalidType", "ShapeError", "OutOfMemory",
    "FileError", "FormatError", "NumericError", "StateError",
    "UnsupportedError", "Cancelled",
]

#: Path of the shared library that was loaded.
library_path = _lib.path


def version():
    """Version string of the loaded library ("major.minor.patch")."""
    return _lib.decode(_lib.lib.nn_version())


def version_number():
    return int(_lib.lib.nn_version_number())


def set_num_threads(n):
    """Threads libnn's kernels use, process-wide; n <= 0 restores the
    default: $OMP_NUM_THREADS when it is set, else every core."""
    _lib.lib.nn_set_num_threads(int(n))


def get_num_threads():
    return int(_lib.lib.nn_get_num_threads())


def set_limits(model_bytes=0, data_bytes=0):
    """Process-wide bounds on what a file may make libnn allocate: the
    memory one sample's inference on a loaded model may plan (model_bytes)
    and the bytes of the tensors a data-set loader returns (data_bytes);
    0 restores a default (2 GiB each). See nn_set_limits in nn.h."""
    lim = _lib.make_opts(_lib.nn_limits)
    lim.model_bytes, lim.data_bytes = int(model_bytes), int(data_bytes)
    _lib.lib.nn_set_limits(ctypes.byref(lim))


def get_limits():
    """The limits in force: {"model_bytes": ..., "data_bytes": ...}."""
    lim = _lib.make_opts(_lib.nn_limits)
    _lib.lib.nn_get_limits(ctypes.byref(lim))
    return {"model_bytes": lim.model_bytes, "data_bytes": lim.data_bytes}


#: The loaded library's version: the one number in include/nn.h.
__version__ = version()


def __getattr__(name):
    return errors.renamed(__name__, name)  # libnn.IOError, deprecated
