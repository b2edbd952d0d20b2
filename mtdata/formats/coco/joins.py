"""COCO polygon parts in bulk: rings turned and cleaned, two-part objects joined, overlaps and extents.

What :func:`mtdata.geometry.join_polygons` does object by object, done with whole-array operations over
the parts of many objects at once; tests hold the two together. Points are pixels, x then y.
"""

from __future__ import annotations

import numpy as np

from mtdata.geometry import boxes_overlap, ring_twice_areas, rings_overlap


def orient_rings(points: np.ndarray, offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def dedupe_rings(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def join_singles(points: np.ndarray, offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_polygons` of single parts, all at once: counter-clockwise, repeated points dropped."""
    if len(offsets) < 2:
        return points[:0], offsets
    return dedupe_rings(orient_rings(points, offsets, twice_area)[0], offsets)


PAIR_CHUNK = 1 << 22  # distances computed per group of objects, at most this many at once


def join_pairs(points: np.ndarray, part_offsets: np.ndarray, twice_area: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    points, twice_area = orient_rings(points, part_offsets, twice_area)
    starts, sizes = part_offsets[:-1], np.diff(part_offsets)
    first_larger = np.abs(twice_area[0::2]) >= np.abs(twice_area[1::2])  # argmax keeps the first of equals
    big = np.where(first_larger, 0, 1) + 2 * np.arange(m)  # the chain starts at the larger part
    small = np.where(first_larger, 1, 0) + 2 * np.arange(m)
    n_big, n_small = sizes[big], sizes[small]
    exit_at, entry_at = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    pairs, group_of = np.unique(np.stack([n_big, n_small], axis=1), axis=0, return_inverse=True)
    for g, (nb, ns) in enumerate(pairs.tolist()):  # objects whose parts have the same sizes, together
        members = np.flatnonzero(group_of.reshape(-1) == g)
        for chunk in np.array_split(members, max(1, len(members) * nb * ns // PAIR_CHUNK + 1)):
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
    return dedupe_rings(points[index], out)


def pairs_overlap(points: np.ndarray, part_offsets: np.ndarray) -> np.ndarray:
    """(M,) bool: the two parts of two-part object m share some area (:func:`rings_overlap`, for those whose boxes do).

    Args:
        points: (Q, 2) the parts' points, as given (before :func:`join_pairs` turns them).
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
        for chunk in np.array_split(members, max(1, len(members) * size_a * size_b // PAIR_CHUNK + 1)):
            a = points[starts[2 * chunk][:, None] + np.arange(size_a)]
            b = points[starts[2 * chunk + 1][:, None] + np.arange(size_b)]
            overlap[chunk] = rings_overlap(a, b)
    return overlap


def run_extents(points: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((M, 2) lowest, (M, 2) highest x, y) of M point runs ``points[offsets[i]:offsets[i + 1]]`` (NaN for empty runs)."""
    m = len(offsets) - 1
    low, high = np.full((m, 2), np.nan), np.full((m, 2), np.nan)
    present = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(present):  # empty runs add no points, so the runs between present starts are exactly the present ones
        low[present] = np.minimum.reduceat(points, offsets[present], axis=0)
        high[present] = np.maximum.reduceat(points, offsets[present], axis=0)
    return low, high


def row_extents(part_low: np.ndarray, part_high: np.ndarray, part_counts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
