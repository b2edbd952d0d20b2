"""What a checkpoint's pickle may ask for: the allow-list of globals, and a walk over its opcodes that names
what would run (:func:`pickle_problem`), without building any object. Used by :mod:`mttrain.checkpoint_guard`.
"""

from __future__ import annotations

import os

MODULE_CLASS_PACKAGES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks", "mttrain.nn")
OBJECT_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal", "mttrain.nn.loss")
MAX_NESTING = 1000


def _restricted_getattr(obj, name: str):
    """``builtins.getattr`` as official checkpoints use it (``Detect.forward``, enum members), nothing else."""
    import enum

    from torch import nn

    if isinstance(obj, type) and issubclass(obj, nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(obj, name)
    if isinstance(obj, type) and issubclass(obj, enum.Enum) and name in obj.__members__:
        return obj[name]
    if isinstance(obj, nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(type(obj), name).__get__(obj)
    import pickle

    owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    raise pickle.UnpicklingError(f"calls getattr({owner}, {name!r}), which no checkpoint needs")


def data_globals() -> dict[str, object]:
    """Allowed globals that are data, not models: ultralytics' list (nn.tasks._SafeLoad._build) and its aliases."""
    import pathlib

    import numpy as np
    from torch import nn
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import IterableSimpleNamespace
    from ultralytics.utils.loss import E2EDetectLoss

    scalar = np.float64(0).__reduce__()[0]
    out: dict[str, object] = {
        "numpy.dtype": np.dtype,
        "numpy.core.multiarray.scalar": scalar,
        "numpy._core.multiarray.scalar": scalar,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "builtins.getattr": _restricted_getattr,
        # legacy names of official checkpoints (ultralytics maps them the same way)
        "ultralytics.nn.modules.block.Silence": nn.Identity,
        "ultralytics.nn.tasks.YOLOv10DetectionModel": DetectionModel,
        "ultralytics.utils.loss.v10DetectLoss": E2EDetectLoss,
    }
    for module in ("pathlib", "pathlib._local"):
        for name in ("PosixPath", "WindowsPath"):
            out[f"{module}.{name}"] = pathlib.WindowsPath if os.name == "nt" else pathlib.PosixPath
    return out


_DATA_GLOBALS: dict[str, object] | None = None
_CONSTRUCTIBLE = ("ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace",
                  "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "builtins.getattr",
                  "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib._local.PosixPath", "pathlib._local.WindowsPath")


_RESOLVED: dict[str, object] = {}  # name -> allowed_global(name), the answer never changes in a process


def allowed_global(name: str):
    """The object an allowed global ``module.Name`` stands for, or None when it is not allowed (memoized)."""
    if name not in _RESOLVED:
        _RESOLVED[name] = _resolve_global(name)
    return _RESOLVED[name]


def _resolve_global(name: str):
    """The object an allowed global ``module.Name`` stands for, or None when it is not allowed.

    Model classes: nn.Module subclasses defined in MODULE_CLASS_PACKAGES; plain classes defined in
    OBJECT_CLASS_MODULES (losses, assigners); plus the data globals. Only those packages are ever imported.
    """
    import importlib
    import re

    from torch import nn

    global _DATA_GLOBALS
    if _DATA_GLOBALS is None:
        _DATA_GLOBALS = data_globals()
    if name in _DATA_GLOBALS:
        return _DATA_GLOBALS[name]
    module, _, attr = name.rpartition(".")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", attr) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", module):
        return None
    in_packages = any(module == p or module.startswith(p + ".") for p in MODULE_CLASS_PACKAGES)
    if not in_packages and module not in OBJECT_CLASS_MODULES:
        return None
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    if not isinstance(obj, type) or obj.__module__ != module:
        return None
    if module in OBJECT_CLASS_MODULES or issubclass(obj, nn.Module):
        return obj
    return None


def _getattr_allowed(owner: str, attr: str) -> bool:
    """Whether ``getattr(owner, attr)`` is one an official checkpoint pickles (see ``_restricted_getattr``)."""
    import enum

    from torch import nn

    obj = allowed_global(owner)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return attr in ("forward", "forward_fuse")
    return isinstance(obj, type) and issubclass(obj, enum.Enum) and attr in obj.__members__


def _is_model_class(name: str) -> bool:
    """A class of the allow-list that a checkpoint may instantiate (``__new__``) but never call."""
    return name not in _CONSTRUCTIBLE and isinstance(allowed_global(name), type)


class _Global(str):
    """A global as the opcode walk sees it."""


class _Called(str):
    """What a REDUCE of ``builtins.getattr`` returned (a bound or unbound method)."""


def pickle_problem(data: bytes, protocol_limit: int = 5) -> str | None:
    """What in pickle ``data`` may not run, in words (None when nothing): a global off the allow-list, or a call
    that would construct an allowed model class or hand one (or a method) to a function.

    Walks the opcodes with a symbolic stack (no object is built). Raises ValueError for bytes that are not a pickle.
    """
    import pickletools

    walk = _OpcodeWalk()
    for op, arg, _ in pickletools.genops(data):
        if op.name == "STOP":
            break
        problem = walk.step(op, arg)
        if problem:
            return problem
    return None


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
                         "STRING"})


