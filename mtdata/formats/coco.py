"""COCO JSON -> records.

Reads a whole COCO file in one pass of the C JSON parser; each annotation is turned into a
compact :class:`CocoAnnotation` (numpy arrays) as soon as it is parsed, so the file's
Python lists of floats never all live at once (a 120k-annotation file stays well under
half the memory of a plain ``json.load``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtdata.errors import AnnotationError, InputError
from mtdata.geometry import decode_rle, join_polygons, mask_to_polygon
from mtdata.records import ImageLabels

# Annotation-level problems: such annotations are skipped and named in reports.
INVALID_REASONS = ("unknown_image", "bad_bbox", "bad_keypoints", "bad_polygon", "bad_rle", "not_finite")


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
        segmentation: list of (P, 2) polygons (pixels), an RLE dict, or None.
        bbox_xywh: (4,) COCO box or None.
        keypoints: (K, 3) (x, y, v) or None; raw, possibly not a multiple of 3 (checked later).
    """

    id: int
    image_id: int
    category_id: int
    iscrowd: bool
    bbox_xywh: np.ndarray | None
    segmentation: Any
    keypoints: np.ndarray | None
    raw_keypoint_count: int


@dataclass
class CocoFile:
    path: Path
    images: dict[int, CocoImage]
    categories: list[CocoCategory]  # sorted by id
    annotations: Any  # AnnotationTable: a sequence of CocoAnnotation, stored column by column


