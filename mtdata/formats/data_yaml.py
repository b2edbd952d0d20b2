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

import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtdata.errors import DatasetConfigError, why_missing
from mtdata.formats.yolo import LabelLayout
from mtdata.limits import MAX_KEYPOINTS

SPLIT_KEYS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".heic", ".pfm")
# Bounds on what a data.yaml may hold (each far above any real dataset's).
MAX_DATA_YAML_BYTES = 1 << 20  # LVIS's 1,203 class names take 30 KB; 1 MiB parses in ~1 s
MAX_YAML_NODES = 100_000  # values and containers once aliases are expanded
# libyaml's parser when PyYAML has it: 8x faster than the pure-Python one on a large file
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class DatasetConfig:
    """A parsed, validated data.yaml.

    Attributes:
        root: absolute dataset root.
        splits: split key -> image folders relative to ``root``.
        names: class id -> class name.
        task: one of detect, segment, pose, multitask.
        kpt_shape: (K, D) or None.
        kpt_names: keypoint class id -> K keypoint names (generated ``kpt0..`` when unnamed).
        flip_idx: K indices, or None.
        skeleton: 0-based keypoint index pairs, or None.
        kpt_sigmas: K OKS sigmas, or None.
        extra: any other keys, kept on write.
        file: the yaml file this came from, if any.
    """

    root: Path
    splits: dict[str, list[str]]
    names: dict[int, str]
    task: str = "segment"
    kpt_shape: tuple[int, int] | None = None
    kpt_names: dict[int, list[str]] = field(default_factory=dict)
    flip_idx: list[int] | None = None
    skeleton: list[list[int]] | None = None
    kpt_sigmas: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None

    @property
    def num_keypoints(self) -> int:
        return self.kpt_shape[0] if self.kpt_shape else 0

    @property
    def keypoint_class_ids(self) -> frozenset[int]:
        if self.task == "pose":
            return frozenset(self.names)
        return frozenset(self.kpt_names) if self.task == "multitask" else frozenset()

    def layout(self) -> LabelLayout:
        """The row layout of this dataset's label files."""
        return LabelLayout(
            task=self.task,
            num_classes=max(self.names, default=-1) + 1,
            num_keypoints=self.num_keypoints,
            keypoint_dims=self.kpt_shape[1] if self.kpt_shape else 3,
            keypoint_classes=self.keypoint_class_ids,
        )

    def image_dirs(self, split: str) -> list[Path]:
        return [(self.root / p) for p in self.splits.get(split, [])]

    def label_dirs(self, split: str) -> list[Path]:
        return [label_dir_for(d) for d in self.image_dirs(split)]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": str(self.root)}
        for key in SPLIT_KEYS:
            if key in self.splits:
                paths = self.splits[key]
                data[key] = paths[0] if len(paths) == 1 else list(paths)
        data["task"] = self.task
        data["names"] = dict(self.names)
        if self.kpt_shape:
            data["kpt_shape"] = list(self.kpt_shape)
            if self.task != "segment":
                data["kpt_names"] = {k: list(v) for k, v in self.kpt_names.items()}
            if self.flip_idx is not None:
                data["flip_idx"] = list(self.flip_idx)
            if self.skeleton:
                data["skeleton"] = [list(pair) for pair in self.skeleton]
            if self.kpt_sigmas:
                data["kpt_sigmas"] = [float(s) for s in self.kpt_sigmas]
        data.update(self.extra)
        return data


def label_dir_for(image_dir: Path) -> Path:
    """YOLO's convention: the labels of ``.../images/<split>`` live in ``.../labels/<split>``."""
    parts = list(image_dir.parts)
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
        return Path(*parts)
    return image_dir


def label_path_for(image_path: Path, image_dir: Path) -> Path:
    """The label file of an image found under ``image_dir``: ultralytics' rule, the last ``images``
    part of the image's path becomes ``labels`` (:func:`mtdata.formats.splits.label_path`)."""
    from mtdata.formats.splits import label_path

    return Path(label_path(str(image_path)))


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 6
_SHOWN.maxlevel = 2
_SHOWN_CHARS = 120


def shown_value(value: Any) -> str:
    """``repr`` of a value read from a file, cut to at most 120 characters: messages stay one short line."""
    text = _SHOWN.repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def is_folder_name(value: Any) -> bool:
    """A split folder or ``path`` as data.yaml may give it: a string without NUL (no file system takes one)."""
    return isinstance(value, str) and "\0" not in value


def dataset_root(data: dict, file: Path | None) -> Path:
    """The absolute dataset root of a data.yaml mapping: ``path`` (relative to the file's folder), else that folder.

    A ``path`` that is absolute but missing means the dataset was moved with its data.yaml: its
    folder is the root.

    Raises:
        DatasetConfigError: ``path`` is not a folder name.
    """
    base = file.parent if file else Path.cwd()
    raw = data.get("path")
    if raw is not None and raw != "" and not is_folder_name(raw):
        raise DatasetConfigError(f"'path' must be the dataset folder, found {shown_value(raw)}", file=file)
    root = Path(raw or base)
    if not root.is_absolute():
        root = base / root
    elif not root.exists() and file is not None:
        root = base
    return root.resolve()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def kpt_shape_problem(raw: Any) -> str | None:
    """Why ``raw`` is not a valid ``kpt_shape`` ([K, 2 or 3], 0 < K <= MAX_KEYPOINTS), or None when it is.

    Asked by the one reader, :func:`mtdata.formats.data_yaml_rules.check_data_dict`.
    """
    if not (isinstance(raw, list) and len(raw) == 2 and all(_is_int(v) for v in raw) and raw[1] in (2, 3)):
        return f"'kpt_shape' must be [K, 2 or 3] with 0 < K <= {MAX_KEYPOINTS}, found {shown_value(raw)}"
    if not 0 < raw[0] <= MAX_KEYPOINTS:
        return f"'kpt_shape' must be [K, 2 or 3] with 0 < K <= {MAX_KEYPOINTS}, found K = {shown_value(raw[0])}"
    return None


def sigmas_ok(raw: Any, k: int | None) -> bool:
    """``kpt_sigmas`` is K finite positive numbers."""
    return (isinstance(raw, list) and k is not None and len(raw) == k
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in raw))


def parse_data_dict(data: Any, file: Path, task: str | None = None) -> DatasetConfig:
    """Validate a loaded data.yaml mapping; ``task`` overrides the one inferred from its keys.

    The rules are :func:`mtdata.formats.data_yaml_rules.check_data_dict`'s (``mtdata check``
    reports them all); this raises the first error.

    Raises:
        DatasetConfigError: the first error finding, naming the file and key.
    """
    from mtdata.formats.data_yaml_rules import check_data_dict  # built on this module's types

    checked = check_data_dict(data, file, task=task, splits_required=False)
    first = checked.first_error()
    if first is not None:
        raise DatasetConfigError(first.message, file=file)
    return checked.config


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


def split_image_files(config: DatasetConfig, split: str) -> list[Path]:
    """Image files of a split, sorted, as :func:`mtdata.formats.splits.split_pairs` lists them."""
    from mtdata.formats.splits import split_pairs  # the one lister builds on this module

    return [Path(image) for image, _ in split_pairs(config, split)]
