"""Geometry and keypoint rules over the parsed rows of label files, vectorized across files.

Rows hold normalized coordinates; the rules measure in pixels of the image (``resolution_wh``)
when it is known, and in normalized units otherwise. Whether a polygon is usable at all (zero
area, crossing itself) is :mod:`mtdata.check.polygons`' verdict, the one export and the trainer
use too. Near-duplicates are found without comparing every pair of rows
(:func:`near_duplicate_candidates`): a file of 20,000 rows of one class is checked in seconds.
"""

from __future__ import annotations

import numpy as np
import shapely

from mtdata.check.batch import CheckRows, FileRows, check_rows, exact_repeats, on_edge
from mtdata.check.polygons import polygon_defects
from mtdata.check.rules import finding
from mtdata.errors import Finding
from mtdata.formats.yolo.rows import LabelLayout, ParsedLabels, YoloRow
from mtdata.geometry import paired_iou

TRAIN_SIZE = 640  # ultralytics' default imgsz: tiny objects are judged at this long side
MIN_SIDE_PX = 2  # ultralytics' box_candidates(wh_thr=2) drops boxes this small after augmentation
NEAR_DUPLICATE_IOU = 0.9
NEAR_DUPLICATE_CANDIDATES = 32  # most rows each row is compared with (see near_duplicate_candidates)
FAR_OUTSIDE_BOX = 0.5  # a visible keypoint this many box long-sides outside its box is far


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


Found = list[tuple[int, str, str]]  # (row of the batch, rule id, message), in the order the rules add them


def _check_polygons(rows: CheckRows, files: list[FileRows]) -> tuple[list, Found]:
    """Each row's shapely polygon (None without one): from :mod:`mtdata.check.verify` when it ran, else
    computed here, with its zero_area and polygon_self_intersecting findings."""
    if all(f.shapes is not None for f in files):
        return [s for f in files for s in f.shapes], []
    offsets = rows.polygon_offsets
    index = np.flatnonzero(np.diff(offsets) > 0)  # a parsed polygon has >= 3 points
    shapes: list = [None] * len(rows)
    polygons = [rows.polygon_xy[offsets[i]:offsets[i + 1]] for i in index.tolist()]
    defects, geometries = polygon_defects(polygons)
    found: Found = []
    for i, defect, geometry in zip(index.tolist(), defects, geometries):
        shapes[i] = geometry
        if defect is not None:
            found.append((i, *defect))
    return shapes, found


def _check_clipped(rows: CheckRows, files: list[FileRows], layout: LabelLayout) -> Found:
    # only rows on an edge can have been clipped: read only those again from the text
    edge = on_edge(rows)
    starts = rows.file_starts(len(files))
    found: Found = []
    for i in np.flatnonzero(edge).tolist():
        f = files[int(rows.image[i])]
        line = int(rows.source_ids[i])
        if was_clipped(f.text_lines[line - 1], f.parsed.rows[i - int(starts[rows.image[i]])], layout):
            found.append((i, "coord_clipped", "coordinates slightly outside [0, 1] (within 0.01) are clipped on load"))
    return found


def _check_sizes(rows: CheckRows) -> Found:
    # judge size at the training resolution: the long side becomes TRAIN_SIZE pixels
    train_wh = rows.resolution_wh * (TRAIN_SIZE / rows.resolution_wh.max(axis=1, keepdims=True))
    sides = (rows.xyxy[:, 2:] - rows.xyxy[:, :2]) * train_wh
    tiny = np.flatnonzero((sides < MIN_SIDE_PX).any(axis=1))
    return [(i, "object_tiny", f"the object is {w:.2g}x{h:.2g} pixels at {TRAIN_SIZE} pixels on the long side")
            for i, (w, h) in zip(tiny.tolist(), sides[tiny].tolist())]


