"""Tensors: numpy arrays seen by libnn without copying, and library-owned
buffers seen by numpy without copying.

Ownership rules:
  * Tensor(array) wraps a float32 C-contiguous array (nn_tensor_wrap); the
    Tensor keeps the array alive and the library never frees its memory.
  * Buffers libnn owns (weights, gradients, loaded data sets) are exposed as
    numpy arrays whose `.base` keeps the owning handle alive, so a view can
    never outlive its memory.
"""

import ctypes

import numpy as np

from . import _lib, errors
from ._lib import lib


class Handle:
    """One C handle and its free function; freed exactly once, when
    release() is called or the last reference goes away. `keep` holds other
    objects (a parent handle, a wrapped array) that must outlive it."""

    __slots__ = ("ptr", "_free", "keep", "__weakref__")

    def __init__(self, ptr, free, keep=()):
        self.ptr = ptr
        self._free = free
        self.keep = tuple(keep)

    def release(self):
        ptr, self.ptr = self.ptr, None
        if ptr and self._free is not None:
            self._free(ptr)
        self.keep = ()

    def __bool__(self):
        return bool(self.ptr)

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: nothing sensible to do
            pass


class _View:
    """Exposes raw library memory through the array interface; `keep` holds
    the handle that owns the memory."""

    def __init__(self, addr, shape, keep):
        self.__array_interface__ = {
            "shape": tuple(int(d) for d in shape),
            "typestr": "<f4",
            "data": (addr, False),
            "version": 3,
        }
        self.keep = keep


def view(data_ptr, shape, keep):
    """A writable float32 numpy array over library memory; `keep` (the
    owner's Handle) stays alive as long as the array or any slice of it."""
    addr = ctypes.cast(data_ptr, ctypes.c_void_p).value
    if not addr:
        raise errors.StateError("the tensor has no data")
    return np.asarray(_View(addr, shape, keep))


def tensor_shape(ptr):
    rank = lib.nn_tensor_rank(ptr)
    if rank < 1:
        raise errors.InvalidArgument(_lib.last_error(), None,
                                     "nn_tensor_rank")
    shape = (ctypes.c_int64 * rank)()
    lib.nn_tensor_shape(ptr, shape, rank)
    return tuple(int(d) for d in shape)


# Integers up to this magnitude are exact in float32 (a 24-bit mantissa).
EXACT_INT = 2 ** 24


def _first(mask):
    """The index (a tuple) of the first true element of mask."""
    return tuple(int(i) for i in np.unravel_index(np.argmax(mask), mask.shape))


def as_float32(a, what="array"):
    """The float32, C-contiguous array libnn reads for an input argument:
    `a` itself when it already is one, else a converted copy. The rule
    (docs/python.md, "Arrays"): floating-point values are rounded to the
    nearest float32, as Keras casts its inputs, unless a finite one lies
    beyond float32's range; integers and booleans are converted when every
    value is exact in float32 (magnitude at most 2**24); anything else is
    refused. A non-contiguous array is copied."""
    if not isinstance(a, np.ndarray):
        raise errors.wrong_type(f"{what}: expected a numpy.ndarray, got "
                                f"{type(a).__name__}")
    kind = a.dtype.kind
    if a.dtype == np.float32:
        return a if a.flags.c_contiguous else np.asarray(a, order="C")
    if kind == "f":
        with np.errstate(over="ignore"):
            b = np.asarray(a, dtype=np.float32, order="C")
        over = np.isinf(b) & np.isfinite(a)
        if over.any():
            at = _first(over)
            raise errors.invalid(
                f"{what}: value {a[at]!r} at index {at} lies beyond "
                f"float32's range (3.4e38) and would become Inf; scale the "
                f"data first")
        return b
    if kind in "iub":
        if kind != "b" and a.size:
            big = np.abs(a.astype(np.float64)) > EXACT_INT
            if big.any():
                at = _first(big)
                raise errors.invalid(
                    f"{what}: integer {int(a[at])} at index {at} has no "
                    f"exact float32 (integers convert exactly up to 2**24 = "
                    f"{EXACT_INT}); convert the array yourself "
                    f"(a.astype(np.float32)) if rounding is fine")
        return np.asarray(a, dtype=np.float32, order="C")
    raise errors.wrong_type(f"{what}: dtype {a.dtype} holds no numbers "
                            f"libnn reads (float32, or a real or integer "
                            f"dtype it converts)")


