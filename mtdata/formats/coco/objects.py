"""COCO annotations in bulk: an :class:`AnnotationTable` -> the objects a conversion writes.

What :func:`mtdata.formats.coco.read.annotation_object` does annotation by annotation (validate
it, join multi-part polygons, pad keypoints), done with whole-array operations over all the
annotations of a file. Annotations the table keeps as objects (odd JSON) go through
:func:`mtdata.formats.coco.read.annotation_object` one by one, so every check and message is the
same; tests hold the two paths together (with the per-image oracle of ``tests/mtdata/oracles.py``). The checks are in :mod:`mtdata.formats.coco.table_checks`, the
polygon joins in :mod:`mtdata.formats.coco.joins`; :func:`table_objects` puts the steps in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mtdata.errors import AnnotationError
from mtdata.formats.coco.checks import OUTSIDE_SIDES, extent_suspects
from mtdata.formats.coco.columns import AnnotationTable
from mtdata.formats.coco.joins import join_pairs, join_singles, pairs_overlap, row_extents, run_extents
from mtdata.formats.coco.table_checks import check_boxes, check_parts
from mtdata.geometry import JOIN_LOSS_IOU, join_loss_iou, join_polygons, joined_mask_iou
from mtdata.records import ObjectBatch


@dataclass(kw_only=True)
class ObjectColumns(ObjectBatch):
    """The objects of a table that convert, in annotation order: an :class:`ObjectBatch` (pixels; ``image`` is the
    COCO image id, ``source_ids`` the annotation id) and what only a conversion needs.

    Attributes:
        rows: (M,) table row of each object.
        skips: annotations left out (crowd, invalid), in table order.
        skip_rows: (len(skips),) table row of each skip.
        lossy: (L,) objects whose parts overlap, so that their joined outline loses more than 5%
            of their mask; lossy_iou: (L,) that mask IoU.
    """

    rows: np.ndarray
    skips: list
    skip_rows: np.ndarray
    lossy: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lossy_iou: np.ndarray = field(default_factory=lambda: np.zeros(0))


def lookup(keys: np.ndarray, mapping: dict[int, int], default: int) -> np.ndarray:
    """(N,) ``mapping[key]`` of each of the (N,) int ``keys``, ``default`` for keys it lacks (sorted search, no Python loop)."""
    if not mapping:
        return np.full(len(keys), default, dtype=np.int64)
    known = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[k] for k in known.tolist()], dtype=np.int64)
    at = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
    return np.where(known[at] == keys, values[at], default)



def table_objects(table: AnnotationTable, images: dict, class_of_category: dict[int, int], keypoints_of_category: dict[int, int],
                  num_keypoints: int, include_crowd: bool) -> ObjectColumns:
    """Validate and convert every annotation of ``table`` (what :func:`annotation_object` does one by one, in bulk).

    Annotations of categories missing from ``class_of_category`` are ignored; those naming an
    image not in ``images`` are skipped as ``unknown_image``; crowd ones as ``crowd`` unless
    ``include_crowd``; invalid ones with the reason and message of :func:`annotation_object`.
    """
    rows = _triage(table, images, class_of_category, keypoints_of_category, include_crowd)
    reason, message = rows.reason, rows.message
    n = len(table)
    # polygon parts of the fast rows, then boxes (from the bbox, else from the polygon after joining, below)
    part_row = np.repeat(np.arange(n), table.part_counts)
    fast = rows.candidate & ~rows.is_slow
    part_twice_area, part_low_xy, part_high_xy = check_parts(table, fast, part_row, rows.wh, reason, message)
    fast_ok = fast & (reason == "")
    check_boxes(table, fast_ok, rows.wh, reason, message)
    kpts = _table_keypoints(table, fast_ok, rows, num_keypoints)
    fast_polygons = _fast_polygons(table, fast_ok, part_row, part_twice_area)
    lossy = fast_polygons.lossy  # row -> mask IoU of its joined outline, when parts overlap and it loses > 5%
    slow = _slow_objects(table, rows, images, lossy)

    # assemble in annotation order
    kept = np.flatnonzero(fast_ok | (rows.candidate & rows.is_slow & (reason == "")))
    kept_position = np.full(n, -1, dtype=np.int64)
    kept_position[kept] = np.arange(len(kept))
    offsets, polygon_xy = _polygon_column(n, kept, kept_position, fast_polygons, slow)
    del fast_polygons  # its bulk rings are copied: free them before the drops below copy again
    keypoints = _keypoint_column(kept, kept_position, kpts, slow, num_keypoints)
    xyxy, low_xy, high_xy = _box_column(table, kept, kept_position, slow, polygon_xy, offsets, part_low_xy, part_high_xy,
                                        rows.is_slow)
    suspect = _suspects(n, kept, slow, kpts.far_rows, rows.wh[kept], xyxy, offsets, low_xy, high_xy)
    kept, offsets, polygon_xy, xyxy, keypoints = _drop_misplaced(
        np.flatnonzero(suspect & (kept_position >= 0)), kept_position, kept, offsets, polygon_xy, xyxy, keypoints, table,
        images, reason, message, kpts.gathered, kpts.rank)

    skips, skip_rows = _skips(table, reason, message)
    position = np.full(n, -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))
    lossy_rows = np.array(sorted(row for row in lossy if position[row] >= 0), dtype=np.int64)
    return ObjectColumns(image=table.image_ids[kept], class_id=rows.class_id[kept], xyxy=xyxy, polygon_offsets=offsets,
                         polygon_xy=polygon_xy, keypoints=keypoints, source_ids=table.ids[kept], rows=kept, skips=skips,
                         skip_rows=skip_rows, lossy=position[lossy_rows], lossy_iou=np.array([lossy[row] for row in lossy_rows.tolist()]))


class _Rows(NamedTuple):
    """Per table row (N rows): what :func:`_triage` decides before any value is checked."""

    wh: np.ndarray  # (N, 2) width, height of the row's image (1, 1 for unknown images)
    class_id: np.ndarray  # (N,) int64 class of the row's category, -1 for categories not converted
    kpt_count: np.ndarray  # (N,) int64 keypoints its category declares
    candidate: np.ndarray  # (N,) bool: converted category, known image, not a left-out crowd
    is_slow: np.ndarray  # (N,) bool: kept as an object by the table (odd JSON), checked one by one
    reason: np.ndarray  # (N,) object: skip reason, "" for rows still kept; the checks fill it
    message: dict  # row -> skip message; the checks fill it


def _triage(table: AnnotationTable, images: dict, class_of_category: dict[int, int], keypoints_of_category: dict[int, int],
            include_crowd: bool) -> _Rows:
    """Each row's image size, class and keypoint count; rows of unknown images and crowds named as skips."""
    n = len(table)
    image_list = np.array(sorted(images), dtype=np.int64)
    image_at = np.clip(np.searchsorted(image_list, table.image_ids), 0, max(len(image_list) - 1, 0))
    sizes_wh = np.array([(images[i].width, images[i].height) for i in image_list.tolist()], dtype=np.float64).reshape(-1, 2)
    wh_of_row = sizes_wh[image_at] if len(image_list) else np.ones((n, 2))  # rows of unknown images are skipped anyway
    class_id = lookup(table.category_ids, class_of_category, -1)
    kpt_count = lookup(table.category_ids, keypoints_of_category, 0)
    known_image = np.isin(table.image_ids, image_list)
    wanted = class_id >= 0
    reason = np.full(n, "", dtype=object)
    reason[wanted & ~known_image] = "unknown_image"
    crowd = wanted & known_image & table.iscrowd & (not include_crowd)
    reason[crowd] = "crowd"
    is_slow = np.zeros(n, dtype=bool)
    is_slow[list(table.slow)] = True
    return _Rows(wh_of_row, class_id, kpt_count, wanted & known_image & ~crowd, is_slow, reason, {})


