"""COCO's records as read: categories, images, annotations (numbers as arrays) and the file.

The bottom of the COCO format: :mod:`mtdata.formats.coco.read` (per annotation) and
:mod:`mtdata.formats.coco.columns` (the bulk reader) both build :class:`CocoAnnotation` through
:func:`compact_annotation`, so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtdata.formats.coco.checks import crowd_flag_ok, describe, is_id


@dataclass(frozen=True)
class CocoCategory:
    id: int
    name: str
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()  # 1-based, as COCO stores it
    supercategory: str | None = None


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass
class CocoAnnotation:
    """One annotation, numbers as arrays.

    Attributes:
        segmentation: list of flat polygon parts (arrays), an RLE dict, or what the file held instead.
        bbox_xywh: (4,) COCO box or None (absent, or malformed: then ``bbox_problem`` says how).
        keypoints: flat (3K,) x, y, v values or None; raw, possibly not a multiple of 3 (checked later).
        raw_keypoint_count: values in the file's keypoint list; -1 when 'keypoints' is not a list.
    """

    id: int
    image_id: int
    category_id: int
    iscrowd: bool
    bbox_xywh: np.ndarray | None
    segmentation: Any
    keypoints: np.ndarray | None
    raw_keypoint_count: int
    bbox_problem: str | None = None


@dataclass
class CocoFile:
    path: Path
    images: dict[int, CocoImage]
    categories: list[CocoCategory]  # sorted by id
    annotations: Any  # AnnotationTable: a sequence of CocoAnnotation, stored column by column


def _floats(values: list) -> np.ndarray | None:
    """A JSON list of numbers as a float array; None when it holds anything else (text, booleans, lists, ragged)."""
    if not all(type(v) is float or type(v) is int for v in values):  # "1" and true are not numbers here
        return None
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer past float range
        return None


def _bbox(value: Any) -> tuple[np.ndarray | None, str | None]:
    """(the (4,) box or None, why a present 'bbox' is unusable or None)."""
    if value is None:
        return None, None
    box = _floats(value) if isinstance(value, list) else None
    if box is None or box.shape != (4,):
        return None, f"bbox must be 4 numbers [x, y, width, height], found {describe(value)}"
    return box, None


def compact_annotation(d: dict) -> Any:
    """json object_hook: shrink annotation dicts to arrays while the parser runs.

    Dicts with ``image_id`` and ``category_id`` are annotations; one whose ids or ``iscrowd``
    are not what COCO says is left as a dict, and :func:`read_coco` names what is wrong.
    """
    if "image_id" not in d or "category_id" not in d:
        return d
    if not (is_id(d.get("id")) and is_id(d["image_id"]) and is_id(d["category_id"]) and crowd_flag_ok(d.get("iscrowd", 0))):
        return d
    seg = d.get("segmentation")
    if isinstance(seg, list):
        # A list of polygons; keep odd, short or non-numeric ones as they are so the converter can name them.
        seg = [_floats(p) if isinstance(p, list) else p for p in seg]
        seg = [a if a is not None else p for a, p in zip(seg, d["segmentation"])]
    kpts = d.get("keypoints")
    raw_count = len(kpts) if isinstance(kpts, list) else (0 if kpts is None else -1)
    kpt_array = _floats(kpts) if isinstance(kpts, list) and kpts else None
    bbox, bbox_problem = _bbox(d.get("bbox"))
    return CocoAnnotation(
        id=d["id"], image_id=d["image_id"], category_id=d["category_id"], iscrowd=bool(d.get("iscrowd", 0)),
        bbox_xywh=bbox, segmentation=seg, keypoints=kpt_array, raw_keypoint_count=raw_count, bbox_problem=bbox_problem,
    )
