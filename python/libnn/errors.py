"""Exceptions raised by the libnn binding.

Every failing C call raises a subclass of :class:`Error` that carries the
status code and the library's message (``nn_last_error()``). The subclasses
also derive from the closest built-in exception, so ``except ValueError``
catches a shape mismatch and ``except OSError`` an unreadable file.
"""

import builtins


class Error(Exception):
    """A libnn call failed. ``status`` is the nn_status code (None when a
    constructor returned NULL), ``message`` the library's explanation."""

    status_name = "NN_ERR"

    def __init__(self, message, status=None, function=None):
        self.message = message
        self.status = status
        self.function = function
        where = f"{function}: " if function else ""
        text = f"{where}{message}" if message else where.rstrip(": ")
        super().__init__(text)


class InvalidArgument(Error, ValueError):
    """NN_ERR_INVALID: a bad argument (NULL handle, value out of range)."""
    status_name = "NN_ERR_INVALID"


class ShapeError(Error, ValueError):
    """NN_ERR_SHAPE: shapes do not fit together."""
    status_name = "NN_ERR_SHAPE"


class OutOfMemory(Error, builtins.MemoryError):
    """NN_ERR_NOMEM: an allocation failed."""
    status_name = "NN_ERR_NOMEM"


# Named after the built-in on purpose: libnn.IOError.
class IOError(Error, builtins.OSError):  # noqa: A001
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
    -4: IOError,
    -5: FormatError,
    -6: NumericError,
    -7: StateError,
    -8: UnsupportedError,
    -9: Cancelled,
}


def from_status(status, message, function=None):
    """The exception for a nonzero nn_status."""
    return BY_STATUS.get(status, Error)(message, status, function)
