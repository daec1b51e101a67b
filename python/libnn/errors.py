"""Exceptions raised by the libnn binding.

Every failing C call raises a subclass of :class:`Error` that carries the
status code and the library's message (``nn_last_error()``). Arguments the
binding refuses before calling C (a wrong type or dtype, an unknown name, an
empty array) raise the same classes, so ``except libnn.Error`` catches every
libnn failure. The subclasses also derive from the closest built-in
exception, so ``except ValueError`` catches a shape mismatch and
``except OSError`` an unreadable file.
"""

import builtins
import re
import warnings

_C_PREFIX = re.compile(r"nn_\w+: ")


class Error(Exception):
    """A libnn call failed. ``status`` is the nn_status code (None when a
    constructor returned NULL without one), ``message`` the explanation,
    ``function`` the C function called (None for an argument the binding
    refused before calling C)."""

    status_name = "NN_ERR"

    def __init__(self, message, status=None, function=None):
        self.message = message
        self.status = status
        self.function = function
        # The library's messages start with the public function they come
        # from ("nn_model_fit: x has ..."): the text names it once.
        named = bool(message) and _C_PREFIX.match(message) is not None
        where = f"{function}: " if function and not named else ""
        text = f"{where}{message}" if message else where.rstrip(": ")
        super().__init__(text)


class InvalidArgument(Error, ValueError):
    """NN_ERR_INVALID: a bad argument (NULL handle, value out of range)."""
    status_name = "NN_ERR_INVALID"


class InvalidType(InvalidArgument, TypeError):
    """NN_ERR_INVALID for an argument of the wrong Python type or array
    dtype, refused before the library is called; also a TypeError."""


class ShapeError(Error, ValueError):
    """NN_ERR_SHAPE: shapes do not fit together."""
    status_name = "NN_ERR_SHAPE"


class OutOfMemory(Error, builtins.MemoryError):
    """NN_ERR_NOMEM: an allocation failed."""
    status_name = "NN_ERR_NOMEM"


class FileError(Error, builtins.OSError):
    """NN_ERR_IO: open/read/write/rename failed."""
    status_name = "NN_ERR_IO"


class FormatError(Error, ValueError):
    """NN_ERR_FORMAT: a file is malformed, truncated or corrupt."""
    status_name = "NN_ERR_FORMAT"


class NumericError(Error, ArithmeticError):
    """NN_ERR_NUMERIC: NaN or Inf where a finite number is needed."""
    status_name = "NN_ERR_NUMERIC"


class StateError(Error, RuntimeError):
    """NN_ERR_STATE: the call is not valid now (fit before compile, a closed
    model, ...)."""
    status_name = "NN_ERR_STATE"


class UnsupportedError(Error, NotImplementedError):
    """NN_ERR_UNSUPPORTED: a valid request this build cannot do."""
    status_name = "NN_ERR_UNSUPPORTED"


class Cancelled(Error):
    """NN_ERR_CANCELLED: a callback asked to stop."""
    status_name = "NN_ERR_CANCELLED"


BY_STATUS = {
    -1: InvalidArgument,
    -2: ShapeError,
    -3: OutOfMemory,
    -4: FileError,
    -5: FormatError,
    -6: NumericError,
    -7: StateError,
    -8: UnsupportedError,
    -9: Cancelled,
}


def from_status(status, message, function=None):
    """The exception for a nonzero nn_status."""
    return BY_STATUS.get(status, Error)(message, status, function)


# Arguments refused before C is called: the class of the status C would
# have returned, with that status.
def invalid(message):
    return InvalidArgument(message, -1)


def wrong_type(message):
    return InvalidType(message, -1)


def wrong_shape(message):
    return ShapeError(message, -2)


def renamed(module, name):
    """A module's __getattr__ for the old names. FileError was IOError,
    which `from libnn import *` bound over the built-in: the old name stays
    reachable as an attribute, with a warning, never by a star import."""
    if name == "IOError":
        warnings.warn("libnn.IOError is now libnn.FileError",
                      DeprecationWarning, stacklevel=3)
        return FileError
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name):
    return renamed(__name__, name)