def check_array(a, what="array", writable=False, shape=None):
    """Validates a float32 array for the C side; raises libnn's argument
    errors (InvalidType, InvalidArgument, ShapeError) before anything
    reaches C. `shape` may hold None as a wildcard."""
    if not isinstance(a, np.ndarray):
        raise errors.wrong_type(f"{what}: expected a numpy.ndarray of "
                                f"float32, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise errors.wrong_type(f"{what}: dtype is {a.dtype}, libnn needs "
                                f"float32 here (use a.astype(np.float32))")
    if not a.flags.c_contiguous:
        raise errors.invalid(f"{what}: the array is not C-contiguous (use "
                             f"np.ascontiguousarray)")
    if a.ndim < 1 or a.ndim > _lib.MAX_RANK:
        raise errors.wrong_shape(f"{what}: rank {a.ndim} outside "
                                 f"[1, {_lib.MAX_RANK}]")
    if a.size == 0:
        raise errors.invalid(f"{what}: the array is empty (shape {a.shape})")
    if writable and not a.flags.writeable:
        raise errors.invalid(f"{what}: the array is read-only")
    if shape is not None:
        ok = len(shape) == a.ndim and all(
            s is None or s == d for s, d in zip(shape, a.shape))
        if not ok:
            want = "(" + ", ".join("N" if s is None else str(s)
                                   for s in shape) + ")"
            raise errors.wrong_shape(f"{what}: shape {a.shape}, expected "
                                     f"{want}")
    return a


class Tensor:
    """A libnn tensor.

    ``Tensor(array)`` wraps a float32, C-contiguous numpy array without
    copying: the library reads (and for outputs writes) the array's memory.
    ``Tensor.zeros(shape)`` asks the library for a new tensor. ``numpy()``
    returns the data as an array that shares memory with the tensor.
    """

    def __init__(self, array):
        a = check_array(array, "Tensor")
        shape = (ctypes.c_int64 * a.ndim)(*a.shape)
        data = a.ctypes.data_as(_lib.FloatP)
        ptr = lib.nn_tensor_wrap(a.ndim, shape, data)
        self._h = Handle(ptr, lib.nn_tensor_free, keep=(a,))
        self._array = a

    @classmethod
    def zeros(cls, shape):
        """A new zero-filled tensor owned by the library."""
        shape = tuple(int(d) for d in shape)
        if not 1 <= len(shape) <= _lib.MAX_RANK or min(shape) <= 0:
            raise errors.invalid(f"Tensor.zeros: bad shape {shape}")
        arr = (ctypes.c_int64 * len(shape))(*shape)
        return cls._adopt(lib.nn_tensor_create(len(shape), arr))

    @classmethod
    def _adopt(cls, ptr):
        """Takes ownership of a tensor the library created."""
        t = cls.__new__(cls)
        t._h = Handle(ptr, lib.nn_tensor_free)
        t._array = None
        return t

    @property
    def _ptr(self):
        if not self._h:
            raise errors.StateError("the tensor is closed")
        return self._h.ptr

    @property
    def shape(self):
        return tensor_shape(self._ptr)

    @property
    def size(self):
        return int(lib.nn_tensor_size(self._ptr))

    def numpy(self):
        """The data as a numpy array sharing memory with this tensor."""
        if self._array is not None:
            return self._array
        return view(lib.nn_tensor_data(self._ptr), self.shape, self._h)

    def close(self):
        """Frees the tensor handle (a wrapped array stays valid; views of
        library-owned data keep their memory until they are gone)."""
        h, self._h = self._h, Handle(None, None)
        # Views hold the handle: it is freed when the last one goes.
        del h

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = f"shape={self.shape}" if self._h else "closed"
        return f"<libnn.Tensor {state}>"


def wrap(a, what, writable=False, shape=None):
    """A wrapped Tensor for an argument array (validated first). An input
    (not writable) of another dtype, or not contiguous, is converted by
    as_float32's rule; an output array must be float32 already."""
    if not writable:
        a = as_float32(a, what)
    check_array(a, what, writable, shape)
    return Tensor(a)


def adopt_array(ptr):
    """A numpy array over a tensor the library created; the tensor is freed
    when the array (and every view of it) is gone."""
    h = Handle(ptr, lib.nn_tensor_free)
    return view(lib.nn_tensor_data(ptr), tensor_shape(ptr), h)
