"""Data-parallel training over MPI: libnn_mpi through ctypes (docs/mpi.md).

    from mpi4py import MPI          # initialises MPI
    import libnn, libnn.mpi
    m = libnn.Model(seed=42)        # the same seed on every process
    ...build and compile...
    with libnn.mpi.Session(m) as s:             # over MPI.COMM_WORLD
        s.broadcast()                           # rank 0's weights
        history = m.fit(x, y, epochs=3, batch_size=64, parallel=s)
        s.save("model.nnm")                     # rank 0 writes

Run it as `mpirun -np 4 python3 train.py`. Every process loads the same
data; batch_size is per process; every process gets the same history.
Needs mpi4py (Debian: python3-mpi4py) and libnn_mpi.so, which `make`
builds beside libnn.so when Open MPI is installed ($LIBNN_MPI_PATH names
another). When one process fails, stop them all with
MPI.COMM_WORLD.Abort(1): the others may be waiting for it.
"""

import ctypes
import ctypes.util
import os

from mpi4py import MPI

from . import _lib, errors

STATISTICS = {"average": 0, "local": 1}


def _candidates():
    env = os.environ.get("LIBNN_MPI_PATH")
    if env:
        return [env]
    found = [os.path.join(os.path.dirname(_lib.path), "libnn_mpi.so")]
    name = ctypes.util.find_library("nn_mpi")
    if name:
        found.append(name)
    return found + ["libnn_mpi.so.0"]


lib, path = _lib.load_library(
    _candidates(), "libnn.mpi",
    "build it with `make lib` with Open MPI installed, or set "
    "LIBNN_MPI_PATH to libnn_mpi.so")

# MPI_Comm is a pointer in Open MPI, an int in MPICH: mpi4py knows which.
_Comm = (ctypes.c_void_p if MPI._sizeof(MPI.Comm) == ctypes.sizeof(
    ctypes.c_void_p) else ctypes.c_int)
_SessionP = ctypes.c_void_p
_I64P = ctypes.POINTER(ctypes.c_int64)
_DP = ctypes.POINTER(ctypes.c_double)
_SIGNATURES = {
    "nn_mpi_create": (_SessionP, [_Comm, _lib.ModelP]),
    "nn_mpi_free": (None, [_SessionP]),
    "nn_mpi_rank": (ctypes.c_int, [_SessionP]),
    "nn_mpi_size": (ctypes.c_int, [_SessionP]),
    "nn_mpi_set_fusion_bytes": (ctypes.c_int, [_SessionP, ctypes.c_int64]),
    "nn_mpi_set_statistics": (ctypes.c_int, [_SessionP, ctypes.c_int]),
    "nn_mpi_broadcast": (ctypes.c_int, [_SessionP, ctypes.c_int]),
    "nn_mpi_average_statistics": (ctypes.c_int, [_SessionP]),
    "nn_mpi_fit_opts": (ctypes.c_int, [_SessionP,
                                       ctypes.POINTER(_lib.nn_fit_opts)]),
    "nn_mpi_save": (ctypes.c_int, [_SessionP, ctypes.c_char_p,
                                   ctypes.c_int]),
    "nn_mpi_write_history": (ctypes.c_int, [_SessionP, _lib.HistoryP,
                                            ctypes.c_char_p]),
    "nn_mpi_stats": (ctypes.c_int, [_SessionP, _I64P, _I64P, _I64P, _DP]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args
    if _res is ctypes.c_int and _name not in ("nn_mpi_rank", "nn_mpi_size"):
        _f.errcheck = _lib._check_status


class Session:
    """A data-parallel session of one model on a communicator (collective
    to create and to close: every process does both)."""

    def __init__(self, model, comm=None):
        comm = MPI.COMM_WORLD if comm is None else comm
        ptr = lib.nn_mpi_create(_Comm(MPI._handleof(comm)), model._ptr)
        if not ptr:
            raise _lib.null_error("nn_mpi_create")
        self._ptr, self.model, self.comm = ptr, model, comm
        # The C model must outlive the session even if model.close() runs
        # first: nn_mpi_free removes its hook.
        self._model_handle = model._h

    def _session(self):
        if self._ptr is None:
            raise errors.StateError("the session is closed", None,
                                    "libnn.mpi.Session")
        return self._ptr

    @property
    def rank(self):
        return lib.nn_mpi_rank(self._session())

    @property
    def size(self):
        return lib.nn_mpi_size(self._session())

    def broadcast(self, root=0):
        """Copies rank root's weights and statistics to every process."""
        lib.nn_mpi_broadcast(self._session(), int(root))

    def average_statistics(self):
        """Averages BatchNormalization's moving statistics now."""
        lib.nn_mpi_average_statistics(self._session())

    def set_statistics(self, mode):
        """"average" (default: at every epoch's end) or "local"."""
        if mode not in STATISTICS:
            raise ValueError(f"statistics: {mode!r} is not one of "
                             f"{', '.join(map(repr, STATISTICS))}")
        lib.nn_mpi_set_statistics(self._session(), STATISTICS[mode])

    def set_fusion_bytes(self, n):
        """Bytes per MPI_Allreduce of the gradients (0: one per step)."""
        lib.nn_mpi_set_fusion_bytes(self._session(), int(n))

    def save(self, path, optimizer=False):
        """Rank 0 saves the model; the others do nothing."""
        lib.nn_mpi_save(self._session(), _lib.encode(os.fspath(path)),
                        _lib.SAVE_OPTIMIZER if optimizer else
                        _lib.SAVE_DEFAULT)

    def stats(self):
        """Gradient averaging so far on this process: steps, collectives,
        bytes and seconds in MPI_Allreduce."""
        v = [ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()]
        sec = ctypes.c_double()
        lib.nn_mpi_stats(self._session(), *[ctypes.byref(x) for x in v],
                         ctypes.byref(sec))
        return {"steps": v[0].value, "collectives": v[1].value,
                "bytes": v[2].value, "seconds": sec.value}

    def _fit_opts(self, model, opts):
        if model is not self.model:
            raise ValueError("parallel: the session belongs to another "
                             "model")
        lib.nn_mpi_fit_opts(self._session(), ctypes.byref(opts))

    def close(self):
        """Removes the model's gradient hook (collective)."""
        if self._ptr is not None:
            lib.nn_mpi_free(self._ptr)
            self._ptr = None
            self._model_handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
