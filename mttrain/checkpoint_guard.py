"""Checkpoints without code: a ``.pt`` is read with ``torch.load(weights_only=True)`` and an allow-list.

ultralytics loads every .pt with ``torch.load(weights_only=False)``: unpickling runs whatever the file asks for.
``mttrain._ultralytics`` routes every load of ultralytics' that mttrain reaches through
:func:`load_checkpoint_file` (see ``_install_safe_loading`` there), which:

1. reads ``data.pkl`` with torch's own zip reader and walks its opcodes (``mttrain.checkpoint_pickle.pickle_problem``): every global must
   be on the allow-list, and no call (REDUCE) may construct an allowed model class or pass one to a function
   (torch's ``_rebuild_from_type_v2(func, ...)`` calls ``func``): a checkpoint only ever builds modules with
   ``cls.__new__`` + ``__setstate__``, so constructors, which parse YAML and allocate, never run from a file;
2. refuses compressed zip entries (torch.save stores them uncompressed; a deflated storage would be a zip bomb);
3. runs torch.load(weights_only=True) with exactly the allowed globals the file names registered;
4. checks the result is an ultralytics/mttrain checkpoint (a dict holding a YOLO model whose tensors fit their
   storages), so what follows never meets a surprise.

The allow-list mirrors ultralytics' own ULTRALYTICS_SAFE_LOAD mode (``nn.tasks._SafeLoad``; ``check_internals``
fails when ultralytics adds an entry we do not have) plus mttrain's classes, which that mode rejects.
:func:`trust_weights_file` (--trust-weights, trust_weights=True) restores ultralytics' own loading for one file.
torch's private serialization helpers (``_is_zipfile``, ``_open_zipfile_reader``, ``_weights_only_unpickler``)
are touched here and in :mod:`mttrain.checkpoint_pickle` only, and checked by ``mttrain._ultralytics.check_internals``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from mtdata.limits import MAX_KEYPOINTS
from mttrain.checkpoint_pickle import allowed_global, pickle_problem

_TRUSTED: set[str] = set()  # resolved paths the user vouched for (process-wide: resume reloads the same file)
_LOAD_LOCK = threading.Lock()

MAX_PICKLE_BYTES = 256 * 2**20  # data.pkl of a yolov8x checkpoint: ~0.3 MB; storages live beside it


TRUSTED_ENV = "MTTRAIN_TRUSTED_WEIGHTS"  # os.pathsep-joined resolved paths: how the trust reaches child processes


def trust_weights_file(path) -> None:
    """Load ``path`` as ultralytics does (full unpickling: it may run code) for the rest of this process and the
    processes it starts: ultralytics' DDP launcher runs each GPU's trainer in a new Python, which reloads the
    weights (and, on resume, the run's last.pt); it inherits the trust through the environment."""
    resolved = os.path.realpath(os.fspath(path))
    _TRUSTED.add(resolved)
    inherited = [p for p in os.environ.get(TRUSTED_ENV, "").split(os.pathsep) if p]
    if resolved not in inherited:
        os.environ[TRUSTED_ENV] = os.pathsep.join([*inherited, resolved])


def _is_trusted(path) -> bool:
    resolved = os.path.realpath(os.fspath(path))
    return resolved in _TRUSTED or resolved in os.environ.get(TRUSTED_ENV, "").split(os.pathsep)


def _read_pickle_record(path: Path) -> bytes:
    """``data.pkl`` of a torch.save archive, read as torch.load will read it; WeightsError for anything else."""
    import zipfile

    import torch

    from mttrain.errors import WeightsError

    with open(path, "rb") as f:
        is_zip = torch.serialization._is_zipfile(f)
        head = f.read(MAX_PICKLE_BYTES) if not is_zip else b""
    if not is_zip:
        problem = _legacy_pickle_problem(head)
        raise WeightsError(
            f"refused: {problem}" if problem else
            "not a PyTorch checkpoint: torch.save writes a zip archive and this file is not one "
            "(text, empty, truncated or another format)", file=path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightsError(f"not a readable checkpoint: a damaged or truncated zip archive ({e})", file=path) from e
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise WeightsError(f"refused: compressed entry {packed[0]!r} (torch.save never compresses; a compressed "
                           "storage can expand without bound)", file=path)
    try:
        with torch.serialization._open_zipfile_reader(str(path)) as reader:
            records = reader.get_all_records()
            if "constants.pkl" in records:
                raise WeightsError("a TorchScript archive, not a checkpoint: name it .torchscript to predict or "
                                   "validate with it", file=path)
            if "data.pkl" not in records:
                raise WeightsError("not a torch.save checkpoint (the zip archive has no data.pkl)", file=path)
            data = reader.get_record("data.pkl")
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001  torch's reader raises RuntimeError for any damage it finds
        raise WeightsError(f"not a readable checkpoint: {_first_line(e)}", file=path) from e
    if len(data) > MAX_PICKLE_BYTES:
        raise WeightsError(f"refused: data.pkl is {len(data) / 2**20:.0f} MB (a checkpoint's is well under 1 MB)",
                           file=path)
    return data


def _legacy_pickle_problem(head: bytes, max_pickles: int = 8) -> str | None:
    """What the pickles at the start of a non-zip file ask for (a bare pickle, or torch's legacy format: a few
    pickles, then storage bytes); None when they ask for nothing refused, or are not pickles."""
    import io
    import pickletools

    stream, start = io.BytesIO(head), 0
    for _ in range(max_pickles):
        try:
            for _op in pickletools.genops(stream):  # stops after STOP, leaving the stream at the next pickle
                pass
            end = stream.tell()
            problem = pickle_problem(head[start:end])
        except Exception:  # noqa: BLE001  not (or no longer) pickle bytes
            return None
        if problem:
            return problem
        start = end
    return None


def _unpickling_reason(e: BaseException) -> str:
    """The reason inside torch's many-line weights_only error (after "WeightsUnpickler error:")."""
    import re

    text = str(e)
    match = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\s*\n|Check the documentation|$)", text, re.S)
    reason = " ".join(match.group(1).split()) if match else _first_line(e)
    return reason[:300]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def load_checkpoint_file(path, trust_weights: bool = False) -> dict:
    """Load an ultralytics or mttrain ``.pt`` without running code from it; returns the checkpoint dict.

    ``trust_weights`` (or an earlier ``trust_weights_file(path)``) loads it as ultralytics does instead.

    Raises:
        WeightsError: the file is missing, not a checkpoint, or asks for anything off the allow-list.
    """
    import pickle

    import torch

    from mttrain.errors import WeightsError

    path = Path(os.fspath(path))
    if not path.is_file():
        raise WeightsError("weights file not found (mttrain never downloads weights)", file=path)
    if trust_weights or _is_trusted(path):
        try:
            from mttrain._ultralytics import ultralytics_torch_safe_load

            ckpt, _ = ultralytics_torch_safe_load(str(path), safe_only=False)
        except (TypeError, ModuleNotFoundError) as e:  # ultralytics' messages for damaged or foreign files
            raise WeightsError(f"not a loadable checkpoint: {_first_line(e)}", file=path) from e
        return _checked_checkpoint(ckpt, path, trusted=True)
    data = _read_pickle_record(path)
    try:
        problem = pickle_problem(data)
    except Exception as e:  # noqa: BLE001  malformed opcodes of any kind
        raise WeightsError(f"not a readable checkpoint: data.pkl is not a valid pickle ({_first_line(e)})",
                           file=path) from e
    if problem:
        raise WeightsError(f"refused: {problem}; load it with --trust-weights (trust_weights=True) only if you "
                           "trust who made it: unpickling it may run code", file=path)
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"not a readable checkpoint: {_first_line(e)}", file=path) from e
    off_list = [name for name in needed if allowed_global(name) is None]
    if off_list:  # torch's scan saw a global the opcode walk did not: refuse rather than guess
        raise WeightsError(f"refused: asks for the global {off_list[0]}, which no mttrain or ultralytics checkpoint "
                           "needs", file=path)
    entries = [(allowed_global(name), name) for name in needed]
    if "numpy.dtype" in needed:  # numpy.dtype(...) builds these; they are absent from the static scan
        import numpy as np

        entries += [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                                np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    with _LOAD_LOCK:  # add_safe_globals rebinds a process-wide set: register, never remove (see _SafeLoad)
        torch.serialization.add_safe_globals(entries)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(f"refused: {_unpickling_reason(e)}; load it with --trust-weights (trust_weights=True) "
                           "only if you trust who made it: unpickling it may run code", file=path) from e
    except Exception as e:  # noqa: BLE001  zip, storage and pickle damage surface as many types
        raise WeightsError(f"not a loadable checkpoint: {_first_line(e)}", file=path) from e
    return _checked_checkpoint(ckpt, path)


def _checked_checkpoint(ckpt, path: Path, trusted: bool = False) -> dict:
    """``ckpt`` if it is what ultralytics and mttrain expect; WeightsError naming what is not."""
    from torch import nn
    from ultralytics.nn.tasks import BaseModel

    from mttrain.errors import WeightsError

    if isinstance(ckpt, BaseModel):
        ckpt = {"model": ckpt}  # torch.save(model) instead of a checkpoint dict; ultralytics accepts it too
    if not isinstance(ckpt, dict):
        raise WeightsError(f"not a checkpoint: it holds a {type(ckpt).__name__}, not a dict with a model", file=path)
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, BaseModel):
        found = type(model).__name__ if model is not None else "nothing"
        raise WeightsError(f"holds no YOLO model ('model'/'ema' is {found}): expected an ultralytics or mttrain "
                           "checkpoint", file=path)
    if not isinstance(ckpt.get("train_args") or {}, dict):
        raise WeightsError("'train_args' is not a dict", file=path)
    if trusted:
        return ckpt
    problem = _module_tree_problem(model)
    if problem:
        raise WeightsError(problem, file=path)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        # A view may claim more elements than the file stores (stride 0): .float() would then allocate them all.
        if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
            raise WeightsError(f"tensor {name} claims {tensor.numel()} elements, more than the file stores for it",
                               file=path)
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "model", None), nn.Module):
        raise WeightsError("the model has no layers", file=path)
    yaml_cfg = getattr(model, "yaml", None)
    if yaml_cfg is not None and not isinstance(yaml_cfg, dict):
        raise WeightsError("the model's 'yaml' is not a dict", file=path)
    kpt_shape = getattr(model, "kpt_shape", None)
    if kpt_shape is not None:
        shape = list(kpt_shape) if isinstance(kpt_shape, (list, tuple)) else None
        if not shape or len(shape) != 2 or not all(type(v) is int for v in shape) or not (
                1 <= shape[0] <= MAX_KEYPOINTS and shape[1] in (2, 3)):
            raise WeightsError(f"kpt_shape {str(kpt_shape)[:60]} is not [K <= {MAX_KEYPOINTS}, 2 or 3]",
                               file=path)
    names = getattr(model, "names", None)
    if names is not None and not (isinstance(names, (dict, list)) and len(names) <= MAX_CHECKPOINT_CLASSES):
        raise WeightsError("'names' is not a list or dict of class names", file=path)
    return ckpt


