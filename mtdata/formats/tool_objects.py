"""What annotation tools draw (areas and points), joined into objects and turned into COCO structures.

Labelme and Label Studio store an object's mask and its keypoints as separate shapes. The readers
(:mod:`mtdata.formats.labelme`, :mod:`mtdata.formats.labelstudio`) turn each file into
:class:`ToolImage` records; :func:`join_points` ties each point to one object (by group or parent
id, else by the object that contains it); :func:`tool_coco_files` builds the :class:`CocoFile` of each
split, so that conversion, reports and checks are those of COCO input.

Coordinates are pixels, x right and y down from the image's top-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtdata.errors import InputError
from mtdata.formats.coco.columns import AnnotationTable
from mtdata.formats.coco.read import CocoAnnotation, CocoCategory, CocoFile, CocoImage
from mtdata.limits import MAX_KEYPOINTS

# Points inside several objects: the smallest one wins (a hand inside a person's outline is the hand's);
# equal areas go to the first in the file.


@dataclass
class ToolObject:
    """One object: an area shape (or several sharing a group) of one class.

    Attributes:
        index: position of its (first) shape in the file, for messages.
        label: class name.
        parts: polygons, each (P, 2) pixels; empty when the object is a mask.
        rle: COCO RLE dict of the mask ({"size": [h, w], "counts": ...}) or None.
        group: the group id (Labelme) or region id (Label Studio) points join by, or None.
        area: pixels covered (for the containment tie-break).
        mask: (crop (h, w) bool, x0, y0) for point tests of masks, else None.
    """

    index: int
    label: str
    parts: list[np.ndarray] = field(default_factory=list)
    rle: dict | None = None
    group: Any = None
    area: float = 0.0
    mask: tuple[np.ndarray, int, int] | None = None

    def contains(self, xy: np.ndarray) -> bool:
        if self.mask is not None:
            crop, x0, y0 = self.mask
            col, row = int(np.floor(xy[0])) - x0, int(np.floor(xy[1])) - y0
            return 0 <= row < crop.shape[0] and 0 <= col < crop.shape[1] and bool(crop[row, col])
        return any(_inside_polygon(xy, part) for part in self.parts)


@dataclass(frozen=True)
class ToolPoint:
    """A labelled point: ``name`` of the keypoint, ``cls`` when the label names the class too (``class/kpt``)."""

    index: int
    label: str
    name: str
    cls: str | None
    xy: np.ndarray  # (2,) pixels
    group: Any = None


@dataclass(frozen=True)
class ToolProblem:
    """A shape left out: position in the file, its label, a reason of COCO's INVALID_REASONS, what is wrong."""

    index: int
    label: str
    reason: str
    message: str


@dataclass
class ToolImage:
    """One image's shapes as a tool stored them.

    Attributes:
        where: the file (and task) the shapes come from, for messages: ``a.json`` or ``export.json[3]``.
        file_name: the image's name in OUT (``images/<split>/<file_name>``).
        image_ref: the image as the file names it (Labelme ``imagePath``, Label Studio ``data.image``).
        embedded: the annotation file holds the image (Labelme ``imageData``).
    """

    source: Path
    where: str
    file_name: str
    image_ref: str
    width: int
    height: int
    objects: list[ToolObject] = field(default_factory=list)
    points: list[ToolPoint] = field(default_factory=list)
    problems: list[ToolProblem] = field(default_factory=list)
    embedded: bool = False
    shapes_key: str = "shapes"  # what the file calls its list of shapes: Labelme shapes, Label Studio result
    other_annotations: int = 0  # Label Studio: annotations of the task besides the one read (other annotators)

    def shape_where(self, index: int, label: str) -> str:
        return f"{self.where} {self.shapes_key}[{index}] {label!r}"


@dataclass
class Joined:
    """What :func:`join_points` did on one image: each point's object (index into objects, or None), and why not."""

    owner: list[int | None]
    unmatched: list[dict]  # {file, label, x, y, why}
    ties: list[dict]  # {file, label, x, y, objects: [shape indices], chosen}


def finite_number(value: Any) -> bool:
    """A JSON number that is a finite float once read (not text, not a boolean, not an integer past float range)."""
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and abs(value) < 1e300  # an exact comparison: 10**400 never becomes a float


