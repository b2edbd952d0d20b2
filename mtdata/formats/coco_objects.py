"""COCO annotations in bulk: an :class:`AnnotationTable` -> the objects a conversion writes.

What :func:`mtdata.formats.coco.image_labels` does image by image (validate each annotation,
join multi-part polygons, pad keypoints), done with whole-array operations over all the
annotations of a file. Annotations the table keeps as objects (odd JSON) go through
:func:`mtdata.formats.coco.annotation_object` one by one, so every check and message is the
same; tests hold the two paths together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtdata.errors import AnnotationError
from mtdata.formats.coco_columns import AnnotationTable
from mtdata.geometry import join_polygons, ring_twice_areas


@dataclass
class ObjectColumns:
    """The objects of a table that convert, in annotation order, pixels.

    Attributes:
        rows: (M,) table row of each object.
        image_ids, class_id: (M,) int64.
        xyxy: (M, 4) boxes.
        polygon_offsets: (M + 1,) points of object i are ``polygon_xy[offsets[i]:offsets[i + 1]]``.
        polygon_xy: (Q, 2) points.
        keypoints: (M, K, 3) x, y, COCO visibility; absent points are 0, 0, 0.
        skips: annotations left out (crowd, invalid), in table order.
        skip_rows: (len(skips),) table row of each skip.
    """

    rows: np.ndarray
    image_ids: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    polygon_offsets: np.ndarray
    polygon_xy: np.ndarray
    keypoints: np.ndarray
    skips: list
    skip_rows: np.ndarray


def lookup(keys: np.ndarray, mapping: dict[int, int], default: int) -> np.ndarray:
    """(N,) ``mapping[key]`` of each of the (N,) int ``keys``, ``default`` for keys it lacks (sorted search, no Python loop)."""
    if not mapping:
        return np.full(len(keys), default, dtype=np.int64)
    known = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[k] for k in known.tolist()], dtype=np.int64)
    at = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
    return np.where(known[at] == keys, values[at], default)


def _orient(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn every ring counter-clockwise, as :func:`join_polygons` does; also return twice each signed area.

    Args:
        points: (Q, 2) points of R rings of >= 3 points each, ring after ring.
        offsets: (R + 1,) ring boundaries.
    """
    starts, last = offsets[:-1], offsets[1:] - 1
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