def _floats(values: list) -> np.ndarray | None:
    """A JSON list as a float array, or None when it holds something else than numbers (or is ragged)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _compact_annotation(d: dict) -> Any:
    """json object_hook: shrink annotation dicts to arrays while the parser runs."""
    if "image_id" not in d or "category_id" not in d:
        return d
    seg = d.get("segmentation")
    if isinstance(seg, list):
        # A list of polygons; keep odd, short or non-numeric ones as they are so the converter can name them.
        seg = [_floats(p) if isinstance(p, list) else p for p in seg]
        seg = [a if a is not None else p for a, p in zip(seg, d["segmentation"])]
    kpts = d.get("keypoints")
    raw_count = len(kpts) if isinstance(kpts, list) else 0
    kpt_array = _floats(kpts) if isinstance(kpts, list) and kpts else None
    bbox = d.get("bbox")
    try:
        return CocoAnnotation(
            id=d.get("id", -1),
            image_id=d["image_id"],
            category_id=d["category_id"],
            iscrowd=bool(d.get("iscrowd", 0)),
            bbox_xywh=np.asarray(bbox, dtype=np.float64) if isinstance(bbox, list) and len(bbox) == 4 else None,
            segmentation=seg,
            keypoints=kpt_array,
            raw_keypoint_count=raw_count,
        )
    except (TypeError, ValueError):
        return d  # not numbers: left as a dict, reported as malformed by read_coco


def _require_list(data: dict, key: str, path: Path) -> list:
    if key not in data:
        raise InputError(f"missing key '{key}': not a COCO annotation file", file=path)
    if not isinstance(data[key], list):
        raise InputError(f"'{key}' must be a list, found {type(data[key]).__name__}", file=path)
    return data[key]


def read_coco(path: str | Path, on_images: Callable[[list[CocoImage]], None] | None = None) -> CocoFile:
    """Read a COCO instances or keypoints file; raises :class:`InputError` for file-level problems.

    Strict JSON goes through the columnar reader (:mod:`mtdata.formats.coco_columns`); what
    it refuses (NaN literals, keys of unexpected types, broken files) is read with json,
    which also words the errors.

    Args:
        on_images: called with the file's images (in file order, one per id) once they are
            read and checked, before the annotations are: a caller can start on the images'
            files while the rest is read.
    """
    from mtdata.formats.coco_columns import AnnotationTable, decode_coco

    path = Path(path)
    if not path.is_file():
        raise InputError("annotation file not found" if not path.exists() else "not a file", file=path)
    fast = decode_coco(path)
    if fast is not None:
        raw_images, raw_categories, build_table = fast
    else:
        raw_images, raw_categories, raw_annotations = _read_with_json(path)
        for i, a in enumerate(raw_annotations):
            if not isinstance(a, CocoAnnotation):
                raise InputError(f"annotations[{i}] is malformed: needs numeric image_id, category_id, bbox; found {a!r:.80}", file=path)
        table = AnnotationTable.from_annotations(raw_annotations)
        build_table = lambda: table
    categories = []
    for i, c in enumerate(raw_categories):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or "name" not in c:
            raise InputError(f"categories[{i}] needs an integer 'id' and a 'name', found {c!r:.80}", file=path)
        skeleton = tuple(tuple(p) for p in c.get("skeleton") or [] if isinstance(p, list) and len(p) == 2)
        supercategory = c["supercategory"] if isinstance(c.get("supercategory"), str) else None
        categories.append(CocoCategory(c["id"], str(c["name"]), tuple(str(k) for k in c.get("keypoints") or []), skeleton, supercategory))
    categories.sort(key=lambda c: c.id)
    ids = [c.id for c in categories]
    if len(set(ids)) != len(ids):
        raise InputError(f"category ids repeat: {sorted(i for i in set(ids) if ids.count(i) > 1)}", file=path)

    images = {}
    for i, im in enumerate(raw_images):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise InputError(f"images[{i}] needs an integer 'id' and a 'file_name', found {im!r:.80}", file=path)
        w, h = im.get("width"), im.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise InputError(f"images[{i}] (id {im['id']}) needs positive integer width and height, found {w!r} x {h!r}", file=path)
        images[im["id"]] = CocoImage(im["id"], im["file_name"], w, h)
    if on_images is not None:
        on_images(list(images.values()))
    table = build_table()

    undeclared = np.flatnonzero(~np.isin(table.category_ids, np.array(ids, dtype=np.int64)))
    if len(undeclared):
        a = table[int(undeclared[0])]
        raise InputError(f"annotation {a.id} names category_id {a.category_id}, which 'categories' does not declare", file=path)
    return CocoFile(path, images, categories, table)


def _read_with_json(path: Path) -> tuple[list, list, list]:
    try:
        with path.open("rb") as f:
            data = json.load(f, object_hook=_compact_annotation)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON (truncated?) at line {e.lineno} column {e.colno}: {e.msg}", file=path) from e
    except UnicodeDecodeError as e:
        raise InputError("not a UTF-8 JSON file", file=path) from e
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object with images/annotations/categories, found {type(data).__name__}", file=path)
    return _require_list(data, "images", path), _require_list(data, "categories", path), _require_list(data, "annotations", path)


def _polygon_from_segmentation(ann: CocoAnnotation, image: CocoImage) -> np.ndarray:
    """One (P, 2) pixel polygon for an annotation ((0, 2) when it has no mask)."""
    seg = ann.segmentation
    if seg is None or (isinstance(seg, list) and not seg):
        return np.zeros((0, 2))
    if isinstance(seg, list):
        parts = []
        for part in seg:
            if not isinstance(part, np.ndarray) or part.ndim != 1:
                raise AnnotationError(f"polygon part is not a flat list of numbers: {part!r:.60}", annotation_id=ann.id, reason="bad_polygon")
            if not np.isfinite(part).all():
                raise AnnotationError("polygon holds NaN or inf", annotation_id=ann.id, reason="not_finite")
            if len(part) % 2 or len(part) < 6:
                raise AnnotationError(
                    f"polygon needs an even count of >= 6 values, found {len(part)}", annotation_id=ann.id, reason="bad_polygon"
                )
            parts.append(part.reshape(-1, 2))
        return join_polygons(parts)
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [image.height, image.width]:
            raise AnnotationError(
                f"RLE size {seg['size']} is not the image's [height, width] [{image.height}, {image.width}]",
                annotation_id=ann.id, reason="bad_rle",
            )
        try:
            mask = decode_rle(seg, image.height, image.width)
        except Exception as e:  # pycocotools raises bare Exceptions for corrupt counts
            raise AnnotationError(f"RLE cannot be decoded: {e}", annotation_id=ann.id, reason="bad_rle") from e
        return mask_to_polygon(mask)
    raise AnnotationError(f"segmentation is neither polygons nor RLE: {seg!r:.60}", annotation_id=ann.id, reason="bad_polygon")


def annotation_object(ann: CocoAnnotation, image: CocoImage, num_keypoints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one annotation; return (xyxy (4,), polygon (P, 2), keypoints (K, 3)) in pixels.

    Raises:
        AnnotationError: with a reason in INVALID_REASONS.
    """
    polygon = _polygon_from_segmentation(ann, image)
    if ann.bbox_xywh is not None:
        if not np.isfinite(ann.bbox_xywh).all():
            raise AnnotationError("bbox holds NaN or inf", annotation_id=ann.id, reason="not_finite")
        x, y, w, h = ann.bbox_xywh
        if w <= 0 or h <= 0:
            raise AnnotationError(f"bbox width and height must be > 0, found {w:g} x {h:g}", annotation_id=ann.id, reason="bad_bbox")
        xyxy = np.array([x, y, x + w, y + h])
    elif len(polygon):
        xyxy = np.concatenate([polygon.min(axis=0), polygon.max(axis=0)])
    else:
        raise AnnotationError("has neither a bbox nor a segmentation", annotation_id=ann.id, reason="bad_bbox")

    keypoints = np.zeros((num_keypoints, 3))
    if ann.raw_keypoint_count:
        if ann.keypoints is None or ann.keypoints.ndim != 1:
            raise AnnotationError(
                "keypoints must be a flat list of numbers x1, y1, v1, x2, ...", annotation_id=ann.id, reason="bad_keypoints"
            )
        if ann.raw_keypoint_count != 3 * num_keypoints:
            raise AnnotationError(
                f"keypoints must hold 3 x {num_keypoints} values for its category, found {ann.raw_keypoint_count}",
                annotation_id=ann.id, reason="bad_keypoints",
            )
        if not np.isfinite(ann.keypoints).all():
            raise AnnotationError("keypoints hold NaN or inf", annotation_id=ann.id, reason="not_finite")
        keypoints = ann.keypoints.reshape(num_keypoints, 3).copy()
        if not np.isin(keypoints[:, 2], (0, 1, 2)).all():
            raise AnnotationError("keypoint visibility must be 0, 1 or 2", annotation_id=ann.id, reason="bad_keypoints")
        keypoints[keypoints[:, 2] == 0, :2] = 0.0  # COCO: v=0 means not labeled, whatever x, y say
    return xyxy, polygon, keypoints


