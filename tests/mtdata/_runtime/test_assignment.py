"""``mtdata._runtime.assignment``: scipy's solver, loaded without ``scipy.optimize``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_solver

from mtdata._runtime import assignment


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 7), (7, 4), (0, 3)], ids=str)
@pytest.mark.parametrize("maximize", [False, True])
def test_same_assignment_as_scipy(shape, maximize):
    cost = np.random.default_rng(sum(shape)).uniform(0, 1, shape)
    rows, cols = assignment.linear_sum_assignment(cost, maximize=maximize)
    want_rows, want_cols = scipy_solver(cost, maximize=maximize)
    assert rows.tolist() == want_rows.tolist() and cols.tolist() == want_cols.tolist()


def _solve_in_fresh_python(setup: str = "") -> str:
    code = (
        "import sys, numpy as np\n"
        f"{setup}\n"
        "from mtdata._runtime.assignment import linear_sum_assignment\n"
        "rows, cols = linear_sum_assignment(np.array([[1.0, 0.0], [0.0, 1.0]]), maximize=True)\n"
        "assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]\n"
        "print('scipy.optimize' in sys.modules)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_solving_does_not_import_scipy_optimize():
    # The point of the module: a worker that solves one crowded image skips ~0.3 s of imports.
    assert _solve_in_fresh_python() == "False"


def test_falls_back_to_the_public_import_when_the_compiled_module_is_not_found():
    hide_compiled_modules = "import importlib.machinery; importlib.machinery.EXTENSION_SUFFIXES[:] = []"
    assert _solve_in_fresh_python(hide_compiled_modules) == "True"
