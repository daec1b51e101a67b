"""The MPI binding (libnn.mpi): two processes under mpirun train a small
model data-parallel; their weights and histories must be bit-identical
and equal, within 1e-5, one process at the global batch size on the same
order. Skipped without mpi4py, mpirun or libnn_mpi.so."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from libnn import _lib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MPI_LIB = os.path.join(os.path.dirname(_lib.path), "libnn_mpi.so")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or shutil.which("mpirun") is None
    or not os.path.exists(os.environ.get("LIBNN_MPI_PATH", MPI_LIB)),
    reason="needs mpi4py, mpirun and libnn_mpi.so")

SCRIPT = r'''
import os
import tempfile

import numpy as np
from mpi4py import MPI

import libnn
import libnn.mpi

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def model(bn):
    m = libnn.Model(seed=3)
    x = m.input((6, 6, 2))
    x = m.conv2d(x, 4, 3, activation="relu")
    if bn:
        x = m.batchnorm(x)
    x = m.maxpool2d(x, 2)
    x = m.flatten(x)
    m.dense(x, 3, activation="softmax")
    m.compile(libnn.Adam(), "categorical_crossentropy")
    return m


rng = np.random.default_rng(5)
x = rng.uniform(0, 1, (70, 6, 6, 2)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 70)]

# BatchNorm, a different start on each rank: the broadcast gives rank 0's,
# and after training every rank holds the same weights and statistics.
m = model(True)
m.set_state(m.get_state() + rank)
with libnn.mpi.Session(m) as s:
    assert (s.rank, s.size) == (rank, size)
    s.broadcast()
    h = dict(m.fit(x, y, epochs=2, batch_size=16, parallel=s,
                   verbose=0).history)
    assert s.stats()["steps"] == 2 * -(-70 // (16 * size)), s.stats()
    both = comm.allgather(m.get_state())
    assert all(np.array_equal(both[0], b) for b in both), "weights differ"
    h.pop("seconds")  # each process's own
    assert all(hh == h for hh in comm.allgather(h)), "histories differ"
    directory = comm.bcast(tempfile.mkdtemp() if rank == 0 else None)
    s.save(os.path.join(directory, f"m{rank}.nnm"))
    comm.Barrier()
    if rank == 0:
        assert os.listdir(directory) == ["m0.nnm"], os.listdir(directory)
    with pytest_raises(ValueError):
        s.set_statistics("sometimes")
    with pytest_raises(libnn.InvalidArgument):
        s.broadcast(size)

# Without BatchNorm: size x 16 equals one process at batch size x 16.
m = model(False)
with libnn.mpi.Session(m) as s:
    h = m.fit(x, y, epochs=2, batch_size=16, parallel=s, verbose=0)
if rank == 0:
    ref = model(False)
    rh = ref.fit(x, y, epochs=2, batch_size=16 * size, verbose=0)
    d = np.abs(m.get_state() - ref.get_state()).max()
    assert d <= 1e-5, d
    assert np.allclose(h["loss"], rh["loss"], rtol=0, atol=1e-5), (h, rh)
    print(f"rank 0: {size} x 16 against 1 x {16 * size}: {d:.2g}")
print(f"OK rank {rank}", flush=True)
'''

HELPER = r'''
import contextlib


@contextlib.contextmanager
def pytest_raises(cls):
    try:
        yield
    except cls:
        return
    raise AssertionError(f"{cls.__name__} not raised")
'''


def test_two_processes_agree(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(HELPER + SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.path.join(ROOT, "python"),
               LIBNN_PATH=_lib.path)
    r = subprocess.run(["mpirun", "--oversubscribe", "-np", "2",
                        sys.executable, str(script)],
                       env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "OK rank 0" in out and "OK rank 1" in out, out
