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

import numpy as np

from mtdata.errors import AnnotationError, InputError
from mtdata.formats.coco.checks import (
    MAX_ID,
    MAX_IMAGE_SIDE,
    OUTSIDE_CAP,
    annotation_problem,
    category_problem,
    describe,
    extent_problem,
    far_message,
    image_problem,
    keypoints_problem,
    rle_problem,
)
from mtdata.formats.coco.types import CocoAnnotation, CocoCategory, CocoFile, CocoImage, compact_annotation
from mtdata.geometry import (
    JOIN_LOSS_IOU,
    decode_rle,
    join_loss_iou,
    join_polygons,
    mask_to_polygon,
    polygon_xyxy,
    ring_twice_areas,
    traced_mask_iou,
)
from mtdata.limits import ZERO_AREA

# Annotation-level problems: such annotations are skipped and named in reports.
INVALID_REASONS = ("unknown_image", "bad_bbox", "bad_keypoints", "bad_polygon", "bad_rle", "not_finite", "out_of_image")


def _require_list(data: dict, key: str, path: Path) -> list:
    if key not in data:
        raise InputError(f"missing key '{key}': not a COCO annotation file", file=path)
    if not isinstance(data[key], list):
        raise InputError(f"'{key}' must be a list, found {type(data[key]).__name__}", file=path)
    return data[key]


def read_coco(path: str | Path, on_images: Callable[[list[CocoImage]], None] | None = None) -> CocoFile:
    """Read a COCO instances or keypoints file; raises :class:`InputError` for file-level problems.

    Strict JSON goes through the columnar reader (:mod:`mtdata.formats.coco.columns`); what
    it refuses (NaN literals, keys of unexpected types, broken files) is read with json,
    which also words the errors.

    Args:
        on_images: called with the file's images (in file order, one per id) once they are
            read and checked, before the annotations are: a caller can start on the images'
            files while the rest is read.
    """
    from mtdata.formats.coco.columns import AnnotationTable, decode_coco

    path = Path(path)
    if not path.is_file():
        raise InputError("annotation file not found" if not path.exists() else "not a file", file=path)
    try:
        fast = decode_coco(path)
        if fast is not None:
            raw_images, raw_categories, build_table = fast
        else:
            raw_images, raw_categories, raw_annotations = _read_with_json(path)
            for i, a in enumerate(raw_annotations):
                if not isinstance(a, CocoAnnotation):
                    raise InputError(f"annotations[{i}] {annotation_problem(a)}", file=path)
            table = AnnotationTable.from_annotations(raw_annotations)
            build_table = lambda: table
    except RecursionError as e:  # both parsers recurse per level of nesting; COCO has four
        raise InputError("JSON nested too deeply to be a COCO file", file=path) from e
    except OSError as e:
        raise InputError(f"cannot read the annotation file: {e.strerror or e}", file=path) from e
    categories = _read_categories(raw_categories, path)
    if not categories:
        raise InputError("'categories' is empty: a COCO file names the classes of its annotations there", file=path)
    ids = [c.id for c in categories]
    images = _read_images(raw_images, path)
    if on_images is not None:
        on_images(list(images.values()))
    table = build_table()
    _check_annotation_ids(table.ids, path)
    undeclared = np.flatnonzero(~np.isin(table.category_ids, np.array(ids, dtype=np.int64)))
    if len(undeclared):
        a = table[int(undeclared[0])]
        raise InputError(f"annotation {a.id} names category_id {a.category_id}, which 'categories' does not declare", file=path)
    return CocoFile(path, images, categories, table)


def _read_categories(raw_categories: list, path: Path) -> list[CocoCategory]:
    categories, entry_of = [], {}
    for i, c in enumerate(raw_categories):
        problem = category_problem(c)
        if problem:
            raise InputError(f"categories[{i}] {problem}", file=path)
        if c["id"] in entry_of:
            raise InputError(f"categories[{entry_of[c['id']]}] and categories[{i}] share id {c['id']}: category ids must be unique",
                             file=path)
        entry_of[c["id"]] = i
        skeleton = tuple((a, b) for a, b in c.get("skeleton") or ())
        supercategory = c["supercategory"] if isinstance(c.get("supercategory"), str) else None
        categories.append(CocoCategory(c["id"], c["name"], tuple(c.get("keypoints") or ()), skeleton, supercategory))
    categories.sort(key=lambda c: c.id)
    return categories


