"""data.yaml: read, validate and write the dataset description YOLO trainers use.

Keys: ``path`` (dataset root), ``train``/``val``/``test`` (image folders relative to it),
``names`` (dict or list), and for keypoint data ``kpt_shape: [K, 2|3]``, ``kpt_names``
(``{class_id: [keypoint names]}`` as ultralytics writes it, or a list of class names),
``flip_idx``, ``skeleton`` (0-based pairs) and ``kpt_sigmas``. ``task`` names the row
layout; without it, ``kpt_shape`` + ``kpt_names`` means multitask, ``kpt_shape`` alone pose,
neither segment.

A data.yaml comes from strangers: it is read through :func:`load_yaml_mapping`, which bounds
its size, its nesting and what its aliases expand to (a few lines of ``&a [*b, *b, ...]``
expand to gigabytes) before anything walks it, and every value is checked before anything is
allocated from it (``kpt_shape`` at most MAX_KEYPOINTS keypoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mtdata.errors import DatasetConfigError, why_missing
from mtdata.formats.yolo.data_yaml_rules import read_data_dict
from mtdata.formats.yolo.data_yaml_types import (  # noqa: F401  (re-exported: every command imports them from here)
    IMAGE_SUFFIXES,
    SPLIT_KEYS,
    DatasetConfig,
    dataset_root,
    is_folder_name,
    kpt_shape_problem,
    label_dir_for,
    shown_value,
    sigmas_ok,
)

# Bounds on what a data.yaml may hold (each far above any real dataset's).
MAX_DATA_YAML_BYTES = 1 << 20  # LVIS's 1,203 class names take 30 KB; 1 MiB parses in ~1 s
MAX_YAML_NODES = 100_000  # values and containers once aliases are expanded
# libyaml's parser when PyYAML has it: 8x faster than the pure-Python one on a large file
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_data_dict(data: Any, file: Path, task: str | None = None) -> DatasetConfig:
    """Validate a loaded data.yaml mapping; ``task`` overrides the one inferred from its keys.

    The rules are :func:`mtdata.formats.yolo.data_yaml_rules.read_data_dict`'s (``mtdata check``
    reports them all); this raises the first problem (without the split-presence rules, each is
    an error).

    Raises:
        DatasetConfigError: the first problem, naming the file and key.
    """
    read = read_data_dict(data, file, task=task, splits_required=False)
    if read.problems:
        raise DatasetConfigError(read.problems[0].message, file=file)
    return read.config


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: yaml.Node, path: Path) -> int:
    """Nodes of the document once every alias is expanded, counted over the composed graph
    (each shared node once, iteratively): refuses beyond MAX_YAML_NODES, and cycles."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                line = node.start_mark.line + 1
                raise DatasetConfigError(
                    f"the value at line {line} expands to more than {MAX_YAML_NODES:,} values "
                    "(YAML aliases repeating aliases?): refused", file=path)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DatasetConfigError(f"a YAML alias at line {node.start_mark.line + 1} refers to itself: refused", file=path)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes.get(id(root), 0)


def _read_bounded_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_DATA_YAML_BYTES:
        raise DatasetConfigError(f"{size:,} bytes: a data.yaml is at most {MAX_DATA_YAML_BYTES:,}", file=path)
    with open(path, "rb") as f:
        data = f.read(MAX_DATA_YAML_BYTES + 1)
    if len(data) > MAX_DATA_YAML_BYTES:
        raise DatasetConfigError(f"more than {MAX_DATA_YAML_BYTES:,} bytes: a data.yaml is at most that", file=path)
    return data.decode("utf-8")


def safe_load_bounded(text: str, path: Path) -> Any:
    """``yaml.safe_load`` of a stranger's text, with what aliases expand to and the nesting bounded.

    Raises:
        DatasetConfigError: not YAML, nested too deeply, or expanding past MAX_YAML_NODES.
    """
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, path)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or getattr(e, "reason", None) or e).split())  # one line
        raise DatasetConfigError(f"not valid YAML{where}: {problem[:200]}", file=path) from e
    except RecursionError as e:
        raise DatasetConfigError("YAML nested too deeply to read", file=path) from e
    finally:
        loader.dispose()


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Load a YAML file that must hold a mapping; one clear error otherwise.

    Bounded: at most MAX_DATA_YAML_BYTES, and MAX_YAML_NODES values once aliases are expanded.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetConfigError(why_missing(path, "data.yaml not found") if not path.exists() else "not a file", file=path)
    try:
        text = _read_bounded_text(path)
    except UnicodeDecodeError as e:
        raise DatasetConfigError("not a text file", file=path) from e
    except OSError as e:
        raise DatasetConfigError(f"cannot read: {e.strerror or e}", file=path) from e
    data = safe_load_bounded(text, path)
    if not isinstance(data, dict):
        raise DatasetConfigError(f"expected a mapping of keys, found {type(data).__name__}", file=path)
    return data


def read_data_yaml(path: str | Path, task: str | None = None) -> DatasetConfig:
    """Read and validate a data.yaml; raises :class:`DatasetConfigError` naming the file and key."""
    path = Path(path)
    return parse_data_dict(load_yaml_mapping(path), path, task)


class _FlowListDumper(yaml.SafeDumper):
    """Writes short lists of scalars on one line (``kpt_shape: [17, 3]``) and the rest in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data) and all(not isinstance(v, str) for v in data)
    flow = flow or all(isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v) for v in data) and data
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=bool(flow))


_FlowListDumper.add_representer(list, _represent_list)


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True, width=120)


def write_data_yaml(config: DatasetConfig, path: Path) -> None:
    path.write_text(dump_yaml(config.to_dict()))


MAX_SPLIT_LIST_BYTES = 256 << 20  # a split given as a .txt list of images: ~4M paths


def read_split_lines(path: Path) -> list[str]:
    """The non-empty lines of a split's ``.txt`` list of images, stripped (lines holding NUL left out).

    Raises:
        DatasetConfigError: the list is over MAX_SPLIT_LIST_BYTES, unreadable or not UTF-8 text.
    """
    try:
        size = path.stat().st_size
        if size > MAX_SPLIT_LIST_BYTES:
            raise DatasetConfigError(f"{size:,} bytes: a split's list of images is at most {MAX_SPLIT_LIST_BYTES:,}", file=path)
        with open(path, "rb") as f:
            text = f.read(MAX_SPLIT_LIST_BYTES + 1).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetConfigError(f"a split's list of images must be UTF-8 text: {e.reason} at byte {e.start}", file=path) from e
    except OSError as e:
        raise DatasetConfigError(f"cannot read the split's list of images: {e.strerror or e}", file=path) from e
    if len(text) > MAX_SPLIT_LIST_BYTES:
        raise DatasetConfigError(f"more than {MAX_SPLIT_LIST_BYTES:,} bytes: a split's list of images is at most that", file=path)
    return [line.strip() for line in text.splitlines() if line.strip() and "\0" not in line]


def read_split_list(path: Path, root: Path) -> list[Path]:
    """The paths a split's ``.txt`` list names (one a line, relative to ``root`` unless absolute).

    Raises:
        DatasetConfigError: the list is over MAX_SPLIT_LIST_BYTES, unreadable or not UTF-8 text.
    """
    return [p if p.is_absolute() else root / p for p in map(Path, read_split_lines(path))]