class _Keypoints(NamedTuple):
    """The keypoints of the R fast rows that carry some (``rows``), gathered into one array."""

    rows: np.ndarray  # (R,) table rows, ascending
    gathered: np.ndarray  # (R, K, 3) x, y, COCO visibility; points with v=0 are 0, 0, 0; K the most any category has
    rank: np.ndarray  # (N,) int64 index into ``rows`` of each table row, -1 for rows without keypoints
    far_rows: np.ndarray  # table rows still kept whose keypoints may lie far outside their image


def _table_keypoints(table: AnnotationTable, fast_ok: np.ndarray, rows: _Rows, num_keypoints: int) -> _Keypoints:
    """Gather the keypoints of the ``fast_ok`` rows; rows of the wrong count, non-finite values or a visibility other
    than 0, 1, 2 are named as skips and leave ``fast_ok`` (in place)."""
    reason, message, kpt_count = rows.reason, rows.message, rows.kpt_count
    kpt_first = (np.cumsum(table.keypoint_counts) - table.keypoint_counts).astype(np.int64)
    has_kpts = (table.keypoint_counts > 0) & fast_ok
    wrong_count = has_kpts & (table.keypoint_counts != 3 * kpt_count)
    reason[wrong_count] = "bad_keypoints"
    for row in np.flatnonzero(wrong_count).tolist():
        message[row] = f"keypoints must hold 3 x {kpt_count[row]} values for its category, found {table.keypoint_counts[row]}"
    has_kpts &= ~wrong_count
    kpt_rows = np.flatnonzero(has_kpts)
    k_max = max(num_keypoints, int(kpt_count.max(initial=0)))
    gathered = np.zeros((len(kpt_rows), k_max, 3))
    for k in np.unique(kpt_count[kpt_rows]).tolist():
        pick = np.flatnonzero(kpt_count[kpt_rows] == k)
        index = kpt_first[kpt_rows[pick]][:, None] + np.arange(3 * k)
        gathered[pick, :k] = table.keypoint_values[index].reshape(-1, k, 3)
    kpt_finite = np.isfinite(gathered).all(axis=(1, 2))
    kpt_vis_ok = np.isin(gathered[..., 2], (0.0, 1.0, 2.0)).all(axis=1)
    for j in np.flatnonzero(~kpt_finite | ~kpt_vis_ok).tolist():
        if not kpt_finite[j]:
            reason[kpt_rows[j]], message[kpt_rows[j]] = "not_finite", "keypoints hold NaN or inf"
        else:
            reason[kpt_rows[j]], message[kpt_rows[j]] = "bad_keypoints", "keypoint visibility must be 0, 1 or 2"
    fast_ok &= reason == ""
    gathered[gathered[..., 2] == 0] = 0.0  # COCO: v=0 means not labeled, whatever x, y say
    # keypoints that may lie far outside their image, judged (and named) with the polygon and box later: a
    # row's extremes over x, y and v at once (one contiguous pass) against its image's shorter side
    shorter = rows.wh[kpt_rows].min(axis=1)
    flat = gathered.reshape(len(kpt_rows), 3 * k_max)  # unlabeled points are 0, 0, 0: inside any image
    with np.errstate(invalid="ignore"):
        far = (flat.max(axis=1, initial=0.0) > (1 + OUTSIDE_SIDES) * shorter) | (flat.min(axis=1, initial=0.0) < -OUTSIDE_SIDES * shorter)
    rank = np.full(len(table), -1, dtype=np.int64)
    rank[kpt_rows] = np.arange(len(kpt_rows))
    return _Keypoints(kpt_rows, gathered, rank, kpt_rows[far & fast_ok[kpt_rows]])