def split_label(label: str) -> tuple[str | None, str]:
    """A point's label: ``class/kpt`` -> (class, kpt); ``kpt`` -> (None, kpt)."""
    if "/" in label:
        cls, name = label.rsplit("/", 1)
        if cls and name:
            return cls, name
    return None, label


def _inside_polygon(xy: np.ndarray, polygon: np.ndarray) -> bool:
    """Even-odd test of an (x, y) against a (P, 2) ring; a point on an edge counts as inside."""
    import cv2  # lazy: as mtdata.geometry

    return cv2.pointPolygonTest(polygon.astype(np.float32).reshape(-1, 1, 2), (float(xy[0]), float(xy[1])), False) >= 0


def join_points(image: ToolImage, allowed: dict[str, list[str]]) -> Joined:
    """Tie each point of ``image`` to one object: the one sharing its group, else the smallest that contains it.

    A point whose label names a class joins only objects of that class; an object takes one point of each
    keypoint name (a second one is unmatched); ``allowed`` (class -> fixed keypoint names) refuses others.
    Ties (several candidates) go to the smallest object, then the first in the file, and are listed.
    """
    owner: list[int | None] = []
    unmatched, ties = [], []
    taken: set[tuple[int, str]] = set()
    for point in image.points:
        candidates = [i for i, o in enumerate(image.objects) if point.cls in (None, o.label)]
        if point.group is not None:
            candidates = [i for i in candidates if image.objects[i].group == point.group]
            why = f"no shape of its class has group {point.group!r}" if point.cls else f"no shape has group {point.group!r}"
        else:
            candidates = [i for i in candidates if image.objects[i].contains(point.xy)]
            why = "inside no shape of its class" if point.cls else "inside no shape"
        if candidates:
            fitting = [i for i in candidates if point.name in allowed.get(image.objects[i].label, [point.name])]
            why = f"{point.name!r} is not among the --keypoints of {image.objects[candidates[0]].label!r}" if not fitting else why
            free = [i for i in fitting if (i, point.name) not in taken]
            why = f"its object already has a point {point.name!r}" if fitting and not free else why
            candidates = free
        x, y = (round(float(v), 3) for v in point.xy)
        if not candidates:
            owner.append(None)
            unmatched.append({"file": image.where, "label": point.label, "x": x, "y": y, "why": why})
            continue
        chosen = min(candidates, key=lambda i: (image.objects[i].area if point.group is None else 0, i))
        if len(candidates) > 1:
            ties.append({"file": image.where, "label": point.label, "x": x, "y": y,
                         "objects": [image.objects[i].index for i in candidates], "chosen": image.objects[chosen].index})
        taken.add((chosen, point.name))
        owner.append(chosen)
    return Joined(owner, unmatched, ties)


@dataclass
class ToolDataset:
    """Every split's images joined: the COCO files convert reads, and what the joins left over."""

    files: list[CocoFile]
    images: list[list[ToolImage]]  # per split, in CocoFile image order
    where: dict[int, str]  # annotation id -> "file shapes[i] 'label'"
    skipped: list[tuple[int, int, ToolProblem]]  # (annotation id, image id, problem) of shapes left out
    unmatched: list[dict] = field(default_factory=list)
    ties: list[dict] = field(default_factory=list)


def _keypoint_names(splits: list[list[ToolImage]], joins: list[list[Joined]], fixed: dict[str, list[str]]) -> dict[str, list[str]]:
    """Class -> keypoint names: those ``fixed`` (--keypoints), else in the order first seen on the class's objects."""
    names = {cls: list(kpts) for cls, kpts in fixed.items()}
    for images, joined in zip(splits, joins):
        for image, join in zip(images, joined):
            for point, owner in zip(image.points, join.owner):
                if owner is not None:
                    kpts = names.setdefault(image.objects[owner].label, [])
                    if point.name not in kpts:
                        kpts.append(point.name)
    for cls, kpts in names.items():
        if len(kpts) > MAX_KEYPOINTS:
            raise InputError(f"class {cls!r} has {len(kpts)} keypoint names, over the {MAX_KEYPOINTS} a row may hold")
    return names


def _categories(splits: list[list[ToolImage]], names: dict[str, list[str]], first: list[str] | None) -> list[CocoCategory]:
    """Categories 1.. in the order of ``first`` (--classes), then as first seen."""
    order = list(first or [])
    for images in splits:
        for image in images:
            for o in image.objects:
                if o.label not in order:
                    order.append(o.label)
    return [CocoCategory(i, label, tuple(names.get(label, ()))) for i, label in enumerate(order, start=1)]