class _OpcodeWalk:
    """The stack and memo of a pickle as its opcodes would build them, symbolically: strings, globals
    (:class:`_Global`), tuples and what ``getattr`` returned (:class:`_Called`) are kept; every other value is None."""

    def __init__(self) -> None:
        self.mark = object()
        self.stack: list = []
        self.memo: dict = {}

    def step(self, op, arg) -> str | None:
        """Apply one opcode (not STOP); the problem, in words, if it may not run."""
        name, stack = op.name, self.stack
        if name == "GLOBAL":
            return self._push_global(_global_name(str(arg)))
        if name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(attr, str):
                raise ValueError("STACK_GLOBAL of non-strings")
            return self._push_global(f"{module}.{attr}")
        if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX"):
            return self._call(name)
        if name in _STRING_OPS:
            stack.append(str(arg))
        elif name == "MARK":
            stack.append(self.mark)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise ValueError("stack underflow")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(self._pop_to_mark()))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(self.memo.get(arg))
        elif name == "DUP":
            stack.append(stack[-1])
        else:  # everything else: its documented stack effect, values unknown
            marked, before, after = _stack_effect(op)
            if marked:
                self._pop_to_mark()
            if len(stack) < before:
                raise ValueError("stack underflow")
            if before:
                del stack[-before:]
            stack.extend([None] * after)
        return None

    def _pop_to_mark(self) -> list:
        items = []
        while self.stack:
            item = self.stack.pop()
            if item is self.mark:
                return items[::-1]
            items.append(item)
        raise ValueError("MARK missing")

    def _push_global(self, full: str) -> str | None:
        if full not in _torch_default_globals() and allowed_global(full) is None:
            return f"asks for the global {full}, which no mttrain or ultralytics checkpoint needs"
        self.stack.append(_Global(full))
        return None

    def _call(self, name: str) -> str | None:
        """REDUCE (``func(*args)``), NEWOBJ, NEWOBJ_EX (``cls.__new__``): a call of an allowed model class's constructor,
        a ``getattr`` no checkpoint pickles, or a class or method handed to a function is a problem."""
        stack = self.stack
        args = stack.pop()
        if name == "NEWOBJ_EX":
            args = (args, stack.pop())
        func = stack.pop()
        if name == "REDUCE":
            if isinstance(func, _Global) and _is_model_class(func):
                return f"calls the constructor of {func} (a checkpoint never does)"
            if func == "builtins.getattr":
                if not (isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], str)
                        and isinstance(args[0], _Global) and _getattr_allowed(args[0], args[1])):
                    shown = ", ".join(str(a) if isinstance(a, str) else "..." for a in args) if isinstance(
                        args, tuple) else "..."
                    return f"calls getattr({shown}), which no checkpoint needs"
                stack.append(_Called(f"{args[0]}.{args[1]}"))
                return None
            found = _held_callable(args)
            if found:
                return f"passes {found} to {func or 'a function'} (a checkpoint never does)"
        stack.append(None)
        return None


def _global_name(arg: str) -> str:
    """``module.attr`` of a GLOBAL opcode's ``"module attr"``, Python 2 names mapped as torch's unpickler maps them."""
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    module, _, attr = arg.partition(" ")
    if (module, attr) in NAME_MAPPING:
        module, attr = NAME_MAPPING[(module, attr)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{attr}"


def _held_callable(value, depth: int = 0) -> str | None:
    """The model class or method a call's arguments hold (tuples searched), in words; None when none."""
    if depth > MAX_NESTING:
        return "nesting too deep"
    if isinstance(value, _Called):
        return f"the method {value}"
    if isinstance(value, _Global) and _is_model_class(value):
        return f"the class {value}"
    if isinstance(value, tuple):
        for item in value:
            found = _held_callable(item, depth + 1)
            if found:
                return found
    return None


_STACK_EFFECTS: dict[str, tuple[bool, int, int]] = {}


def _stack_effect(op) -> tuple[bool, int, int]:
    """(pops to a MARK first, items popped before that mark, items pushed) of a pickletools opcode."""
    if op.name not in _STACK_EFFECTS:
        before = [s.name for s in op.stack_before]
        marked = "mark" in before
        _STACK_EFFECTS[op.name] = (marked, before.index("mark") if marked else len(before), len(op.stack_after))
    return _STACK_EFFECTS[op.name]


_TORCH_DEFAULT_GLOBALS: frozenset[str] | None = None


def _torch_default_globals() -> frozenset[str]:
    """Names torch's weights_only unpickler allows on its own (tensors, storages, dtypes, OrderedDict...)."""
    global _TORCH_DEFAULT_GLOBALS
    if _TORCH_DEFAULT_GLOBALS is None:
        from torch import _weights_only_unpickler

        _TORCH_DEFAULT_GLOBALS = frozenset(_weights_only_unpickler._get_allowed_globals())
    return _TORCH_DEFAULT_GLOBALS