def _rings(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_polygons` of single parts, all at once: counter-clockwise, repeated points dropped."""
    if len(offsets) < 2:
        return points[:0], offsets
    return _dedupe(_orient(points, offsets)[0], offsets)


_PAIR_CHUNK = 1 << 22  # distances computed per group of objects, at most this many at once


def _join_pairs(points: np.ndarray, part_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_polygons` of M two-part objects at once (the usual multi-part object).

    Args:
        points: (Q, 2) the parts' points, object after object, each object's two parts in order.
        part_offsets: (2M + 1,) part boundaries.

    Returns:
        ((Q', 2) joined points, (M + 1,) object boundaries).
    """
    m = (len(part_offsets) - 1) // 2
    if m == 0:
        return points[:0], np.zeros(1, dtype=np.int64)
    points, twice_area = _orient(points, part_offsets)
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
    """Validate and convert every annotation of ``table`` (what :func:`image_labels` does per image, in bulk).

    Annotations of categories missing from ``class_of_category`` are ignored; those naming an
    image not in ``images`` are skipped as ``unknown_image``; crowd ones as ``crowd`` unless
    ``include_crowd``; invalid ones with the reason and message of :func:`annotation_object`.
    """
    from mtdata.formats.coco import Skip, annotation_object

    n = len(table)
    class_id = lookup(table.category_ids, class_of_category, -1)
    kpt_count = lookup(table.category_ids, keypoints_of_category, 0)
    image_list = np.array(sorted(images), dtype=np.int64)
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

    # polygon parts of the fast rows
    part_row = np.repeat(np.arange(n), table.part_counts)
    part_first = (np.cumsum(table.part_sizes) - table.part_sizes).astype(np.int64)
    finite_values = np.isfinite(table.polygon_values)
    part_finite = np.logical_and.reduceat(finite_values, part_first) if len(part_first) else np.zeros(0, bool)
    part_count_ok = (table.part_sizes % 2 == 0) & (table.part_sizes >= 6)
    part_bad = (~part_finite | ~part_count_ok) & candidate[part_row]
    bad_rows, first_bad = np.unique(part_row[part_bad], return_index=True)
    for row, part in zip(bad_rows.tolist(), np.flatnonzero(part_bad)[first_bad].tolist()):
        if not part_finite[part]:
            reason[row], message[row] = "not_finite", "polygon holds NaN or inf"
        else:
            reason[row] = "bad_polygon"
            message[row] = f"polygon needs an even count of >= 6 values, found {table.part_sizes[part]}"

    # boxes: from the bbox, else from the polygon (after joining, below)
    fast_ok = candidate & ~is_slow & (reason == "")
    x, y, w, h = table.bbox_xywh.T
    with np.errstate(invalid="ignore"):
        box_bad = table.has_bbox & ~np.isfinite(table.bbox_xywh).all(axis=1) & fast_ok
        reason[box_bad] = "not_finite"
        for row in np.flatnonzero(box_bad).tolist():
            message[row] = "bbox holds NaN or inf"
        fast_ok &= ~box_bad
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

    # polygons of the fast rows: single parts and two-part objects in bulk, more parts one by one
    part_values_of = lambda part: table.polygon_values[part_first[part] : part_first[part] + table.part_sizes[part]]
    single = fast_ok & (table.part_counts == 1)
    single_part = single[part_row]
    sizes = table.part_sizes[single_part] // 2
    # a boolean mask over the values, not an index array: 8x less memory on 10M values
    ring_xy, ring_offsets = _rings(table.polygon_values[np.repeat(single_part, table.part_sizes)].reshape(-1, 2),
                                   np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    del single_part
    polygons: dict[int, np.ndarray] = {}
    first_part_of_row = (np.cumsum(table.part_counts) - table.part_counts).astype(np.int64)
    two_parts = fast_ok & (table.part_counts == 2)
    pair_part = two_parts[part_row]
    pair_xy, pair_offsets = _join_pairs(
        table.polygon_values[np.repeat(pair_part, table.part_sizes)].reshape(-1, 2),
        np.concatenate([[0], np.cumsum(table.part_sizes[pair_part] // 2)]).astype(np.int64),
    )
    for row in np.flatnonzero(fast_ok & (table.part_counts > 2)).tolist():
        first = first_part_of_row[row]
        polygons[row] = join_polygons([part_values_of(p).reshape(-1, 2) for p in range(first, first + table.part_counts[row])])

    # slow rows: one by one, with the per-annotation checks
    slow_results = {}
    for row in np.flatnonzero(candidate & is_slow).tolist():
        ann = table.slow[row]
        try:
            slow_results[row] = annotation_object(ann, images[int(table.image_ids[row])], int(kpt_count[row]))
        except AnnotationError as e:
            reason[row], message[row] = e.reason, e.message

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
    xyxy = np.column_stack([x, y, x + w, y + h])[kept] if m else np.zeros((0, 4))
    for row, (box, polygon, k) in slow_results.items():
        j = kept_position[row]
        polygon_xy[offsets[j] : offsets[j + 1]] = polygon
        xyxy[j] = box
        keypoints[j, : min(len(k), num_keypoints)] = k[:num_keypoints]
    for j in np.flatnonzero(~table.has_bbox[kept] & ~is_slow[kept]).tolist():  # boxes around polygons
        points = polygon_xy[offsets[j] : offsets[j + 1]]
        xyxy[j] = np.concatenate([points.min(axis=0), points.max(axis=0)])

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
    return ObjectColumns(kept, table.image_ids[kept], class_id[kept], xyxy, offsets, polygon_xy, keypoints, skips, skip_rows)