def _axis_window(base: np.ndarray, value: np.ndarray, low: np.ndarray, high: np.ndarray,
                 cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of :func:`near_duplicate_candidates`: the rows sorted by (group, value), and for each
    row where its window of at most ``cap + 1`` sorted rows starts and how many rows its whole window holds.

    Args:
        base: (N,) group key, spaced wider than any window; value, low, high: (N,) the row's value and window.
    Returns:
        order (N,) the sort; start (N,) first position of the row's capped window in it; count (N,) rows in
        its full window.
    """
    eps = 1e-9  # the keys lose ~1e-11 to rounding: never lose a candidate to it
    key = base + np.clip(value, -2.0, 4.0)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    lo = np.searchsorted(sorted_key, base + np.clip(low, -2.0, 4.0) - eps, side="left")
    hi = np.searchsorted(sorted_key, base + np.clip(high, -2.0, 4.0) + eps, side="right")
    position = np.empty(len(key), dtype=np.int64)
    position[order] = np.arange(len(key))
    # at most cap + 1 (the row itself is among them), centred on the row where the window is wider
    take = np.minimum(hi - lo, cap + 1)
    start = np.clip(position - take // 2, lo, hi - take)
    return order, start, hi - lo


def near_duplicate_candidates(boxes: np.ndarray, group: np.ndarray, iou: float, cap: int = NEAR_DUPLICATE_CANDIDATES) -> np.ndarray:
    """(M, 2) index pairs (a < b) of rows of one group whose boxes may have IoU >= ``iou``: sub-quadratic.

    Box IoU >= t bounds each box by the other: widths within a factor t (inter_w >= t max(w)),
    and centres within (1 - t) / t of either width (in x; the same in y with heights). Each row
    is looked up along the one of those four axes (cx, cy, w, h) where fewest rows of its group
    fall in its window (a sort and two binary searches per axis), and is paired with at most
    ``cap`` of them, the nearest along that axis. Every pair with IoU >= t is among the
    candidates unless more than ``cap`` rows of the group are within the windows of both its
    rows on every axis (a crowd of one box repeated with jitter; each of them then has nearer
    candidates). Time and memory are O(N log N + N cap).

    Args:
        boxes: (N, 4) xyxy.
        group: (N,) int group of each row (pairs never cross groups).
        iou: the IoU threshold t in (0, 1).
        cap: most candidates per row.
    """
    n = len(boxes)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    wh = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    reach = (1 - iou) / iou
    # per axis: value, window low, window high (normalized coordinates lie in [0, 1])
    axes = [
        (centre[:, 0], centre[:, 0] - reach * wh[:, 0], centre[:, 0] + reach * wh[:, 0]),
        (centre[:, 1], centre[:, 1] - reach * wh[:, 1], centre[:, 1] + reach * wh[:, 1]),
        (wh[:, 0], wh[:, 0] * iou, wh[:, 0] / iou),
        (wh[:, 1], wh[:, 1] * iou, wh[:, 1] / iou),
    ]
    # one sorted key per axis: the group first (spaced wider than any window), then the value
    base = (np.unique(group, return_inverse=True)[1] * 8.0 + 2.0)
    orders, starts, counts = zip(*(_axis_window(base, value, low, high, cap) for value, low, high in axes))
    axis = np.argmin(np.stack(counts), axis=0)  # (N,) the most selective axis of each row
    rows = np.arange(n)
    take = np.minimum(np.stack(counts)[axis, rows], cap + 1)
    start = np.stack(starts)[axis, rows]
    total = int(take.sum())
    owner = np.repeat(rows, take)
    offset = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    partner = np.stack(orders)[np.repeat(axis, take), np.repeat(start, take) + offset]
    keep = owner != partner
    a, b = np.minimum(owner[keep], partner[keep]), np.maximum(owner[keep], partner[keep])
    pairs = np.unique(a * n + b)
    return np.stack([pairs // n, pairs % n], axis=1)


def _check_near_duplicates(rows: CheckRows, shapes: list) -> Found:
    """object_near_duplicate: once per row, naming the earliest row of its file and class (among its
    candidates) that it overlaps with IoU >= 0.9: the polygons' IoU when both have one, else the boxes'."""
    n, boxes, classes = len(rows), rows.xyxy, rows.class_id
    area = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    live = np.flatnonzero(area > 0)  # a box without area has IoU 0 with anything
    group = rows.image[live] * (int(classes.max()) + 1) + classes[live]
    pairs = live[near_duplicate_candidates(boxes[live], group, NEAR_DUPLICATE_IOU)]
    if not len(pairs):
        return []
    a, b = pairs.T
    box_iou = paired_iou(boxes[a], boxes[b])
    keep = box_iou >= NEAR_DUPLICATE_IOU
    a, b, box_iou = a[keep], b[keep], box_iou[keep]
    keep = ~exact_repeats(rows, a, b)  # an exact repeat is row_duplicate
    a, b, box_iou = a[keep], b[keep], box_iou[keep]
    if not len(a):
        return []
    # each later row b with its candidates a in ascending order: the polygons are compared a round at a
    # time, the first candidate of every row still open, so a crowd costs ~one intersection per row
    order = np.lexsort((a, b))
    a, b, box_iou = a[order], b[order], box_iou[order]
    rank = np.arange(len(b)) - np.searchsorted(b, b)
    geometry = np.empty(n, dtype=object)
    geometry[:] = shapes
    has_shape = np.array([s is not None for s in shapes], dtype=bool)
    shape_area = np.zeros(n)
    shape_area[has_shape] = shapely.area(geometry[has_shape])
    found: dict[int, tuple[int, float]] = {}
    open_rows = np.ones(n, dtype=bool)
    for k in range(int(rank.max()) + 1):
        at = np.flatnonzero((rank == k) & open_rows[b])
        if not len(at):
            continue
        ia, ib = a[at], b[at]
        score = box_iou[at].copy()
        both = has_shape[ia] & has_shape[ib]
        if both.any():
            overlap = shapely.area(shapely.intersection(geometry[ia[both]], geometry[ib[both]]))
            shape_union = shape_area[ia[both]] + shape_area[ib[both]] - overlap
            score[both] = np.divide(overlap, shape_union, out=np.zeros_like(overlap), where=shape_union > 0)
        hit = score >= NEAR_DUPLICATE_IOU
        for i, j, value in zip(ia[hit].tolist(), ib[hit].tolist(), score[hit].tolist()):
            found[j] = (i, value)  # rows are in file and line order: i < j is the earlier line
        open_rows[ib[hit]] = False
    return [(j, "object_near_duplicate", f"overlaps line {int(rows.source_ids[i])} (same class {int(classes[i])}) with IoU {score:.3f}")
            for j, (i, score) in sorted(found.items())]


def _named(indices: np.ndarray, names: list[str]) -> str:
    return ", ".join(f"{j} ({names[j]})" if names else str(j) for j in indices)


def _check_keypoints(rows: CheckRows, kpt_names: dict[int, list[str]]) -> Found:
    index = np.flatnonzero(rows.has_keypoints)
    if not len(index):
        return []
    kpts = rows.keypoints[index]  # (M, K, 3) normalized
    v = kpts[..., 2]
    none = ~(v > 0).any(axis=1)
    stray = (v == 0) & ((kpts[..., 0] != 0) | (kpts[..., 1] != 0))
    wh = rows.resolution_wh[index]
    xy = kpts[..., :2] * wh[:, None, :]
    box = rows.xyxy[index] * np.tile(wh, 2)
    outside = np.maximum(np.maximum(box[:, None, :2] - xy, xy - box[:, None, 2:]), 0).max(axis=2)
    margin = FAR_OUTSIDE_BOX * np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    far = (v == 2) & (outside > margin[:, None])
    found: Found = []
    for m in np.flatnonzero(none | stray.any(axis=1) | far.any(axis=1)).tolist():
        i, cls = int(index[m]), int(rows.class_id[index[m]])
        names = kpt_names.get(cls) or []
        label = names if len(names) == kpts.shape[1] else []
        if none[m]:
            found.append((i, "kpt_none_labeled", f"class {cls} has keypoints but none of the {kpts.shape[1]} is labeled"))
        if stray[m].any():
            found.append((i, "kpt_unlabeled_nonzero",
                          f"keypoints {_named(np.flatnonzero(stray[m]), label)} have visibility 0 but non-zero coordinates"))
        if far[m].any():
            found.append((i, "kpt_far_outside_box",
                          f"visible keypoints {_named(np.flatnonzero(far[m]), label)} lie more than "
                          + f"{FAR_OUTSIDE_BOX:g} box sizes outside the object's box"))
    return found


def object_findings_batch(files: list[FileRows], layout: LabelLayout, kpt_names: dict[int, list[str]] | None = None) -> list[list[Finding]]:
    """Geometry and keypoint findings for the usable rows of many label files at once.

    The rows of all files are one :class:`~mtdata.check.batch.CheckRows` (built once), and every rule
    reads its columns: shapely and numpy see one array per chunk, not one per file or row.

    Args:
        files: the files' rows (see :class:`FileRows`).
        layout: the row layout.
        kpt_names: class id -> keypoint names, for messages.

    Returns:
        one list of findings per file, in line order (the rules' order within a line).
    """
    out: list[list[Finding]] = [[] for _ in files]
    rows = check_rows(files, layout)
    if not len(rows):
        return out
    found = _check_clipped(rows, files, layout)
    shapes, polygon_found = _check_polygons(rows, files)
    found += polygon_found + _check_sizes(rows) + _check_near_duplicates(rows, shapes) + _check_keypoints(rows, kpt_names or {})
    for i, rule, message in found:
        f = int(rows.image[i])
        out[f].append(finding(rule, files[f].file, int(rows.source_ids[i]), message))
    for file_found in out:
        file_found.sort(key=lambda f: f.line or 0)
    return out


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
