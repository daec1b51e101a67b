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
        raise errors.FileError(f"'{p}' does not exist", -4, what)
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
        raise errors.invalid("load_cifar10: no files")
    arr = (ctypes.c_char_p * len(paths))(*[_lib.encode(p) for p in paths])
    images, labels = _lib.TensorP(), _lib.TensorP()
    lib.nn_load_cifar10(arr, len(paths), ctypes.byref(images),
                        ctypes.byref(labels))
    return adopt_array(images), adopt_array(labels)


def one_hot(labels, num_classes):
    """Class ids [N] (integers, or floats holding integers) -> one-hot
    float32 [N, num_classes]."""
    if isinstance(num_classes, bool) or \
            not isinstance(num_classes, (int, np.integer)):
        raise errors.wrong_type("one_hot: num_classes must be an int, got "
                                f"{type(num_classes).__name__}")
    if num_classes < 1:
        raise errors.invalid(f"one_hot: num_classes is {num_classes}; it "
                             f"must be positive")
    num_classes = int(num_classes)
    t = wrap(labels, "labels", shape=(None,))
    out = _lib.TensorP()
    lib.nn_one_hot(t._ptr, num_classes, ctypes.byref(out))
    return adopt_array(out)


# ------------------------------------------------ images and segmentation
def _image_opts(size=None, num_classes=2, binary=False, max_values=None):
    o = _lib.make_opts(_lib.nn_image_opts, num_classes=int(num_classes),
                       mask_mode=_lib.MASK_BINARY if binary
                       else _lib.MASK_CLASS_IDS)
    if size is not None:
        o.height, o.width = (size, size) if isinstance(size, int) else size
    if max_values is not None:
        o.max_values = int(max_values)
    return o


def load_image(path, channels=3, size=None, max_values=None):
    """Reads a PNG (any colour type, 1 to 16 bits) into float32 [H, W,
    channels] in [0, 1]; channels 1 or 3 (converted as PIL does). `size`
    (an int or (height, width)) resizes bilinearly."""
    t = _lib.TensorP()
    lib.nn_image_load(_lib.encode(os.fspath(path)), int(channels),
                      ctypes.byref(_image_opts(size, max_values=max_values)),
                      ctypes.byref(t))
    return adopt_array(t)


def load_mask(path, num_classes=2, binary=False, size=None):
    """Reads a gray or palette PNG mask into float32 [H, W, 1] class ids
    (checked below num_classes). binary=True reads black-and-white masks
    (0 and 255) as 0 and 1. `size` resizes by nearest neighbour."""
    t = _lib.TensorP()
    lib.nn_mask_load(_lib.encode(os.fspath(path)),
                     ctypes.byref(_image_opts(size, num_classes, binary)),
                     ctypes.byref(t))
    return adopt_array(t)


def load_segmentation_manifest(path, channels=3, size=None, num_classes=2,
                               binary=False):
    """Reads a CSV manifest (id,image_path,mask_path; paths relative to it)
    into (images [N, H, W, channels] in [0, 1], masks [N, H, W, 1] class
    ids). `size` is the model's input size; a bad row raises an error
    naming the line and the file."""
    images, masks = _lib.TensorP(), _lib.TensorP()
    lib.nn_seg_load_manifest(_lib.encode(os.fspath(path)), int(channels),
                             ctypes.byref(_image_opts(size, num_classes,
                                                      binary)),
                             ctypes.byref(images), ctypes.byref(masks))
    return adopt_array(images), adopt_array(masks)


def save_image(path, image):
    """Writes float32 [H, W, C] (C 1, 3 or 4; values in [0, 1]) as an
    8-bit PNG, replacing the file atomically."""
    t = wrap(image, "image", shape=(None, None, None))
    lib.nn_image_save_png(_lib.encode(os.fspath(path)), t._ptr, 0)


def save_mask(path, mask):
    """Writes class ids [H, W, 1] (0..255) as a palette PNG."""
    t = wrap(mask, "mask", shape=(None, None, 1))
    lib.nn_mask_save_png(_lib.encode(os.fspath(path)), t._ptr, 0)


_FLIPS = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}


def random_flip(images, masks=None, mode="horizontal", seed=0):
    """Flips images [N, H, W, C] and masks [N, H, W, Cm] together, in
    place: each image with probability 1/2, drawn from (seed, index)."""
    if mode not in _FLIPS:
        raise errors.invalid(f"random_flip: mode must be one of "
                             f"{list(_FLIPS)}, got {mode!r}")
    x = wrap(images, "images", writable=True, shape=(None,) * 4)
    y = wrap(masks, "masks", writable=True, shape=(None,) * 4) \
        if masks is not None else None
    lib.nn_seg_random_flip(x._ptr, y._ptr if y is not None else None,
                           _FLIPS[mode], int(seed))


def synthetic_defects(count=256, size=128, channels=3, defect_fraction=0.5,
                      typed_masks=False, seed=0):
    """The synthetic surface-defect data set: (images [N, H, W, channels]
    in [0, 1], masks [N, H, W, 1], labels [N]: 0 none, 1 scratch, 2 pit,
    3 crack, 4 stain). The same arguments give the same arrays anywhere."""
    h, w = (size, size) if isinstance(size, int) else size
    o = _lib.make_opts(_lib.nn_defects_opts, count=int(count), height=int(h),
                       width=int(w), channels=int(channels),
                       defect_fraction=float(defect_fraction),
                       typed_masks=int(bool(typed_masks)), seed=int(seed))
    x, y, labels = _lib.TensorP(), _lib.TensorP(), _lib.TensorP()
    lib.nn_synthetic_defects(ctypes.byref(o), ctypes.byref(x),
                             ctypes.byref(y), ctypes.byref(labels))
    return adopt_array(x), adopt_array(y), adopt_array(labels)