def _read_images(raw_images: list, path: Path) -> dict[int, CocoImage]:
    columns = _image_columns(raw_images)
    if columns is None:  # something is wrong: the first entry that says what
        for i, im in enumerate(raw_images):
            problem = image_problem(im)
            if problem:
                raise InputError(f"images[{i}] {problem}", file=path)
        columns = tuple([im[key] for im in raw_images] for key in ("id", "file_name", "width", "height"))
    ids, names, widths, heights = columns
    images = dict(zip(ids, map(CocoImage, ids, names, widths, heights)))
    if len(images) < len(ids):  # the objects of one would land in the other's file
        entry_of: dict[int, int] = {}
        for i, image_id in enumerate(ids):
            if image_id in entry_of:
                j = entry_of[image_id]
                raise InputError(f"images[{j}] ({names[j]!r}) and images[{i}] ({names[i]!r}) share id {image_id}: image ids must be "
                                 "unique", file=path)
            entry_of[image_id] = i
    return images


def _image_columns(raw_images: list) -> tuple[list, list, list, list] | None:
    """(ids, file names, widths, heights) when every entry is what :func:`image_problem` accepts, else None.

    A few passes over 20k entries, a C loop each, instead of one Python check per entry.
    """
    try:
        ids = [im["id"] for im in raw_images]
        names = [im["file_name"] for im in raw_images]
        widths = [im["width"] for im in raw_images]
        heights = [im["height"] for im in raw_images]
    except (TypeError, KeyError):
        return None
    if not raw_images:
        return ids, names, widths, heights
    if {type(v) for v in ids} | {type(v) for v in widths} | {type(v) for v in heights} != {int} or {type(v) for v in names} != {str}:
        return None
    if not (min(ids) >= 0 and max(ids) <= MAX_ID and min(widths) > 0 and min(heights) > 0
            and max(widths) <= MAX_IMAGE_SIDE and max(heights) <= MAX_IMAGE_SIDE):
        return None
    if not all(isinstance(im, dict) for im in raw_images):  # a list holding ints is indexable by ints, but is no entry
        return None
    return ids, names, widths, heights


def _check_annotation_ids(ids: np.ndarray, path: Path) -> None:
    """Annotation ids name annotations in every report: two alike would make the reports ambiguous."""
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(repeated):
        first, second = order[repeated[0]], order[repeated[0] + 1]
        raise InputError(f"annotations[{first}] and annotations[{second}] share id {ids[first]}: annotation ids must be unique",
                         file=path)


def _read_with_json(path: Path) -> tuple[list, list, list]:
    try:
        with path.open("rb") as f:
            data = json.load(f, object_hook=compact_annotation)
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
                raise AnnotationError(f"polygon part is not a flat list of numbers: {describe(part)}", annotation_id=ann.id,
                                      reason="bad_polygon")
            if not np.isfinite(part).all():
                raise AnnotationError("polygon holds NaN or inf", annotation_id=ann.id, reason="not_finite")
            if len(part) % 2 or len(part) < 6:
                raise AnnotationError(
                    f"polygon needs an even count of >= 6 values, found {len(part)}", annotation_id=ann.id, reason="bad_polygon"
                )
            high, low = part.max(), part.min()
            if high > OUTSIDE_CAP or low < -OUTSIDE_CAP:
                raise AnnotationError(far_message("polygon", high if high > OUTSIDE_CAP else low, image.width, image.height),
                                      annotation_id=ann.id, reason="out_of_image")
            parts.append(part.reshape(-1, 2))
        if parts_area(parts) <= ZERO_AREA * image.width * image.height:
            raise AnnotationError("polygon encloses no area (its points are collinear or repeated)", annotation_id=ann.id,
                                  reason="bad_polygon")
        return join_polygons(parts)
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        problem = rle_problem(seg, image.height, image.width)
        if problem:
            raise AnnotationError(problem, annotation_id=ann.id, reason="bad_rle")
        try:
            mask = decode_rle(seg, image.height, image.width)
        except Exception as e:  # pycocotools raises bare Exceptions for corrupt counts
            raise AnnotationError(f"RLE cannot be decoded: {e}", annotation_id=ann.id, reason="bad_rle") from e
        return mask_to_polygon(mask)
    raise AnnotationError(f"segmentation is neither polygons nor RLE: {describe(seg)}", annotation_id=ann.id, reason="bad_polygon")


