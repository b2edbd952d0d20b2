"""ultralytics' argument table (names, defaults, type rules), read from its files without importing it.

Why a second internals module: ``mttrain/_ultralytics.py`` imports ultralytics, hence torch (~2 s), and the
command line checks ``KEY=VALUE`` arguments before that, so a typo costs a fraction of a second. This module
reads ``ultralytics/cfg/default.yaml`` (names and defaults) and the type tables of ``ultralytics/cfg/__init__.py``
(``CFG_FLOAT_KEYS``, ``CFG_FRACTION_KEYS``, ``CFG_INT_KEYS``, ``CFG_INT_MIN``, ``CFG_BOOL_KEYS``, ``CFG_STR_KEYS``)
as literals with ``ast``. ``mttrain._ultralytics.check_internals`` compares both with the imported ones, and
ultralytics' own ``check_cfg`` still runs on the arguments once it is imported (``check_arguments``).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

import yaml

TABLES = ("CFG_FLOAT_KEYS", "CFG_FRACTION_KEYS", "CFG_INT_KEYS", "CFG_INT_MIN", "CFG_BOOL_KEYS", "CFG_STR_KEYS")


def _package_dir() -> Path:
    spec = importlib.util.find_spec("ultralytics")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("ultralytics is not installed: pip install 'mt[train]'")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def defaults() -> dict[str, Any]:
    """ultralytics' default arguments (``cfg/default.yaml``), name -> value."""
    return yaml.safe_load((_package_dir() / "cfg" / "default.yaml").read_text())


@functools.lru_cache(maxsize=1)
def type_tables() -> dict[str, Any]:
    """The literal type tables of ``ultralytics/cfg/__init__.py`` (frozensets and the CFG_INT_MIN dict)."""
    tree = ast.parse((_package_dir() / "cfg" / "__init__.py").read_text())
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name not in TABLES:
                continue
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "frozenset":  # frozenset({...})
                out[name] = frozenset(ast.literal_eval(value.args[0]) if value.args else ())
            else:
                out[name] = ast.literal_eval(value)
    missing = [t for t in TABLES if t not in out]
    if missing:
        raise ImportError(f"ultralytics/cfg/__init__.py no longer defines {', '.join(missing)} as literals")
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float))


def type_problem(key: str, value) -> str | None:
    """Why ``key=value`` breaks ultralytics' type rules (as its ``check_cfg`` words them), or None.

    The common cases only; ultralytics' ``check_cfg`` has the last word once it is imported.
    """
    if value is None:
        default = defaults().get(key)
        typed = any(key in type_tables()[t] for t in TABLES if t != "CFG_INT_MIN")
        return f"'{key}=None' is invalid: '{key}' must not be None" if typed and default is not None else None
    t = type_tables()
    if key in t["CFG_FLOAT_KEYS"] and not _number(value):
        return f"'{key}={value}' is of invalid type {type(value).__name__}: '{key}' takes an int or a float"
    if key in t["CFG_FRACTION_KEYS"] and key != "fraction":
        if not _number(value):
            return f"'{key}={value}' is of invalid type {type(value).__name__}: '{key}' takes a float in [0, 1]"
        if not 0.0 <= value <= 1.0:
            return f"'{key}={value}' is out of range: '{key}' takes a float in [0, 1]"
    if key in t["CFG_INT_KEYS"]:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return f"'{key}={value}' is of invalid type {type(value).__name__}: '{key}' takes an int"
        low = t["CFG_INT_MIN"].get(key)
        if low is not None and value < low:
            return f"'{key}={value}' is out of range: '{key}' must be >= {low}"
    if key in t["CFG_BOOL_KEYS"] and not isinstance(value, bool):
        return f"'{key}={value}' is of invalid type {type(value).__name__}: '{key}' takes True or False"
    if key in t["CFG_STR_KEYS"] and not isinstance(value, str):
        return f"'{key}={value}' is of invalid type {type(value).__name__}: '{key}' takes a string"
    return None
