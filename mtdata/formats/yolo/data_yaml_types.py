"""The types of a data.yaml and the small rules every reader of one shares (no I/O).

:class:`DatasetConfig` is what :func:`mtdata.formats.yolo.data_yaml.read_data_yaml` returns; the one
reader (:mod:`mtdata.formats.yolo.data_yaml_rules`) builds it; ``label_dir_for`` is YOLO's folder
convention, ``shown_value`` how a stranger's value appears in a one-line message.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.rows import LabelLayout
from mtdata.limits import MAX_KEYPOINTS

SPLIT_KEYS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".heic", ".pfm")


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

    Asked by the one reader, :func:`mtdata.formats.yolo.data_yaml_rules.check_data_dict`.
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
