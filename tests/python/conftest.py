"""Shared fixtures of the Python binding tests and the PyTorch parity suite.

`parity.compare(name=(got, ref, tol), ...)` records the maximum relative
error of every quantity (max|got - ref| / max(max|ref|, tiny)), prints it
(visible with -s) and fails the test listing every quantity over its
tolerance. The table of all recorded errors is printed at the end of the
run and written to $LIBNN_PARITY_REPORT when that is set.
"""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))

TINY = 1e-30
FWD_TOL = 1e-4   # forward values and losses
BWD_TOL = 1e-3   # gradients

_RESULTS = []  # (test id, quantity, max rel err, tolerance)


def to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def rel_err(got, ref):
    got, ref = to_numpy(got), to_numpy(ref)
    if got.shape != ref.shape:
        raise AssertionError(f"shape {got.shape} != reference {ref.shape}")
    if got.size == 0:
        return 0.0
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), TINY))


class Parity:
    def __init__(self, test_id):
        self.test_id = test_id

    def compare(self, **quantities):
        """name=(got, ref, tol): records all, then asserts all."""
        failures = []
        for name, (got, ref, tol) in quantities.items():
            err = rel_err(got, ref)
            _RESULTS.append((self.test_id, name, err, tol))
            print(f"[parity] {self.test_id}: {name} max rel err "
                  f"{err:.3e} (tol {tol:.0e})")
            if not err <= tol:
                failures.append(f"{name}: max rel err {err:.3e} > {tol:.0e}")
        assert not failures, "; ".join(failures)


@pytest.fixture
def parity(request):
    return Parity(request.node.name)


@pytest.fixture
def rng(request):
    # A per-test seed from the test's name: reproducible and independent.
    seed = sum(map(ord, request.node.name)) * 7919 % (2**32)
    return np.random.default_rng(seed)


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    lines = [f"{'test':<60} {'quantity':<18} {'max rel err':>11} {'tol':>6}"]
    for test, what, err, tol in _RESULTS:
        flag = "" if err <= tol else "  FAIL"
        lines.append(f"{test[:60]:<60} {what[:18]:<18} {err:11.3e} "
                     f"{tol:6.0e}{flag}")
    worst = max(_RESULTS, key=lambda r: r[2] / r[3])
    lines.append(f"{len(_RESULTS)} quantities compared; closest to its "
                 f"tolerance: {worst[0]} {worst[1]} {worst[2]:.3e} "
                 f"(tol {worst[3]:.0e})")
    path = os.environ.get("LIBNN_PARITY_REPORT")
    if path:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    tr = terminalreporter
    tr.section("libnn vs PyTorch: maximum relative errors")
    if os.environ.get("LIBNN_PARITY_VERBOSE"):
        for line in lines:
            tr.write_line(line)
        return
    for line in lines[1:-1]:
        if line.endswith("FAIL"):
            tr.write_line(line)
    tr.write_line(lines[-1])
    tr.write_line("(full table: LIBNN_PARITY_VERBOSE=1, or "
                  "LIBNN_PARITY_REPORT=FILE to write it)")