@dataclass(frozen=True)
class Skip:
    """An annotation left out of the output, and why."""

    annotation_id: int
    image_id: int
    reason: str
    message: str

    @property
    def invalid(self) -> bool:
        return self.reason in INVALID_REASONS


def image_labels(
    image: CocoImage,
    annotations: list[CocoAnnotation],
    class_of_category: dict[int, int],
    keypoints_of_category: dict[int, int],
    num_keypoints: int,
    include_crowd: bool,
) -> tuple[ImageLabels, list[Skip]]:
    """Objects of one image as a record (pixels), plus the annotations skipped.

    Annotations of categories missing from ``class_of_category`` (filtered classes) are
    ignored silently; crowd ones are skipped with reason ``crowd`` unless ``include_crowd``.
    """
    class_ids, boxes, polygons, kpts, source_ids, skips = [], [], [], [], [], []
    for ann in annotations:
        if ann.category_id not in class_of_category:
            continue
        if ann.iscrowd and not include_crowd:
            skips.append(Skip(ann.id, ann.image_id, "crowd", "crowd annotation (use --crowd include to keep it)"))
            continue
        try:
            xyxy, polygon, k = annotation_object(ann, image, keypoints_of_category.get(ann.category_id, 0))
        except AnnotationError as e:
            skips.append(Skip(ann.id, ann.image_id, e.reason, e.message))
            continue
        padded = np.zeros((num_keypoints, 3))
        padded[: min(len(k), num_keypoints)] = k[:num_keypoints]  # segment output: num_keypoints is 0
        class_ids.append(class_of_category[ann.category_id])
        boxes.append(xyxy)
        polygons.append(polygon)
        kpts.append(padded)
        source_ids.append(ann.id)
    labels = ImageLabels(
        (image.width, image.height),
        np.array(class_ids, dtype=np.int64),
        np.array(boxes).reshape(-1, 4),
        polygons,
        np.array(kpts).reshape(len(class_ids), num_keypoints, 3),
        np.array(source_ids, dtype=np.int64),
    )
    return labels, skips

