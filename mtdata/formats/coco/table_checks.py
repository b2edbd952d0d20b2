"""COCO annotations in bulk: which rows of an :class:`AnnotationTable` are refused, and why.

The checks and order of :func:`mtdata.formats.coco.read.annotation_object`, done with whole-array
operations. Each check writes a row's skip reason into ``reason`` ((N,) object array, "" for rows
still kept) and its message into ``message`` (row -> text), for the rows it is given.
"""

from __future__ import annotations

import numpy as np

from mtdata.formats.coco.checks import OUTSIDE_CAP, far_message
from mtdata.formats.coco.columns import AnnotationTable
from mtdata.geometry import ring_twice_areas
from mtdata.limits import ZERO_AREA


def check_parts(table: AnnotationTable, fast: np.ndarray, part_row: np.ndarray, wh_of_row: np.ndarray, reason: np.ndarray,
                message: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Name the ``fast`` rows whose polygon parts are not finite, of the wrong count, far outside the image, or enclose
    no area (the checks and order of :func:`mtdata.formats.coco.read._polygon_from_segmentation`).

    Returns:
        ((P,) each part's twice signed area (NaN for bad parts), (P, 2) lowest and (P, 2) highest x, y of each
        part, or None and None when a part has an odd count of values).
    """
    part_first = (np.cumsum(table.part_sizes) - table.part_sizes).astype(np.int64)
    # each part's extremes (NaN spreads into both, inf shows in one): finiteness and range, and with
    # x, y apart (every part an even count of values, the usual file) its extent too, in two passes
    low_xy = high_xy = None
    if not len(part_first):
        part_high = part_low = np.zeros(0)
    elif not (table.part_sizes % 2).any():
        points = table.polygon_values.reshape(-1, 2)
        low_xy, high_xy = np.minimum.reduceat(points, part_first // 2, axis=0), np.maximum.reduceat(points, part_first // 2, axis=0)
        part_high, part_low = high_xy.max(axis=1), low_xy.min(axis=1)
    else:
        part_high = np.maximum.reduceat(table.polygon_values, part_first)
        part_low = np.minimum.reduceat(table.polygon_values, part_first)
    part_finite = np.isfinite(part_high) & np.isfinite(part_low)
    part_count_ok = (table.part_sizes % 2 == 0) & (table.part_sizes >= 6)
    with np.errstate(invalid="ignore"):
        part_far = (part_high > OUTSIDE_CAP) | (part_low < -OUTSIDE_CAP)
    part_bad = (~part_finite | ~part_count_ok | part_far) & fast[part_row]
    bad_rows, first_bad = np.unique(part_row[part_bad], return_index=True)
    for row, part in zip(bad_rows.tolist(), np.flatnonzero(part_bad)[first_bad].tolist()):
        if not part_finite[part]:
            reason[row], message[row] = "not_finite", "polygon holds NaN or inf"
        elif not part_count_ok[part]:
            reason[row] = "bad_polygon"
            message[row] = f"polygon needs an even count of >= 6 values, found {table.part_sizes[part]}"
        else:
            far = part_high[part] if part_high[part] > OUTSIDE_CAP else part_low[part]
            w, h = wh_of_row[row].astype(int).tolist()
            reason[row], message[row] = "out_of_image", far_message("polygon", float(far), w, h)
    part_twice_area = part_twice_areas(table.polygon_values, table.part_sizes, part_finite & part_count_ok & ~part_far)
    with np.errstate(invalid="ignore"):
        row_area = np.bincount(part_row, weights=np.abs(part_twice_area), minlength=len(table)) / 2
        no_area = fast & (reason == "") & (table.part_counts > 0)
        no_area &= row_area <= ZERO_AREA * wh_of_row[:, 0] * wh_of_row[:, 1]
    reason[no_area] = "bad_polygon"
    for row in np.flatnonzero(no_area).tolist():
        message[row] = "polygon encloses no area (its points are collinear or repeated)"
    return part_twice_area, low_xy, high_xy


def check_boxes(table: AnnotationTable, fast_ok: np.ndarray, wh_of_row: np.ndarray, reason: np.ndarray, message: dict) -> None:
    """Name the rows whose bbox is not finite, far outside the image or empty, or that have neither a bbox nor a
    polygon (as :func:`mtdata.formats.coco.read.annotation_object`); ``fast_ok`` loses them, in place."""
    w, h = table.bbox_xywh[:, 2], table.bbox_xywh[:, 3]
    with np.errstate(invalid="ignore"):
        box_bad = table.has_bbox & ~np.isfinite(table.bbox_xywh).all(axis=1) & fast_ok
        reason[box_bad] = "not_finite"
        for row in np.flatnonzero(box_bad).tolist():
            message[row] = "bbox holds NaN or inf"
        fast_ok &= ~box_bad
        box_far = table.has_bbox & (np.abs(table.bbox_xywh) > OUTSIDE_CAP).any(axis=1) & fast_ok
        reason[box_far] = "out_of_image"
        for row in np.flatnonzero(box_far).tolist():
            value = table.bbox_xywh[row][np.abs(table.bbox_xywh[row]) > OUTSIDE_CAP][0]
            iw, ih = wh_of_row[row].astype(int).tolist()
            message[row] = far_message("bbox", float(value), iw, ih)
        fast_ok &= ~box_far
        size_bad = table.has_bbox & ((w <= 0) | (h <= 0)) & fast_ok
    reason[size_bad] = "bad_bbox"
    for row in np.flatnonzero(size_bad).tolist():
        message[row] = f"bbox width and height must be > 0, found {w[row]:g} x {h[row]:g}"
    fast_ok &= ~size_bad
    no_box = ~table.has_bbox & (table.part_counts == 0) & fast_ok
    reason[no_box] = "bad_bbox"
    for row in np.flatnonzero(no_box).tolist():
        message[row] = "has neither a bbox nor a segmentation"
    fast_ok &= ~no_box


def part_twice_areas(values: np.ndarray, part_sizes: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(P,) twice the signed area of each polygon part (:func:`ring_twice_areas`), NaN where not ``ok``.

    Computed once, for the zero-area check and for the joins (which turn parts counter-clockwise).
    When every part has an even count of values (the usual file), the values are the points as
    they lie: no copy.
    """
    areas = np.full(len(part_sizes), np.nan)
    if not ok.any():
        return areas
    with np.errstate(over="ignore", invalid="ignore"):  # parts already refused may hold anything
        if not (part_sizes % 2).any():
            offsets = np.concatenate([[0], np.cumsum(part_sizes // 2)]).astype(np.int64)
            areas[ok] = ring_twice_areas(values.reshape(-1, 2), offsets)[ok]
        else:
            offsets = np.concatenate([[0], np.cumsum(part_sizes[ok] // 2)]).astype(np.int64)
            areas[ok] = ring_twice_areas(values[np.repeat(ok, part_sizes)].reshape(-1, 2), offsets)
    return areas
