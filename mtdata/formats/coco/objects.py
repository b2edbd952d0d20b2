"""COCO annotations in bulk: an :class:`AnnotationTable` -> the objects a conversion writes.

What :func:`mtdata.formats.coco.read.annotation_object` does annotation by annotation (validate
it, join multi-part polygons, pad keypoints), done with whole-array operations over all the
annotations of a file. Annotations the table keeps as objects (odd JSON) go through
:func:`mtdata.formats.coco.read.annotation_object` one by one, so every check and message is the
same; tests hold the two paths together (with the per-image oracle of ``tests/mtdata/oracles.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtdata.errors import AnnotationError
from mtdata.formats.coco.checks import OUTSIDE_CAP, OUTSIDE_SIDES, extent_suspects, far_message
from mtdata.formats.coco.columns import AnnotationTable
from mtdata.geometry import (
    JOIN_LOSS_IOU,
    boxes_overlap,
    join_loss_iou,
    join_polygons,
    joined_mask_iou,
    ring_twice_areas,
    rings_overlap,
)
from mtdata.limits import ZERO_AREA
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


def _orient(points: np.ndarray, offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Turn every ring counter-clockwise, as :func:`join_polygons` does; also return twice each signed area.

    Args:
        points: (Q, 2) points of R rings of >= 3 points each, ring after ring.
        offsets: (R + 1,) ring boundaries.
        twice_area: (R,) the rings' :func:`ring_twice_areas` when the caller has them.
    """
    starts, last = offsets[:-1], offsets[1:] - 1
    if twice_area is None:
        twice_area = ring_twice_areas(points, offsets)
    reverse = twice_area < 0
    if reverse.any():
        ring = np.repeat(np.arange(len(starts)), last + 1 - starts)
        index = np.arange(len(points))
        flip = reverse[ring]
        index[flip] = (starts + last)[ring[flip]] - index[flip]
        points = points[index]
    return points, twice_area


