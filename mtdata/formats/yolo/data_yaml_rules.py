"""The one data.yaml reader: every problem at once, each with its rule id and key.

``mtdata check`` reports all of them (:mod:`mtdata.check.data_yaml` makes them findings at their
keys' lines); every other caller (merge, view, export, the trainer) goes through
:func:`mtdata.formats.yolo.data_yaml.parse_data_dict`, which raises the first. One walk of the keys,
so what check accepts is exactly what the commands read. Every rule here is an error except
``yaml_missing_split`` (a warning, only reported with ``splits_required``).
Where this reader once had a twin that disagreed, ultralytics' ``check_det_dataset`` decided:
``nc`` must match ``names`` (an integer-like ``nc: '2'`` is accepted), and an empty split list
(``train: []``) is read as a split with no images (check reports it as ``yaml_split_empty``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.data_yaml_types import (
    SPLIT_KEYS,
    DatasetConfig,
    dataset_root,
    is_folder_name,
    kpt_shape_problem,
    shown_value,
    sigmas_ok,
)
from mtdata.formats.yolo.rows import TASKS

_KNOWN_KEYS = {"path", *SPLIT_KEYS, "names", "nc", "task", "kpt_shape", "kpt_names", "flip_idx", "skeleton", "kpt_sigmas"}


class YamlProblem(NamedTuple):
    """One problem of a data.yaml: its rule id (``mtdata.check.rules``), the top-level key it is at (None
    for a missing key) and a one-line message."""

    rule: str
    key: str | None
    message: str


@dataclass
class DataYamlRead:
    """Result of :func:`read_data_dict`.

    Attributes:
        config: the parsed config; without problems it is what every command reads. With
            problems it keeps what is usable (bad flip_idx, skeleton or sigmas dropped), or is
            None when the document is not a mapping of keys.
        layout_ok: the row layout (names, task, kpt_shape, kpt_names) is valid, so label rows
            can be checked.
        problems: every problem, in the order of the keys' rules.
    """

    config: DatasetConfig | None
    layout_ok: bool
    problems: list[YamlProblem] = field(default_factory=list)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Collector:
    def __init__(self):
        self.problems: list[YamlProblem] = []

    def add(self, rule: str, key: str | None, message: str) -> None:
        self.problems.append(YamlProblem(rule, key, message))


def _class_count(nc: Any) -> int | None:
    """``nc`` as ultralytics reads it: an integer, or integer-like (``'10'``, ``10.0``); None otherwise."""
    if _is_int(nc):
        return nc
    try:
        value = float(nc)
    except (TypeError, ValueError, OverflowError):
        return None
    return int(value) if value.is_integer() else None


def _names(data: dict, c: _Collector) -> dict[int, str] | None:
    if "names" not in data:
        c.add("yaml_missing_key", None, "missing key 'names' (class names, list or dict)")
        return None
    raw = data["names"]
    if isinstance(raw, list):
        names = {i: str(n) for i, n in enumerate(raw)}
    elif isinstance(raw, dict):
        try:
            names = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            c.add("yaml_bad_value", "names", f"'names' keys must be class ids 0..n-1, found {shown_value(list(raw))}")
            return None
        if sorted(names) != list(range(len(names))):
            c.add("yaml_bad_value", "names", f"'names' ids must be 0..{len(names) - 1}, found {shown_value(sorted(names))}")
            return None
    else:
        c.add("yaml_bad_value", "names", f"'names' must be a list or a dict of class names, found {type(raw).__name__}")
        return None
    if not names:
        c.add("yaml_bad_value", "names", "'names' is empty")
        return None
    nc = data.get("nc")
    if nc is not None and _class_count(nc) != len(names):
        c.add("yaml_bad_value", "nc", f"'nc' is {shown_value(nc)} but 'names' lists {len(names)} classes")
    return names


def _kpt_shape(data: dict, c: _Collector) -> tuple[tuple[int, int] | None, bool]:
    """(kpt_shape or None, valid)."""
    raw = data.get("kpt_shape")
    if raw is None:
        return None, True
    problem = kpt_shape_problem(raw)
    if problem is None:
        return (raw[0], raw[1]), True
    c.add("yaml_bad_kpt_shape", "kpt_shape", problem)
    return None, False


def _kpt_names(raw: Any, names: dict[int, str], k: int, c: _Collector) -> tuple[dict[int, list[str]], bool]:
    """``{class_id or class_name: [keypoint names]}`` or ``[class names]`` -> (class id -> K names, valid)."""
    if not isinstance(raw, (list, dict)):
        c.add("yaml_bad_kpt_names", "kpt_names", f"'kpt_names' must be a list of class names or a dict, found {type(raw).__name__}")
        return {}, False
    by_name = {v: i for i, v in names.items()}
    out, ok = {}, True
    for key in raw:
        value = raw[key] if isinstance(raw, dict) else None
        if _is_int(key) and key in names:
            cls = key
        elif isinstance(key, str) and key in by_name:
            cls = by_name[key]
        elif isinstance(key, str) and key.isdigit() and int(key) in names:
            cls = int(key)
        else:
            c.add("yaml_bad_kpt_names", "kpt_names", f"'kpt_names' names class {shown_value(key)}, which is not in 'names'")
            ok = False
            continue
        kp_names = [str(v) for v in value] if isinstance(value, list) else [f"kpt{i}" for i in range(k)]
        if len(kp_names) != k:
            c.add("yaml_bad_kpt_names", "kpt_names", f"'kpt_names' for class {shown_value(key)} lists {len(kp_names)} keypoints, kpt_shape says {k}")
            ok = False
            continue
        out[cls] = kp_names
    return out, ok


def _flip_idx(raw: Any, k: int | None, c: _Collector) -> list[int] | None:
    if not isinstance(raw, list) or not all(_is_int(v) for v in raw):
        c.add("yaml_bad_flip_idx", "flip_idx", f"'flip_idx' must be a list of integers, found {shown_value(raw)}")
        return None
    if k is None:
        c.add("yaml_bad_flip_idx", "flip_idx", "'flip_idx' is given but 'kpt_shape' is not (or is invalid)")
        return None
    if len(raw) != k:
        c.add("yaml_bad_flip_idx", "flip_idx", f"'flip_idx' has {len(raw)} entries, kpt_shape says {k} keypoints")
    counts = Counter(raw)  # raw.count per value would be quadratic
    bad = sorted({v for v in raw if not 0 <= v < k} | {v for v, n in counts.items() if n > 1})
    if bad:
        c.add("yaml_bad_flip_idx", "flip_idx", f"'flip_idx' must be a permutation of 0..{k - 1}; repeated or out of range: {shown_value(bad)}")
    if bad or len(raw) != k:
        return None
    wrong = [i for i in range(k) if raw[raw[i]] != i]
    if wrong:
        i = wrong[0]
        c.add("yaml_bad_flip_idx", "flip_idx", f"'flip_idx' must be its own inverse (left<->right pairs): {i} -> {raw[i]} -> {raw[raw[i]]}")
        return None
    return list(raw)


def _skeleton(raw: Any, k: int | None, c: _Collector) -> list[list[int]] | None:
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 and all(_is_int(v) for v in p) for p in raw):
        c.add("yaml_bad_skeleton", "skeleton", f"'skeleton' must be a list of [a, b] keypoint index pairs, found {shown_value(raw)}")
        return None
    if k is None:
        c.add("yaml_bad_skeleton", "skeleton", "'skeleton' is given but 'kpt_shape' is not (or is invalid)")
        return None
    bad = [p for p in raw if not all(0 <= v < k for v in p)]
    if bad:
        c.add("yaml_bad_skeleton", "skeleton", f"'skeleton' pairs {shown_value(bad)} are outside keypoints 0..{k - 1} (0-based)")
        return None
    return [list(p) for p in raw]


def _splits(data: dict, c: _Collector, required: bool) -> dict[str, list[str]]:
    """Split key -> folders; ``required``: also report a missing train or val (training needs both)."""
    splits = {}
    for key in SPLIT_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if is_folder_name(value):
            splits[key] = [value]
        elif isinstance(value, list) and all(is_folder_name(v) for v in value):
            splits[key] = list(value)  # [] is a split with no images, as ultralytics reads it
        else:
            c.add("yaml_bad_value", key, f"'{key}' must be a folder or a list of folders, found {shown_value(value)}")
    if not required:
        return splits
    if not any(k in data for k in SPLIT_KEYS):
        c.add("yaml_missing_key", None, "no split: data.yaml needs 'train' and 'val' (image folders)")
    else:
        for key in ("train", "val"):
            if key not in data:
                c.add("yaml_missing_split", None, f"no '{key}' split: training needs both 'train' and 'val'")
    return splits


def _root(data: dict, file: Path, c: _Collector) -> Path:
    try:
        return dataset_root(data, file)
    except DatasetConfigError as e:
        c.add("yaml_bad_value", "path", e.message)
        return file.parent.resolve()


def _layout(data: dict, c: _Collector, task: str | None) -> tuple[dict, bool]:
    """Names, task, kpt_shape and kpt_names: (fields of DatasetConfig, the row layout is valid)."""
    names = _names(data, c)
    kpt_shape, shape_ok = _kpt_shape(data, c)
    k = kpt_shape[0] if kpt_shape else None
    task = task or data.get("task") or ("multitask" if kpt_shape and data.get("kpt_names") else "pose" if kpt_shape else "segment")
    task_ok = task in TASKS
    if not task_ok:
        c.add("yaml_bad_value", "task", f"'task' must be one of {', '.join(TASKS)}, found {shown_value(task)}")
    if task in ("pose", "multitask") and kpt_shape is None and shape_ok:
        c.add("yaml_missing_key", None, f"a {task} dataset needs 'kpt_shape: [K, 3]'")
        shape_ok = False
    if task == "multitask" and kpt_shape and kpt_shape[1] != 3:
        c.add("yaml_bad_kpt_shape", "kpt_shape", f"multitask rows carry x, y, visibility: kpt_shape must be [K, 3], found {list(kpt_shape)}")
        shape_ok = False
    kpt_names, names_ok = {}, True
    if data.get("kpt_names") is not None and kpt_shape and names is not None:
        kpt_names, names_ok = _kpt_names(data["kpt_names"], names, k, c)
    given = data.get("kpt_names") is not None
    if task == "multitask" and shape_ok and (not given or (names is not None and names_ok and not kpt_names)):
        c.add("yaml_missing_key", None, "a multitask dataset needs 'kpt_names': the classes that have keypoints")
        names_ok = False
    layout_ok = names is not None and task_ok and shape_ok and names_ok
    if task == "pose" and layout_ok and not kpt_names:
        kpt_names = {i: [f"kpt{j}" for j in range(k)] for i in names}
    fields = {"names": names or {}, "task": task if task_ok else "segment", "kpt_shape": kpt_shape, "kpt_names": kpt_names}
    return fields, layout_ok


def read_data_dict(data: Any, file: Path, task: str | None = None, splits_required: bool = True) -> DataYamlRead:
    """Every problem of a loaded data.yaml mapping, and the config read from it.

    Args:
        data: the loaded YAML document.
        file: the data.yaml it came from (the relative root is resolved from its folder).
        task: overrides the task inferred from the keys.
        splits_required: report a missing train or val split (check does; merge reads
            datasets without split keys).
    """
    c = _Collector()
    if not isinstance(data, dict):
        c.add("yaml_bad_value", None, f"expected a mapping of keys, found {type(data).__name__}")
        return DataYamlRead(None, False, c.problems)
    fields, layout_ok = _layout(data, c, task)
    k = fields["kpt_shape"][0] if fields["kpt_shape"] else None
    flip_idx = _flip_idx(data["flip_idx"], k, c) if data.get("flip_idx") is not None else None
    skeleton = _skeleton(data["skeleton"], k, c) if data.get("skeleton") is not None else None
    sigmas = data.get("kpt_sigmas")
    if sigmas is not None and not sigmas_ok(sigmas, k):
        c.add("yaml_bad_value", "kpt_sigmas", f"'kpt_sigmas' must be {k if k is not None else 'K'} positive numbers, found {shown_value(sigmas)}")
        sigmas = None
    splits = _splits(data, c, splits_required)
    root = _root(data, file, c)
    extra = {key: v for key, v in data.items() if key not in _KNOWN_KEYS}
    config = DatasetConfig(
        root=root, splits=splits, **fields, flip_idx=flip_idx, skeleton=skeleton,
        kpt_sigmas=[float(s) for s in sigmas] if sigmas is not None else None, extra=extra, file=file,
    )
    return DataYamlRead(config, layout_ok, c.problems)