def tool_coco_files(paths: list[Path], splits: list[list[ToolImage]], *, keypoints: dict[str, list[str]] | None = None,
                    classes: list[str] | None = None) -> ToolDataset:
    """The COCO file of each split (``paths[i]`` names split i), with ids 1.. over the whole dataset.

    Args:
        keypoints: class -> keypoint names in the order the rows hold them (default: first seen).
        classes: class names numbered first, in this order (default: first seen).
    """
    fixed = keypoints or {}
    joins = [[join_points(image, fixed) for image in images] for images in splits]
    names = _keypoint_names(splits, joins, fixed)
    categories = _categories(splits, names, classes)
    if not categories:  # as COCO's empty 'categories': a dataset needs a class
        shapes = sum(len(image.objects) + len(image.points) + len(image.problems) for images in splits for image in images)
        raise InputError(f"no usable object (polygon, rectangle, circle, mask or brush) in {sum(map(len, splits))} images and "
                         f"{shapes} shapes: no class to write", file=paths[0])
    category_of = {c.name: c for c in categories}
    files, where, skipped, unmatched, ties = [], {}, [], [], []
    next_image = next_annotation = 1
    for path, images, joined in zip(paths, splits, joins):
        coco_images, annotations = {}, []
        for image, join in zip(images, joined):
            image_id, next_image = next_image, next_image + 1
            coco_images[image_id] = CocoImage(image_id, image.file_name, image.width, image.height)
            unmatched += join.unmatched
            ties += join.ties
            for problem in image.problems:
                where[next_annotation] = image.shape_where(problem.index, problem.label)
                skipped.append((next_annotation, image_id, problem))
                next_annotation += 1
            for k, o in enumerate(image.objects):
                category = category_of[o.label]
                where[next_annotation] = image.shape_where(o.index, o.label)
                annotations.append(_annotation(next_annotation, image_id, category, o, image, join, k))
                next_annotation += 1
        table = annotation_table(annotations)
        files.append(CocoFile(path, coco_images, categories, table))
    return ToolDataset(files, splits, where, skipped, unmatched, ties)


def _annotation(annotation_id: int, image_id: int, category: CocoCategory, o: ToolObject, image: ToolImage, join: Joined,
                k: int) -> CocoAnnotation:
    keypoints = None
    if category.keypoints:
        values = np.zeros((len(category.keypoints), 3))
        slot = {name: j for j, name in enumerate(category.keypoints)}
        for point, owner in zip(image.points, join.owner):
            if owner == k:
                values[slot[point.name]] = (point.xy[0], point.xy[1], 2)
        keypoints = values.reshape(-1)
    segmentation = o.rle if o.rle is not None else [part.reshape(-1).astype(np.float64) for part in o.parts]
    return CocoAnnotation(
        id=annotation_id, image_id=image_id, category_id=category.id, iscrowd=False, bbox_xywh=None,
        segmentation=segmentation, keypoints=keypoints, raw_keypoint_count=0 if keypoints is None else len(keypoints),
    )


def polygon_object(index: int, label: str, xy: np.ndarray, group: Any = None) -> ToolObject:
    """An object of one (P, 2) pixel polygon."""
    x, y = xy[:, 0], xy[:, 1]  # the shoelace formula, the closing edge apart (np.roll costs more than the sums)
    area = abs(float(x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0])) / 2
    return ToolObject(index, label, parts=[xy], group=group, area=area)