def _dedupe(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated consecutive points, and a last point equal to the first, ring by ring."""
    starts, last = offsets[:-1], offsets[1:] - 1
    x, y = points[:, 0], points[:, 1]
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    keep[starts] = True
    closing = (x[last] == x[starts]) & (y[last] == y[starts]) & (last > starts)
    simple = closing & keep[last]  # the ring's last point is kept: drop it
    keep[last[simple]] = False
    for r in np.flatnonzero(closing & ~simple).tolist():  # rare: the closing point itself repeated
        kept = np.flatnonzero(keep[starts[r] : last[r] + 1])
        if len(kept) > 1:
            keep[starts[r] + kept[-1]] = False
    counts = np.add.reduceat(keep, starts)
    return points[keep], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _rings(points: np.ndarray, offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_polygons` of single parts, all at once: counter-clockwise, repeated points dropped."""
    if len(offsets) < 2:
        return points[:0], offsets
    return _dedupe(_orient(points, offsets, twice_area)[0], offsets)


_PAIR_CHUNK = 1 << 22  # distances computed per group of objects, at most this many at once


def _join_pairs(points: np.ndarray, part_offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_polygons` of M two-part objects at once (the usual multi-part object).

    Args:
        points: (Q, 2) the parts' points, object after object, each object's two parts in order.
        part_offsets: (2M + 1,) part boundaries.
        twice_area: (2M,) the parts' :func:`ring_twice_areas` when the caller has them.

    Returns:
        ((Q', 2) joined points, (M + 1,) object boundaries).
    """
    m = (len(part_offsets) - 1) // 2
    if m == 0:
        return points[:0], np.zeros(1, dtype=np.int64)
    points, twice_area = _orient(points, part_offsets, twice_area)
    starts, sizes = part_offsets[:-1], np.diff(part_offsets)
    first_larger = np.abs(twice_area[0::2]) >= np.abs(twice_area[1::2])  # argmax keeps the first of equals
    big = np.where(first_larger, 0, 1) + 2 * np.arange(m)  # the chain starts at the larger part
    small = np.where(first_larger, 1, 0) + 2 * np.arange(m)
    n_big, n_small = sizes[big], sizes[small]
    exit_at, entry_at = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    pairs, group_of = np.unique(np.stack([n_big, n_small], axis=1), axis=0, return_inverse=True)
    for g, (nb, ns) in enumerate(pairs.tolist()):  # objects whose parts have the same sizes, together
        members = np.flatnonzero(group_of.reshape(-1) == g)
        for chunk in np.array_split(members, max(1, len(members) * nb * ns // _PAIR_CHUNK + 1)):
            a = points[starts[big[chunk]][:, None] + np.arange(nb)]  # (c, nb, 2)
            b = points[starts[small[chunk]][:, None] + np.arange(ns)]  # (c, ns, 2)
            diff = a[:, :, None, :] - b[:, None, :, :]
            squared = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]
            nearest = squared.reshape(len(chunk), -1).argmin(axis=1)  # first of equals, as np.argmin
            exit_at[chunk], entry_at[chunk] = np.divmod(nearest, ns)
    # out to the nearest point of the small part, round it, back, and round the big part
    lengths = n_big + n_small + 3
    out = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    obj = np.repeat(np.arange(m), lengths)
    step = np.arange(int(out[-1])) - out[obj]  # position within the object's walk
    in_small = (step >= 1) & (step <= n_small[obj] + 1)
    in_back = step > n_small[obj] + 1
    index = starts[big[obj]] + exit_at[obj]  # step 0: the exit point
    j = step - 1
    index = np.where(in_small, starts[small[obj]] + (entry_at[obj] + j) % np.maximum(n_small[obj], 1), index)
    k = step - n_small[obj] - 2
    index = np.where(in_back, starts[big[obj]] + (exit_at[obj] + k) % n_big[obj], index)
    return _dedupe(points[index], out)


def table_objects(table: AnnotationTable, images: dict, class_of_category: dict[int, int], keypoints_of_category: dict[int, int],
                  num_keypoints: int, include_crowd: bool) -> ObjectColumns:
    """Validate and convert every annotation of ``table`` (what :func:`annotation_object` does one by one, in bulk).

    Annotations of categories missing from ``class_of_category`` are ignored; those naming an
    image not in ``images`` are skipped as ``unknown_image``; crowd ones as ``crowd`` unless
    ``include_crowd``; invalid ones with the reason and message of :func:`annotation_object`.
    """
    from mtdata.formats.coco.read import Skip, annotation_join_loss, annotation_object

    n = len(table)
    image_list = np.array(sorted(images), dtype=np.int64)
    image_at = np.clip(np.searchsorted(image_list, table.image_ids), 0, max(len(image_list) - 1, 0))
    sizes_wh = np.array([(images[i].width, images[i].height) for i in image_list.tolist()], dtype=np.float64).reshape(-1, 2)
    wh_of_row = sizes_wh[image_at] if len(image_list) else np.ones((n, 2))  # rows of unknown images are skipped anyway
    class_id = lookup(table.category_ids, class_of_category, -1)
    kpt_count = lookup(table.category_ids, keypoints_of_category, 0)
    known_image = np.isin(table.image_ids, image_list)
    wanted = class_id >= 0
    reason = np.full(n, "", dtype=object)  # skip reason per row, "" for kept
    message = {}
    reason[wanted & ~known_image] = "unknown_image"
    crowd = wanted & known_image & table.iscrowd & (not include_crowd)
    reason[crowd] = "crowd"
    candidate = wanted & known_image & ~crowd
    is_slow = np.zeros(n, dtype=bool)
    is_slow[list(table.slow)] = True

    # polygon parts of the fast rows, then boxes (from the bbox, else from the polygon after joining, below)
    part_row = np.repeat(np.arange(n), table.part_counts)
    part_first = (np.cumsum(table.part_sizes) - table.part_sizes).astype(np.int64)
    part_twice_area, part_low_xy, part_high_xy = _check_parts(table, candidate & ~is_slow, part_row, wh_of_row, reason, message)
    fast_ok = candidate & ~is_slow & (reason == "")
    _check_boxes(table, fast_ok, wh_of_row, reason, message)
    x, y, w, h = table.bbox_xywh.T

    # keypoints
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
    # keypoints that may lie far outside their image, judged (and named) with the polygon and box below: a
    # row's extremes over x, y and v at once (one contiguous pass) against its image's shorter side
    shorter = wh_of_row[kpt_rows].min(axis=1)
    flat = gathered.reshape(len(kpt_rows), 3 * k_max)  # unlabeled points are 0, 0, 0: inside any image
    with np.errstate(invalid="ignore"):
        far = (flat.max(axis=1, initial=0.0) > (1 + OUTSIDE_SIDES) * shorter) | (flat.min(axis=1, initial=0.0) < -OUTSIDE_SIDES * shorter)
    far_rows = kpt_rows[far & fast_ok[kpt_rows]]

    # polygons of the fast rows: single parts and two-part objects in bulk, more parts one by one
    part_values_of = lambda part: table.polygon_values[part_first[part] : part_first[part] + table.part_sizes[part]]
    single = fast_ok & (table.part_counts == 1)
    single_part = single[part_row]
    sizes = table.part_sizes[single_part] // 2
    # a boolean mask over the values, not an index array: 8x less memory on 10M values
    ring_xy, ring_offsets = _rings(table.polygon_values[np.repeat(single_part, table.part_sizes)].reshape(-1, 2),
                                   np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), part_twice_area[single_part])
    del single_part
    polygons: dict[int, np.ndarray] = {}
    first_part_of_row = (np.cumsum(table.part_counts) - table.part_counts).astype(np.int64)
    two_parts = fast_ok & (table.part_counts == 2)
    pair_part = two_parts[part_row]
    pair_points = table.polygon_values[np.repeat(pair_part, table.part_sizes)].reshape(-1, 2)
    pair_part_offsets = np.concatenate([[0], np.cumsum(table.part_sizes[pair_part] // 2)]).astype(np.int64)
    pair_xy, pair_offsets = _join_pairs(pair_points, pair_part_offsets, part_twice_area[pair_part])
    lossy: dict[int, float] = {}  # row -> mask IoU of its joined outline, when parts overlap and it loses > 5%
    pair_rows = np.flatnonzero(two_parts)
    for i in np.flatnonzero(_pairs_overlap(pair_points, pair_part_offsets)).tolist():
        parts = [pair_points[pair_part_offsets[2 * i + k] : pair_part_offsets[2 * i + k + 1]] for k in (0, 1)]
        iou = joined_mask_iou(parts, pair_xy[pair_offsets[i] : pair_offsets[i + 1]])
        if iou < JOIN_LOSS_IOU:
            lossy[int(pair_rows[i])] = iou
    del pair_points
    for row in np.flatnonzero(fast_ok & (table.part_counts > 2)).tolist():
        first = first_part_of_row[row]
        parts = [part_values_of(p).reshape(-1, 2) for p in range(first, first + table.part_counts[row])]
        polygons[row] = join_polygons(parts)
        iou = join_loss_iou(parts, polygons[row])
        if iou is not None:
            lossy[row] = iou

    # slow rows: one by one, with the per-annotation checks
    slow_results = {}
    for row in np.flatnonzero(candidate & is_slow).tolist():
        ann = table.slow[row]
        try:
            slow_results[row] = annotation_object(ann, images[int(table.image_ids[row])], int(kpt_count[row]))
        except AnnotationError as e:
            reason[row], message[row] = e.reason, e.message
            continue
        iou = annotation_join_loss(ann, slow_results[row][1])
        if iou is not None:
            lossy[row] = iou

    # assemble in annotation order
    kept = np.flatnonzero(fast_ok | (candidate & is_slow & (reason == "")))
    m = len(kept)
    kept_position = np.full(n, -1, dtype=np.int64)
    kept_position[kept] = np.arange(m)
    lengths = np.zeros(n, dtype=np.int64)
    lengths[np.flatnonzero(single)] = np.diff(ring_offsets)
    lengths[np.flatnonzero(two_parts)] = np.diff(pair_offsets)
    for row, polygon in polygons.items():
        lengths[row] = len(polygon)
    for row, (_, polygon, _) in slow_results.items():
        lengths[row] = len(polygon)
    offsets = np.concatenate([[0], np.cumsum(lengths[kept])]).astype(np.int64)
    polygon_xy = np.empty((int(offsets[-1]), 2))
    is_single = single[kept]
    if is_single.any():  # the bulk rings land in one vectorized copy
        polygon_xy[np.repeat(is_single, lengths[kept])] = ring_xy
    is_pair = two_parts[kept]
    if is_pair.any():
        polygon_xy[np.repeat(is_pair, lengths[kept])] = pair_xy
    del ring_xy, pair_xy
    for row, polygon in polygons.items():
        j = kept_position[row]
        polygon_xy[offsets[j] : offsets[j + 1]] = polygon
    keypoints = np.zeros((m, num_keypoints, 3))
    kpt_rank = np.full(n, -1, dtype=np.int64)
    kpt_rank[kpt_rows] = np.arange(len(kpt_rows))
    kept_kpt = kpt_rank[kept]
    with_kpt = kept_kpt >= 0
    k_copy = min(num_keypoints, k_max)
    keypoints[with_kpt, :k_copy] = gathered[kept_kpt[with_kpt], :k_copy]
    xyxy = np.column_stack([x[kept], y[kept], x[kept] + w[kept], y[kept] + h[kept]]) if m else np.zeros((0, 4))
    for row, (box, polygon, k) in slow_results.items():
        j = kept_position[row]
        polygon_xy[offsets[j] : offsets[j + 1]] = polygon
        xyxy[j] = box
        keypoints[j, : min(len(k), num_keypoints)] = k[:num_keypoints]
    if part_low_xy is not None:  # a polygon's extent is its parts' (joins add no point)
        low_xy, high_xy = _row_extents(part_low_xy, part_high_xy, table.part_counts, kept)
    else:
        low_xy, high_xy = _extents(polygon_xy, offsets)
    around = ~table.has_bbox[kept] & ~is_slow[kept]  # boxes around polygons
    xyxy[around] = np.concatenate([low_xy[around], high_xy[around]], axis=1)

    suspect = np.zeros(n, dtype=bool)  # objects that may not be rows of their image: judged one by one below
    wh = wh_of_row[kept]
    has_polygon = offsets[1:] > offsets[:-1]
    suspect[kept[has_polygon]] = extent_suspects(low_xy[has_polygon], high_xy[has_polygon], wh[has_polygon])
    suspect[kept] |= extent_suspects(xyxy[:, :2], xyxy[:, 2:], wh)
    suspect[far_rows] = True
    suspect[list(slow_results)] = False  # judged already
    kept, offsets, polygon_xy, xyxy, keypoints = _drop_misplaced(
        np.flatnonzero(suspect & (kept_position >= 0)), kept_position, kept, offsets, polygon_xy, xyxy, keypoints, table,
        images, reason, message, gathered, kpt_rank)

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
    position = np.full(n, -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))
    lossy_rows = np.array(sorted(row for row in lossy if position[row] >= 0), dtype=np.int64)
    return ObjectColumns(image=table.image_ids[kept], class_id=class_id[kept], xyxy=xyxy, polygon_offsets=offsets,
                         polygon_xy=polygon_xy, keypoints=keypoints, source_ids=table.ids[kept], rows=kept, skips=skips,
                         skip_rows=skip_rows, lossy=position[lossy_rows], lossy_iou=np.array([lossy[row] for row in lossy_rows.tolist()]))


def _check_parts(table: AnnotationTable, fast: np.ndarray, part_row: np.ndarray, wh_of_row: np.ndarray, reason: np.ndarray,
                 message: dict) -> np.ndarray:
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
    part_twice_area = _part_twice_areas(table.polygon_values, table.part_sizes, part_finite & part_count_ok & ~part_far)
    with np.errstate(invalid="ignore"):
        row_area = np.bincount(part_row, weights=np.abs(part_twice_area), minlength=len(table)) / 2
        no_area = fast & (reason == "") & (table.part_counts > 0)
        no_area &= row_area <= ZERO_AREA * wh_of_row[:, 0] * wh_of_row[:, 1]
    reason[no_area] = "bad_polygon"
    for row in np.flatnonzero(no_area).tolist():
        message[row] = "polygon encloses no area (its points are collinear or repeated)"
    return part_twice_area, low_xy, high_xy


def _check_boxes(table: AnnotationTable, fast_ok: np.ndarray, wh_of_row: np.ndarray, reason: np.ndarray, message: dict) -> None:
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


def _pairs_overlap(points: np.ndarray, part_offsets: np.ndarray) -> np.ndarray:
    """(M,) bool: the two parts of two-part object m share some area (:func:`rings_overlap`, for those whose boxes do).

    Args:
        points: (Q, 2) the parts' points, as given (before :func:`_join_pairs` turns them).
        part_offsets: (2M + 1,) part boundaries, two parts an object.
    """
    m = (len(part_offsets) - 1) // 2
    overlap = np.zeros(m, dtype=bool)
    if m == 0:
        return overlap
    starts, sizes = part_offsets[:-1], np.diff(part_offsets)
    low, high = np.minimum.reduceat(points, starts, axis=0), np.maximum.reduceat(points, starts, axis=0)
    candidate = np.flatnonzero(boxes_overlap(low[0::2], high[0::2], low[1::2], high[1::2]))
    na, nb = sizes[0::2][candidate], sizes[1::2][candidate]
    pairs, group_of = np.unique(np.stack([na, nb], axis=1), axis=0, return_inverse=True)
    for g, (size_a, size_b) in enumerate(pairs.tolist()):  # objects whose parts have the same sizes, together
        members = candidate[group_of.reshape(-1) == g]
        for chunk in np.array_split(members, max(1, len(members) * size_a * size_b // _PAIR_CHUNK + 1)):
            a = points[starts[2 * chunk][:, None] + np.arange(size_a)]
            b = points[starts[2 * chunk + 1][:, None] + np.arange(size_b)]
            overlap[chunk] = rings_overlap(a, b)
    return overlap


def _extents(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((M, 2) lowest, (M, 2) highest x, y) of M point runs ``points[offsets[i]:offsets[i + 1]]`` (NaN for empty runs)."""
    m = len(offsets) - 1
    low, high = np.full((m, 2), np.nan), np.full((m, 2), np.nan)
    present = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(present):  # empty runs add no points, so the runs between present starts are exactly the present ones
        low[present] = np.minimum.reduceat(points, offsets[present], axis=0)
        high[present] = np.maximum.reduceat(points, offsets[present], axis=0)
    return low, high


def _row_extents(part_low: np.ndarray, part_high: np.ndarray, part_counts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((R, 2) lowest, (R, 2) highest x, y) of the parts of each of the (R,) ascending ``rows`` (NaN for rows without parts)."""
    first_part = (np.cumsum(part_counts) - part_counts).astype(np.int64)
    low, high = np.full((len(rows), 2), np.nan), np.full((len(rows), 2), np.nan)
    present = np.flatnonzero(part_counts[rows] > 0)
    if len(present):
        # one reduceat over [start, end) of each row's parts; the runs between rows (odd entries) are dropped
        bounds = np.empty(2 * len(present), dtype=np.int64)
        bounds[0::2] = first_part[rows[present]]
        bounds[1::2] = bounds[0::2] + part_counts[rows[present]]
        if bounds[-1] == len(part_low):
            bounds = bounds[:-1]  # the last run goes to the end
        low[present] = np.minimum.reduceat(part_low, bounds, axis=0)[0::2]
        high[present] = np.maximum.reduceat(part_high, bounds, axis=0)[0::2]
    return low, high


def _part_twice_areas(values: np.ndarray, part_sizes: np.ndarray, ok: np.ndarray) -> np.ndarray:
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
