"""scipy's ``linear_sum_assignment``, without importing all of ``scipy.optimize``.

``import scipy.optimize`` takes ~0.3 s (it loads scipy.linalg, sparse and the array-API layer),
and every worker process of a merge that meets one crowded image pays it. The solver itself
lives in one compiled module, ``scipy/optimize/_lsap``, that needs only numpy: it is loaded from
its file here. Anything unexpected (another scipy layout, a failed load) falls back to the
public import, so the result is always scipy's own solver.

Kept because it earns its keep (issue 19, measured on 2 shared cores): in a fresh process, the
public import costs 0.31-0.35 s of CPU (min/median of 30 alternated runs; loading ``_lsap`` here:
0.011-0.013 s). Every merge worker pays it, in parallel: about +0.3 s on the merge benchmark's
1.54 s (``benchmarks/merge.py``, 20,000 images, 2 workers), ~20%, over the 5% a trick must earn.
(Whole-merge A/B runs could not resolve it on that loaded machine: 3-40 s either way.)
"""

from __future__ import annotations

import contextlib
import os
import sys
from functools import lru_cache

import numpy as np


def linear_sum_assignment(cost: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.optimize.linear_sum_assignment``: (row indices, column indices) of an optimal assignment of (N, M) ``cost``."""
    return solver()(cost, maximize=maximize)


@lru_cache(maxsize=1)
def solver():
    """scipy's solver function: from its compiled module when possible, else from ``scipy.optimize``."""
    if "scipy.optimize" not in sys.modules:
        with contextlib.suppress(Exception):  # any surprise means: take the public, slower import
            return _load_compiled()
    from scipy.optimize import linear_sum_assignment as public

    return public


def _load_compiled():
    import importlib.machinery
    import importlib.util

    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "optimize")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "_lsap" + suffix)
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("scipy.optimize._lsap", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.linear_sum_assignment
    raise ImportError(f"no compiled _lsap module in {folder}")