class _FastPolygons(NamedTuple):
    """The joined outlines of the fast rows still kept, pixels."""

    single: np.ndarray  # (N,) bool: rows of one part, their rings in ``ring_xy`` row after row
    ring_xy: np.ndarray  # (Q1, 2)
    ring_offsets: np.ndarray  # (S + 1,) ring boundaries of the S single rows
    two_parts: np.ndarray  # (N,) bool: rows of two parts, joined in ``pair_xy``
    pair_xy: np.ndarray  # (Q2, 2)
    pair_offsets: np.ndarray  # (T + 1,) outline boundaries of the T two-part rows
    joined: dict  # row -> (P, 2) outline of each row of more than two parts
    lossy: dict  # row -> mask IoU of its outline, for the rows whose join loses more than 5% of their mask


def _fast_polygons(table: AnnotationTable, fast_ok: np.ndarray, part_row: np.ndarray, part_twice_area: np.ndarray) -> _FastPolygons:
    """Join the polygon parts of the ``fast_ok`` rows: single parts and two-part objects in bulk, more parts one by one.

    Args:
        part_row: (P,) table row of each part; part_twice_area: (P,) twice each part's signed area.
    """
    single = fast_ok & (table.part_counts == 1)
    single_part = single[part_row]
    sizes = table.part_sizes[single_part] // 2
    # a boolean mask over the values, not an index array: 8x less memory on 10M values
    ring_xy, ring_offsets = join_singles(table.polygon_values[np.repeat(single_part, table.part_sizes)].reshape(-1, 2),
                                         np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), part_twice_area[single_part])
    del single_part
    two_parts = fast_ok & (table.part_counts == 2)
    pair_part = two_parts[part_row]
    pair_points = table.polygon_values[np.repeat(pair_part, table.part_sizes)].reshape(-1, 2)
    pair_part_offsets = np.concatenate([[0], np.cumsum(table.part_sizes[pair_part] // 2)]).astype(np.int64)
    pair_xy, pair_offsets = join_pairs(pair_points, pair_part_offsets, part_twice_area[pair_part])
    lossy: dict[int, float] = {}
    pair_rows = np.flatnonzero(two_parts)
    for i in np.flatnonzero(pairs_overlap(pair_points, pair_part_offsets)).tolist():
        parts = [pair_points[pair_part_offsets[2 * i + k] : pair_part_offsets[2 * i + k + 1]] for k in (0, 1)]
        iou = joined_mask_iou(parts, pair_xy[pair_offsets[i] : pair_offsets[i + 1]])
        if iou < JOIN_LOSS_IOU:
            lossy[int(pair_rows[i])] = iou
    del pair_points
    part_first = (np.cumsum(table.part_sizes) - table.part_sizes).astype(np.int64)
    first_part_of_row = (np.cumsum(table.part_counts) - table.part_counts).astype(np.int64)
    joined: dict[int, np.ndarray] = {}
    for row in np.flatnonzero(fast_ok & (table.part_counts > 2)).tolist():
        first = first_part_of_row[row]
        parts = [table.polygon_values[part_first[p] : part_first[p] + table.part_sizes[p]].reshape(-1, 2)
                 for p in range(first, first + table.part_counts[row])]
        joined[row] = join_polygons(parts)
        iou = join_loss_iou(parts, joined[row])
        if iou is not None:
            lossy[row] = iou
    return _FastPolygons(single, ring_xy, ring_offsets, two_parts, pair_xy, pair_offsets, joined, lossy)


def _slow_objects(table: AnnotationTable, rows: _Rows, images: dict, lossy: dict) -> dict:
    """The rows the table kept as objects, one by one with the per-annotation checks: row -> ((4,) xyxy box,
    (P, 2) polygon, (K, 3) keypoints); refused rows are named as skips, lossy joins added to ``lossy``."""
    from mtdata.formats.coco.read import annotation_join_loss, annotation_object

    slow_results = {}
    for row in np.flatnonzero(rows.candidate & rows.is_slow).tolist():
        ann = table.slow[row]
        try:
            slow_results[row] = annotation_object(ann, images[int(table.image_ids[row])], int(rows.kpt_count[row]))
        except AnnotationError as e:
            rows.reason[row], rows.message[row] = e.reason, e.message
            continue
        iou = annotation_join_loss(ann, slow_results[row][1])
        if iou is not None:
            lossy[row] = iou
    return slow_results


def _polygon_column(n: int, kept: np.ndarray, kept_position: np.ndarray, fast: _FastPolygons, slow: dict) -> tuple[np.ndarray, np.ndarray]:
    """((M + 1,) offsets, (Q, 2) points) of the M ``kept`` rows' outlines, in row order.

    Args:
        kept: (M,) table rows kept, ascending; kept_position: (N,) index of each row in ``kept``, -1 if left out.
    """
    lengths = np.zeros(n, dtype=np.int64)
    lengths[np.flatnonzero(fast.single)] = np.diff(fast.ring_offsets)
    lengths[np.flatnonzero(fast.two_parts)] = np.diff(fast.pair_offsets)
    for row, polygon in fast.joined.items():
        lengths[row] = len(polygon)
    for row, (_, polygon, _) in slow.items():
        lengths[row] = len(polygon)
    offsets = np.concatenate([[0], np.cumsum(lengths[kept])]).astype(np.int64)
    polygon_xy = np.empty((int(offsets[-1]), 2))
    is_single = fast.single[kept]
    if is_single.any():  # the bulk rings land in one vectorized copy
        polygon_xy[np.repeat(is_single, lengths[kept])] = fast.ring_xy
    is_pair = fast.two_parts[kept]
    if is_pair.any():
        polygon_xy[np.repeat(is_pair, lengths[kept])] = fast.pair_xy
    for row, polygon in fast.joined.items():
        j = kept_position[row]
        polygon_xy[offsets[j] : offsets[j + 1]] = polygon
    for row, (_, polygon, _) in slow.items():
        j = kept_position[row]
        polygon_xy[offsets[j] : offsets[j + 1]] = polygon
    return offsets, polygon_xy


def _keypoint_column(kept: np.ndarray, kept_position: np.ndarray, kpts: _Keypoints, slow: dict, num_keypoints: int) -> np.ndarray:
    """(M, num_keypoints, 3) keypoints of the M ``kept`` rows (0, 0, 0 where a row has fewer or none)."""
    keypoints = np.zeros((len(kept), num_keypoints, 3))
    kept_kpt = kpts.rank[kept]
    with_kpt = kept_kpt >= 0
    k_copy = min(num_keypoints, kpts.gathered.shape[1])
    keypoints[with_kpt, :k_copy] = kpts.gathered[kept_kpt[with_kpt], :k_copy]
    for row, (_, _, k) in slow.items():
        keypoints[kept_position[row], : min(len(k), num_keypoints)] = k[:num_keypoints]
    return keypoints


def _box_column(table: AnnotationTable, kept: np.ndarray, kept_position: np.ndarray, slow: dict, polygon_xy: np.ndarray,
                offsets: np.ndarray, part_low_xy: np.ndarray | None, part_high_xy: np.ndarray | None,
                is_slow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((M, 4) xyxy boxes, (M, 2) lowest and (M, 2) highest x, y of each outline) of the M ``kept`` rows.

    A box is the row's bbox (COCO xywh turned xyxy), else the extent of its polygon.
    """
    x, y, w, h = table.bbox_xywh.T
    xyxy = np.column_stack([x[kept], y[kept], x[kept] + w[kept], y[kept] + h[kept]]) if len(kept) else np.zeros((0, 4))
    for row, (box, _, _) in slow.items():
        xyxy[kept_position[row]] = box
    if part_low_xy is not None:  # a polygon's extent is its parts' (joins add no point)
        low_xy, high_xy = row_extents(part_low_xy, part_high_xy, table.part_counts, kept)
    else:
        low_xy, high_xy = run_extents(polygon_xy, offsets)
    around = ~table.has_bbox[kept] & ~is_slow[kept]  # boxes around polygons
    xyxy[around] = np.concatenate([low_xy[around], high_xy[around]], axis=1)
    return xyxy, low_xy, high_xy


def _suspects(n: int, kept: np.ndarray, slow: dict, far_rows: np.ndarray, wh: np.ndarray, xyxy: np.ndarray,
              offsets: np.ndarray, low_xy: np.ndarray, high_xy: np.ndarray) -> np.ndarray:
    """(N,) bool: the rows whose outline, box or keypoints may not be rows of their image, to be judged one by one.

    Args:
        wh: (M, 2) image width, height of each kept row; the rest as :func:`_box_column` returns them.
    """
    suspect = np.zeros(n, dtype=bool)
    has_polygon = offsets[1:] > offsets[:-1]
    suspect[kept[has_polygon]] = extent_suspects(low_xy[has_polygon], high_xy[has_polygon], wh[has_polygon])
    suspect[kept] |= extent_suspects(xyxy[:, :2], xyxy[:, 2:], wh)
    suspect[far_rows] = True
    suspect[list(slow)] = False  # judged already
    return suspect


def _skips(table: AnnotationTable, reason: np.ndarray, message: dict) -> tuple[list, np.ndarray]:
    """(the Skip of each row with a ``reason``, in table order; (S,) their rows)."""
    from mtdata.formats.coco.read import Skip

    skips = []
    skip_rows = np.flatnonzero(reason != "")
    for row in skip_rows.tolist():
        why = reason[row]
        text = message.get(row) or (
            f"image_id {table.slow[row].image_id if row in table.slow else table.image_ids[row]} is not in 'images'"
            if why == "unknown_image"
            else "crowd annotation (use --crowd include to keep it)"
        )
        image_id = table.slow[row].image_id if row in table.slow else int(table.image_ids[row])
        skips.append(Skip(int(table.ids[row]), image_id, why, text))
    return skips, skip_rows


def _drop_misplaced(suspects, kept_position, kept, offsets, polygon_xy, xyxy, keypoints, table, images, reason, message,
                    gathered, kpt_rank):
    """Leave out the suspects whose polygon, box or labeled keypoints cannot be rows of their image.

    Each suspect is judged by the function that judges one annotation alone
    (:func:`mtdata.formats.coco.read.placement_problem`), so both paths leave out and name the same.
    """
    from mtdata.formats.coco.read import placement_problem

    drop = []
    for row in suspects.tolist():
        j = kept_position[row]
        k = gathered[kpt_rank[row]] if kpt_rank[row] >= 0 else np.zeros((0, 3))
        problem = placement_problem(polygon_xy[offsets[j] : offsets[j + 1]], xyxy[j], k, images[int(table.image_ids[row])])
        if problem:
            reason[row], message[row] = problem
            drop.append(j)
    if not drop:
        return kept, offsets, polygon_xy, xyxy, keypoints
    keep = np.ones(len(kept), dtype=bool)
    keep[drop] = False
    lengths = np.diff(offsets)
    return (kept[keep], np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64), polygon_xy[np.repeat(keep, lengths)],
            xyxy[keep], keypoints[keep])