def rectangle_xy(corner_a, corner_b) -> np.ndarray:
    """The (4, 2) ring of the axis-aligned rectangle with opposite corners ``corner_a`` and ``corner_b``."""
    (x1, y1), (x2, y2) = corner_a, corner_b
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def ellipse_xy(center, radius_x: float, radius_y: float, rotation_deg: float = 0.0) -> np.ndarray:
    """A (N, 2) ring around an ellipse (a circle when the radii are equal), N from its size (12..120 points,
    one per ~3 pixels of outline); rotated clockwise on screen (y down) by ``rotation_deg``."""
    n = int(np.clip(np.ceil(2 * np.pi * max(radius_x, radius_y) / 3), 12, 120))
    t = 2 * np.pi * np.arange(n) / n
    ring = np.stack([radius_x * np.cos(t), radius_y * np.sin(t)], axis=1)
    a = np.deg2rad(rotation_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ring @ rotation.T + np.asarray(center, dtype=np.float64)


def mask_object(index: int, label: str, crop: np.ndarray, x0: int, y0: int, width: int, height: int,
                group: Any = None) -> ToolObject | None:
    """An object of a (h, w) bool mask whose top-left pixel is at (x0, y0) of a ``width`` x ``height`` image:
    encoded as a COCO RLE of the whole image (the part outside it cut off); None when no pixel is set inside.

    The caller bounds ``width * height`` (mtdata.limits.MAX_IMAGE_PIXELS): the whole-image mask is allocated.
    """
    from pycocotools import mask as mask_utils

    full = np.zeros((height, width), dtype=np.uint8, order="F")
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + crop.shape[1], width), min(y0 + crop.shape[0], height)
    if xa >= xb or ya >= yb:
        return None
    full[ya:yb, xa:xb] = crop[ya - y0:yb - y0, xa - x0:xb - x0]
    area = int(np.count_nonzero(full[ya:yb, xa:xb]))
    if not area:
        return None
    rle = mask_utils.encode(full)
    rle = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return ToolObject(index, label, rle=rle, group=group, area=float(area), mask=(full[ya:yb, xa:xb].astype(bool), xa, ya))


def merge_objects(objects: list[ToolObject], width: int, height: int) -> list[ToolObject]:
    """Join the objects that share a group and a class into one (the parts of an occluded object), in the place
    of the first; ungrouped objects stay apart. Polygons join as parts; a group holding a mask becomes one mask."""
    firsts: dict[tuple, int] = {}
    members: list[list[ToolObject]] = []
    for o in objects:
        key = (repr(o.group), o.label)
        if o.group is None or key not in firsts:
            firsts.setdefault(key, len(members))
            members.append([o])
        else:
            members[firsts[key]].append(o)
    return [group[0] if len(group) == 1 else _merged(group, width, height) for group in members]


def _merged(group: list[ToolObject], width: int, height: int) -> ToolObject:
    first = group[0]
    if all(o.rle is None for o in group):
        return ToolObject(first.index, first.label, parts=[p for o in group for p in o.parts], group=first.group,
                          area=sum(o.area for o in group))
    import cv2
    from pycocotools import mask as mask_utils

    full = np.zeros((height, width), dtype=np.uint8)
    for o in group:
        if o.rle is not None:
            full |= mask_utils.decode({"size": o.rle["size"], "counts": o.rle["counts"].encode("ascii")})
        for part in o.parts:
            cv2.fillPoly(full, [np.round(part).astype(np.int32)], 1)
    return mask_object(first.index, first.label, full.astype(bool), 0, 0, width, height, first.group) or first


def annotation_table(annotations: list[CocoAnnotation]) -> AnnotationTable:
    """The annotations as COCO's columns, so that polygons take convert's bulk path (as a COCO file's would);
    masks (RLE) stay whole, for the per-annotation path."""
    polygonal = [isinstance(a.segmentation, list) for a in annotations]
    parts = [p for a, ok in zip(annotations, polygonal) if ok for p in a.segmentation]
    keypoints = [a.keypoints for a, ok in zip(annotations, polygonal) if ok and a.keypoints is not None]
    return AnnotationTable(
        ids=np.array([a.id for a in annotations], dtype=np.int64),
        image_ids=np.array([a.image_id for a in annotations], dtype=np.int64),
        category_ids=np.array([a.category_id for a in annotations], dtype=np.int64),
        iscrowd=np.zeros(len(annotations), dtype=bool),
        bbox_xywh=np.full((len(annotations), 4), np.nan), has_bbox=np.zeros(len(annotations), dtype=bool),
        part_counts=np.array([len(a.segmentation) if ok else 0 for a, ok in zip(annotations, polygonal)], dtype=np.int64),
        part_sizes=np.array([len(p) for p in parts], dtype=np.int64),
        polygon_values=np.concatenate(parts) if parts else np.zeros(0),
        keypoint_counts=np.array([len(a.keypoints) if ok and a.keypoints is not None else 0 for a, ok in zip(annotations, polygonal)],
                                 dtype=np.int64),
        keypoint_values=np.concatenate(keypoints) if keypoints else np.zeros(0),
        slow={i: a for i, (a, ok) in enumerate(zip(annotations, polygonal)) if not ok},
    )
