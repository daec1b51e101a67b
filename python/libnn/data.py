"""Data-set loaders of the C library, returning numpy arrays.

The arrays are views of the tensors the library allocated (no copy); each
tensor is freed when its array, and every view of it, is gone."""

import ctypes
import os

import numpy as np

from . import _lib, errors
from ._lib import lib
from .tensor import adopt_array, wrap


def _path(p, what="path"):
    p = os.fspath(p)
    if not os.path.exists(p):
        raise errors.IOError(f"'{p}' does not exist", None, what)
    return p


def load_idx(path, scale=True):
    """Reads an IDX file (MNIST, Fashion-MNIST), plain or gzip. Images
    become float32 [N, rows, cols, 1] (scaled to [0, 1] when `scale`),
    labels float32 [N] class ids."""
    t = _lib.TensorP()
    lib.nn_load_idx(_lib.encode(_path(path, "nn_load_idx")), int(bool(scale)),
                    ctypes.byref(t))
    return adopt_array(t)


def load_cifar10(paths):
    """Reads CIFAR-10 binary batches; returns (images [N, 32, 32, 3] in
    [0, 1], labels [N] class ids)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = [_path(p, "nn_load_cifar10") for p in paths]
    if not paths:
        raise ValueError("load_cifar10: no files")
    arr = (ctypes.c_char_p * len(paths))(*[_lib.encode(p) for p in paths])
    images, labels = _lib.TensorP(), _lib.TensorP()
    lib.nn_load_cifar10(arr, len(paths), ctypes.byref(images),
                        ctypes.byref(labels))
    return adopt_array(images), adopt_array(labels)


def one_hot(labels, num_classes):
    """Class ids [N] (float32) -> one-hot float32 [N, num_classes]."""
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        raise TypeError("one_hot: labels must be float32 class ids "
                        "(use labels.astype(np.float32))")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 1:
        raise ValueError("one_hot: num_classes must be a positive int")
    t = wrap(labels, "labels", shape=(None,))
    out = _lib.TensorP()
    lib.nn_one_hot(t._ptr, num_classes, ctypes.byref(out))
    return adopt_array(out)
