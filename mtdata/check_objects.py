"""Geometry and keypoint rules over the parsed rows of label files, vectorized across files.

Rows hold normalized coordinates; the rules measure in pixels of the image (``resolution_wh``)
when it is known, and in normalized units otherwise. Polygons from ``mtdata convert`` may join
several parts with zero-width bridges (:func:`mtdata.geometry.join_polygons`): such a ring
touches itself, so shapely calls it invalid, yet nothing crosses. A polygon is reported as
self-intersecting only when two of its edges cross properly *and* the crossing changes its
filled area (shapely ``make_valid``) by more than 1% of its outline's (shoelace) area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from mtdata.errors import Finding
from mtdata.formats.yolo import LabelLayout, ParsedLabels, YoloRow
from mtdata.rules import finding
from mtdata.verify import row_key

TRAIN_SIZE = 640  # ultralytics' default imgsz: tiny objects are judged at this long side
MIN_SIDE_PX = 2  # ultralytics' box_candidates(wh_thr=2) drops boxes this small after augmentation
SELF_INTERSECTION_AREA = 0.01  # relative area change that counts as a real crossing
NEAR_DUPLICATE_IOU = 0.9
FAR_OUTSIDE_BOX = 0.5  # a visible keypoint this many box long-sides outside its box is far
ZERO_AREA = 1e-12  # normalized units: exact zero up to float noise


def row_box_xyxyn(row: YoloRow) -> np.ndarray:
    """(4,) normalized xyxy box of a row: its own box, else its polygon's."""
    if row.box_cxcywhn is not None:
        cx, cy, w, h = row.box_cxcywhn
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    p = row.polygon_xyn
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def _raw_parts(line: str, row: YoloRow, layout: LabelLayout) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The unclipped (polygon, box, keypoints) values of a row, as written in the file."""
    values = np.array(line.split()[1:], dtype=np.float64)
    k = layout.num_keypoints
    if layout.task == "multitask":
        n = 3 * k if row.keypoints_xyn is not None else 0
        return values[n:].reshape(-1, 2), None, values[:n].reshape(-1, 3) if n else None
    if layout.task == "segment":
        return values.reshape(-1, 2), None, None
    if layout.task == "detect":
        return None, values[:4], None
    return None, values[:4], values[4:].reshape(k, layout.keypoint_dims)


def was_clipped(line: str, row: YoloRow, layout: LabelLayout) -> bool:
    """Did loading clip a coordinate that was outside [0, 1] within tolerance?"""
    labeled = row.keypoints_xyn[row.keypoints_xyn[:, 2] > 0, :2] if row.keypoints_xyn is not None else None
    parts = [a for a in (row.polygon_xyn, row.box_cxcywhn, labeled) if a is not None]
    # clipping only ever produces exact 0s and 1s: most rows need no second look at the raw text
    if not any(((a == 0) | (a == 1)).any() for a in parts):
        return False
    polygon, box, kpts = _raw_parts(line, row, layout)
    if polygon is not None and not np.array_equal(polygon, row.polygon_xyn):
        return True
    if box is not None and not np.array_equal(box, row.box_cxcywhn):
        return True
    if kpts is not None:
        mask = row.keypoints_xyn[:, 2] > 0
        return not np.array_equal(kpts[mask, :2], row.keypoints_xyn[mask, :2])
    return False


def _shoelace(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:]) + x[-1] * y[0] - y[-1] * x[0]))


def has_crossing(polygon: np.ndarray) -> bool:
    """Do two edges of a (P, 2) ring cross properly (each through the other's interior)?

    Shared vertices, touching points and collinear overlaps (the zero-width bridges of
    :func:`mtdata.geometry.join_polygons`) are not crossings: their orientation tests are 0.
    """
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    d = b - a

    def side(seg_a, seg_d, pts):  # (P, P): orientation of pts[j] to segment i
        rel = pts[None, :, :] - seg_a[:, None, :]
        return seg_d[:, None, 0] * rel[..., 1] - seg_d[:, None, 1] * rel[..., 0]

    o1, o2 = side(a, d, a), side(a, d, b)  # ends of segment j against segment i
    return bool((((o1 * o2) < 0) & ((o1 * o2).T < 0)).any())


def crossing_areas(polygon: np.ndarray) -> tuple[float, float] | None:
    """(outline area, filled area) of a (P, 2) polygon that crosses itself, or None when it does not.

    The outline area is the shoelace area; the filled area is shapely's after ``make_valid``.
    A crossing counts when it changes the area by more than SELF_INTERSECTION_AREA: a bridge or
    a touching vertex changes nothing, a tiny kink too little to matter.
    """
    if shapely.is_valid(shapely.Polygon(polygon)) or not has_crossing(polygon):
        return None
    outline = _shoelace(polygon)
    filled = shapely.make_valid(shapely.Polygon(polygon)).area
    if abs(filled - outline) > SELF_INTERSECTION_AREA * max(filled, outline):
        return outline, filled
    return None


@dataclass
class FileRows:
    """The usable rows of one label file, as :func:`object_findings_batch` takes them.

    Attributes:
        parsed: rows and their 1-based lines (from :mod:`mtdata.verify`).
        text_lines: the file's lines, to see values that loading clipped.
        resolution_wh: image (width, height) in pixels, or None when unknown.
        file: the label file, for the findings.
    """

    parsed: ParsedLabels
    text_lines: list[str]
    resolution_wh: tuple[int, int] | None
    file: str


def _boxes(rows: list[YoloRow]) -> np.ndarray:
    """(N, 4) normalized xyxy boxes, polygon bounds computed in one reduceat pass."""
    boxes = np.zeros((len(rows), 4))
    with_poly = [i for i, r in enumerate(rows) if r.polygon_xyn is not None]
    if with_poly:
        polys = [rows[i].polygon_xyn for i in with_poly]
        starts = np.cumsum([0] + [len(p) for p in polys[:-1]])
        coords = np.concatenate(polys)
        boxes[with_poly, :2] = np.minimum.reduceat(coords, starts, axis=0)
        boxes[with_poly, 2:] = np.maximum.reduceat(coords, starts, axis=0)
    for i, r in enumerate(rows):
        if r.polygon_xyn is None:
            boxes[i] = row_box_xyxyn(r)
    return boxes


class _Batch:
    """The rows of many files flattened, with per-row file index, line and pixel scale."""

    def __init__(self, files: list[FileRows]):
        self.files = files
        self.rows = [r for f in files for r in f.parsed.rows]
        self.lines = [ln for f in files for ln in f.parsed.lines]
        self.owner = np.repeat(np.arange(len(files)), [len(f.parsed.rows) for f in files])
        wh = np.array([f.resolution_wh or (1, 1) for f in files], dtype=np.float64).reshape(-1, 2)
        self.wh = wh[self.owner]  # (N, 2) pixels per normalized unit
        self.out: list[list[Finding]] = [[] for _ in files]

    def add(self, i: int, rule: str, message: str) -> None:
        owner = int(self.owner[i])
        self.out[owner].append(finding(rule, self.files[owner].file, self.lines[i], message))


def _check_polygons(batch: _Batch) -> list:
    """zero_area and polygon_self_intersecting; returns each row's shapely polygon (None without one)."""
    index = [i for i, r in enumerate(batch.rows) if r.polygon_xyn is not None]
    shapes: list = [None] * len(batch.rows)
    if not index:
        return shapes
    polys_px = [batch.rows[i].polygon_xyn * batch.wh[i] for i in index]
    ring_ids = np.repeat(np.arange(len(index)), [len(p) for p in polys_px])
    polys = shapely.polygons(shapely.linearrings(np.concatenate(polys_px), indices=ring_ids))
    areas = shapely.area(polys)  # GEOS: the absolute shoelace area, also for invalid rings
    valid = shapely.is_valid(polys)
    # GEOS (>= 3.10) reports any interior intersection of edges as "Self-intersection" before it
    # looks for a ring touching itself at a vertex ("Ring Self-intersection"): the latter, most
    # bridged multi-part polygons, cannot hide a crossing and skip the slower tests below.
    suspect = ~valid
    if suspect.any():
        reasons = shapely.is_valid_reason(polys[suspect])
        suspect[np.flatnonzero(suspect)] = [not r.startswith("Ring Self-intersection") for r in reasons]
    unit = batch.wh[index].prod(axis=1)
    for j, i in enumerate(index):
        if areas[j] <= ZERO_AREA * unit[j]:
            batch.add(i, "zero_area", "the polygon encloses no area (its points are collinear or repeated)")
            continue
        shapes[i] = polys[j]
        if not suspect[j] or not has_crossing(polys_px[j]):
            continue  # bridges and touching vertices make shapely say invalid, but nothing crosses
        filled = shapely.make_valid(polys[j])
        shapes[i] = filled
        if abs(filled.area - areas[j]) > SELF_INTERSECTION_AREA * max(filled.area, areas[j]):
            batch.add(i, "polygon_self_intersecting",
                      f"the polygon crosses itself: its outline encloses {areas[j] / unit[j]:.4g} but fills "
                      f"{filled.area / unit[j]:.4g} (normalized area)")
    return shapes


def _check_clipped(batch: _Batch, layout: LabelLayout) -> None:
    # Clipping only ever produces exact 0s and 1s: find the rows holding one in one pass, and
    # read only those again from the text.
    rows = batch.rows
    parts = [r.polygon_xyn if r.polygon_xyn is not None else r.box_cxcywhn.reshape(-1, 2) for r in rows]
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    edge = np.logical_or.reduceat(np.concatenate(parts) % 1 == 0, starts, axis=0).any(axis=1)
    with_kpts = [i for i, r in enumerate(rows) if r.keypoints_xyn is not None and len(r.keypoints_xyn)]
    if with_kpts:
        kpts = np.stack([rows[i].keypoints_xyn for i in with_kpts])
        edge[with_kpts] |= ((kpts[..., :2] % 1 == 0) & (kpts[..., 2:] > 0)).any(axis=(1, 2))
    for i in np.flatnonzero(edge):
        f = batch.files[int(batch.owner[i])]
        if was_clipped(f.text_lines[batch.lines[i] - 1], rows[i], layout):
            batch.add(int(i), "coord_clipped", "coordinates slightly outside [0, 1] (within 0.01) are clipped on load")


def _check_sizes(batch: _Batch, boxes: np.ndarray) -> None:
    # judge size at the training resolution: the long side becomes TRAIN_SIZE pixels
    train_wh = batch.wh * (TRAIN_SIZE / batch.wh.max(axis=1, keepdims=True))
    sides = (boxes[:, 2:] - boxes[:, :2]) * train_wh
    for i in np.flatnonzero((sides < MIN_SIDE_PX).any(axis=1)):
        w, h = sides[i]
        batch.add(i, "object_tiny", f"the object is {w:.2g}x{h:.2g} pixels at {TRAIN_SIZE} pixels on the long side")


def _check_near_duplicates(batch: _Batch, boxes: np.ndarray, shapes: list) -> None:
    groups: dict[tuple[int, int], list[int]] = {}
    for i, row in enumerate(batch.rows):
        groups.setdefault((int(batch.owner[i]), row.class_id), []).append(i)
    pairs = [(a, b) for g in groups.values() if len(g) > 1 for n, a in enumerate(g) for b in g[n + 1:]]
    if not pairs:
        return
    a, b = np.array(pairs).T
    lo = np.maximum(boxes[a, :2], boxes[b, :2])
    hi = np.minimum(boxes[a, 2:], boxes[b, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    union = area[a] + area[b] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    for k in np.flatnonzero(iou >= NEAR_DUPLICATE_IOU):
        i, j = int(a[k]), int(b[k])
        if row_key(batch.rows[i]) == row_key(batch.rows[j]):
            continue  # an exact repeat is row_duplicate
        score = float(iou[k])
        if shapes[i] is not None and shapes[j] is not None:
            union_area = shapes[i].union(shapes[j]).area
            score = shapes[i].intersection(shapes[j]).area / union_area if union_area > 0 else 0.0
        if score >= NEAR_DUPLICATE_IOU:
            batch.add(j, "object_near_duplicate", f"overlaps line {batch.lines[i]} (same class {batch.rows[i].class_id}) with IoU {score:.3f}")


def _named(indices: np.ndarray, names: list[str]) -> str:
    return ", ".join(f"{j} ({names[j]})" if names else str(j) for j in indices)


def _check_keypoints(batch: _Batch, boxes: np.ndarray, kpt_names: dict[int, list[str]]) -> None:
    index = [i for i, r in enumerate(batch.rows) if r.keypoints_xyn is not None and len(r.keypoints_xyn)]
    if not index:
        return
    kpts = np.stack([batch.rows[i].keypoints_xyn for i in index])  # (M, K, 3) normalized
    v = kpts[..., 2]
    none = ~(v > 0).any(axis=1)
    stray = (v == 0) & ((kpts[..., 0] != 0) | (kpts[..., 1] != 0))
    wh = batch.wh[index][:, None, :]
    xy = kpts[..., :2] * wh
    box = boxes[index] * np.tile(batch.wh[index], 2)
    outside = np.maximum(np.maximum(box[:, None, :2] - xy, xy - box[:, None, 2:]), 0).max(axis=2)
    margin = FAR_OUTSIDE_BOX * np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    far = (v == 2) & (outside > margin[:, None])
    for m in np.flatnonzero(none | stray.any(axis=1) | far.any(axis=1)):
        i = index[m]
        cls = batch.rows[i].class_id
        names = kpt_names.get(cls) or []
        label = names if len(names) == kpts.shape[1] else []
        if none[m]:
            batch.add(i, "kpt_none_labeled", f"class {cls} has keypoints but none of the {kpts.shape[1]} is labeled")
        if stray[m].any():
            batch.add(i, "kpt_unlabeled_nonzero",
                      f"keypoints {_named(np.flatnonzero(stray[m]), label)} have visibility 0 but non-zero coordinates")
        if far[m].any():
            batch.add(i, "kpt_far_outside_box",
                      f"visible keypoints {_named(np.flatnonzero(far[m]), label)} lie more than "
                      f"{FAR_OUTSIDE_BOX:g} box sizes outside the object's box")


def object_findings_batch(files: list[FileRows], layout: LabelLayout, kpt_names: dict[int, list[str]] | None = None) -> list[list[Finding]]:
    """Geometry and keypoint findings for the usable rows of many label files at once.

    Vectorized across files (shapely and numpy see one array per chunk, not one per file).

    Args:
        files: the files' rows (see :class:`FileRows`).
        layout: the row layout.
        kpt_names: class id -> keypoint names, for messages.

    Returns:
        one list of findings per file, in order.
    """
    batch = _Batch(files)
    if not batch.rows:
        return batch.out
    _check_clipped(batch, layout)
    shapes = _check_polygons(batch)
    boxes = _boxes(batch.rows)
    _check_sizes(batch, boxes)
    _check_near_duplicates(batch, boxes, shapes)
    _check_keypoints(batch, boxes, kpt_names or {})
    for found in batch.out:
        found.sort(key=lambda f: f.line or 0)
    return batch.out


def object_findings(
    parsed: ParsedLabels,
    text_lines: list[str],
    layout: LabelLayout,
    resolution_wh: tuple[int, int] | None,
    file: str,
    kpt_names: dict[int, list[str]] | None = None,
) -> list[Finding]:
    """Geometry and keypoint findings for one label file (see :func:`object_findings_batch`)."""
    return object_findings_batch([FileRows(parsed, text_lines, resolution_wh, file)], layout, kpt_names)[0]