MAX_CHECKPOINT_CLASSES = 100_000
MAX_CHECKPOINT_MODULES = 100_000  # yolov8x-seg holds ~450; each is a dict the unpickler built from the file


def _module_tree_problem(model) -> str | None:
    """What makes ``model``'s module tree unlike one torch built, or None.

    The unpickler fills each module's ``_modules``, ``_parameters`` and ``_buffers`` straight from the file, so
    a name may be any allowed object and a child any value; torch's own walks (``named_buffers``, ``.to()``)
    then fail deep inside with a TypeError. Walked iteratively with a visited set: a file may hold a cycle.
    """
    import torch
    from torch import nn

    expected = {"_modules": nn.Module, "_parameters": nn.Parameter, "_buffers": torch.Tensor}
    seen, stack = {id(model)}, [("model", model)]
    while stack:
        where, module = stack.pop()
        for slot, kind in expected.items():
            members = module.__dict__.get(slot)
            if not isinstance(members, dict):
                return f"{where}.{slot} is a {type(members).__name__}, not a dict"
            for name, value in members.items():
                if type(name) is not str:
                    return f"{where}.{slot} has a name that is a {type(name).__name__}, not a string"
                if value is not None and not isinstance(value, kind):
                    return f"{where}.{name} is a {type(value).__name__}, not a {kind.__name__}"
                if slot == "_modules" and value is not None and id(value) not in seen:
                    if len(seen) >= MAX_CHECKPOINT_MODULES:
                        return f"the model holds more than {MAX_CHECKPOINT_MODULES} modules"
                    seen.add(id(value))
                    stack.append((f"{where}.{name}", value))
    return None