def annotation_object(ann: CocoAnnotation, image: CocoImage, num_keypoints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one annotation; return (xyxy (4,), polygon (P, 2), keypoints (K, 3)) in pixels.

    Raises:
        AnnotationError: with a reason in INVALID_REASONS.
    """
    polygon = _polygon_from_segmentation(ann, image)
    if ann.bbox_problem:
        raise AnnotationError(ann.bbox_problem, annotation_id=ann.id, reason="bad_bbox")
    if ann.bbox_xywh is not None:
        if not np.isfinite(ann.bbox_xywh).all():
            raise AnnotationError("bbox holds NaN or inf", annotation_id=ann.id, reason="not_finite")
        far = np.flatnonzero(np.abs(ann.bbox_xywh) > OUTSIDE_CAP)
        if len(far):
            raise AnnotationError(far_message("bbox", float(ann.bbox_xywh[far[0]]), image.width, image.height),
                                  annotation_id=ann.id, reason="out_of_image")
        x, y, w, h = ann.bbox_xywh
        if w <= 0 or h <= 0:
            raise AnnotationError(f"bbox width and height must be > 0, found {w:g} x {h:g}", annotation_id=ann.id, reason="bad_bbox")
        xyxy = np.array([x, y, x + w, y + h])
    elif len(polygon):
        xyxy = polygon_xyxy(polygon)
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
    problem = placement_problem(polygon, xyxy, keypoints, image)
    if problem:
        raise AnnotationError(problem[1], annotation_id=ann.id, reason=problem[0])
    return xyxy, polygon, keypoints


def parts_area(parts: list[np.ndarray]) -> float:
    """Area the (P, 2) parts of an object enclose, each counted whole (:func:`ring_twice_areas`, as the bulk path)."""
    return float(np.abs(ring_twice_areas(np.concatenate(parts), np.cumsum([0] + [len(p) for p in parts]))).sum()) / 2


def annotation_join_loss(ann: CocoAnnotation, polygon: np.ndarray) -> float | None:
    """The mask IoU of an annotation's one-outline ``polygon`` when it loses > 5% of the mask, else None: polygon
    parts that overlap, or an RLE mask whose holes the outline fills (a row holds no holes)."""
    seg = ann.segmentation
    if isinstance(seg, dict):  # validated and decoded once already: an RLE of its image's size
        height, width = (int(v) for v in seg["size"])
        iou = traced_mask_iou(decode_rle(seg, height, width))
        return iou if iou < JOIN_LOSS_IOU else None
    if not isinstance(ann.segmentation, list) or len(ann.segmentation) < 2:
        return None
    return join_loss_iou([part.reshape(-1, 2) for part in ann.segmentation], polygon)


def placement_problem(polygon: np.ndarray, xyxy: np.ndarray, keypoints: np.ndarray, image: CocoImage) -> tuple[str, str] | None:
    """(reason, message) when an object's polygon, box or labeled keypoints cannot be rows of its image (far or wholly
    outside it, or thinner than a row can hold once clipped to it), polygon first; None when they can."""
    w, h = image.width, image.height
    if len(polygon):
        box = polygon_xyxy(polygon)
        problem = extent_problem("polygon", box[:2], box[2:], w, h)
        if problem:
            return problem
    problem = extent_problem("bbox", xyxy[:2], xyxy[2:], w, h)
    labeled = keypoints[keypoints[:, 2] > 0, :2]
    if problem or not len(labeled):
        return problem
    return keypoints_problem(labeled.min(axis=0), labeled.max(axis=0), w, h)


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
