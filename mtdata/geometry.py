"""Polygon, box and mask helpers on numpy, cv2 and pycocotools.

Polygons are (P, 2) float arrays of (x, y) pixels; boxes are xyxy pixels; masks are
(H, W) uint8 arrays.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def polygon_signed_area(xy: np.ndarray) -> float:
    """Shoelace area of a (P, 2) polygon: positive when counter-clockwise in (x, y) axes (:func:`ring_twice_areas`)."""
    if len(xy) == 0:
        return 0.0
    return float(ring_twice_areas(np.asarray(xy, dtype=np.float64), np.array([0, len(xy)]))[0]) / 2


def polygon_areas(polygons: list[np.ndarray]) -> np.ndarray:
    """(N,) unsigned areas of (P, 2) polygons (shapely, one call); 0 for those under 3 points.

    A ring that touches itself (the bridges of :func:`join_polygons`) counts each of its parts
    whole: GEOS takes the shoelace area of the ring as given, valid or not.
    """
    import shapely  # lazy: 0.1 s to import, and only the trainer and synth measure areas this way

    areas = np.zeros(len(polygons))
    kept = [i for i, p in enumerate(polygons) if len(p) >= 3]
    if kept:
        points = np.concatenate([np.asarray(polygons[i], dtype=np.float64).reshape(-1, 2) for i in kept])
        ring_ids = np.repeat(np.arange(len(kept)), [len(polygons[i]) for i in kept])
        areas[kept] = shapely.area(shapely.polygons(shapely.linearrings(points, indices=ring_ids)))
    return areas


def ring_twice_areas(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(R,) twice the signed area of R rings stored one after another.

    Args:
        points: (Q, 2) points, ring after ring, each ring >= 1 point.
        offsets: (R + 1,) ring boundaries.

    One routine for every caller (joining one object or 100k at once) so that the same
    ring always gets the same value, to the last bit: which part is larger decides a join.
    """
    starts, last = offsets[:-1], offsets[1:] - 1
    x, y = points[:, 0], points[:, 1]
    cross = np.empty(len(points))
    np.subtract(x[:-1] * y[1:], y[:-1] * x[1:], out=cross[:-1])
    cross[last] = x[last] * y[starts] - y[last] * x[starts]  # each ring closes on its own first point
    return np.add.reduceat(cross, starts)


def polygon_xyxy(xy: np.ndarray) -> np.ndarray:
    """(4,) box (x1, y1, x2, y2) around a (P, 2) polygon."""
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def boxes_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(N, M) IoU between (N, 4) and (M, 4) xyxy boxes."""
    return _iou(a_xyxy[:, None, :], b_xyxy[None, :, :])


def paired_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(E,) IoU of row i of (E, 4) xyxy ``a_xyxy`` with row i of ``b_xyxy``: the diagonal of :func:`boxes_iou`."""
    return _iou(a_xyxy, b_xyxy)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable (..., 4) xyxy boxes; 0 where both boxes have no area."""
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _drop_repeated_points(xy: np.ndarray) -> np.ndarray:
    keep = np.ones(len(xy), dtype=bool)
    keep[1:] = (xy[1:, 0] != xy[:-1, 0]) | (xy[1:, 1] != xy[:-1, 1])
    xy = xy[keep]
    if len(xy) > 1 and xy[0, 0] == xy[-1, 0] and xy[0, 1] == xy[-1, 1]:
        xy = xy[:-1]
    return xy


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances; numpy alone, so that importing this module stays cheap (no scipy)."""
    diff = a[:, None, :] - b[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def join_polygons(parts: list[np.ndarray]) -> np.ndarray:
    """Join the parts of a multi-part object into one (P, 2) polygon without losing area.

    Parts are chained nearest-first and linked by zero-width bridges between their closest
    points, each bridge walked out and back, so the shoelace area of the result is the sum
    of the parts' areas. Every part is first turned counter-clockwise: mixing orientations
    would make areas cancel (ultralytics' ``merge_multi_segment`` keeps them as given).
    """
    parts = [p for p in parts if len(p) >= 3]
    if not parts:
        return np.zeros((0, 2))
    areas = ring_twice_areas(np.concatenate(parts), np.cumsum([0] + [len(p) for p in parts])).tolist()
    parts = [p[::-1] if area < 0 else p for p, area in zip(parts, areas)]
    if len(parts) == 1:
        return _drop_repeated_points(parts[0])
    # Chain: start at the largest part, then always hop to the nearest remaining part.
    order = [int(np.argmax(np.abs(areas)))]
    remaining = [i for i in range(len(parts)) if i != order[0]]
    links: list[tuple[int, int]] = []  # (exit index in previous part, entry index in next)
    while remaining:
        dists = [_squared_distances(parts[order[-1]], parts[j]) for j in remaining]
        best = int(np.argmin([d.min() for d in dists]))
        exit_i, entry_i = np.unravel_index(int(np.argmin(dists[best])), dists[best].shape)
        links.append((int(exit_i), int(entry_i)))
        order.append(remaining.pop(best))
    # Walk the chain as indices into the stacked parts, then gather once (no per-piece copies).
    sizes = [len(parts[i]) for i in order]
    bases = np.cumsum([0] + sizes[:-1]).tolist()
    head: list[np.ndarray] = []
    tail: list[np.ndarray] = []
    entry = links[0][0]  # the first part is entered where it leaves for the second
    for position, n in enumerate(sizes):
        base = bases[position]
        if position == len(order) - 1:
            head.append(base + (entry + np.arange(n + 1)) % n)  # the whole ring, closed
            break
        exit_i, next_entry = links[position]
        k = (exit_i - entry) % n
        head.append(base + (entry + np.arange(k + 1)) % n)  # out to the exit point
        tail.append(base + (entry + np.arange(k, n + 1)) % n)  # back from it, round to the entry
        entry = next_entry
    stacked = np.concatenate([parts[i] for i in order])
    return _drop_repeated_points(stacked[np.concatenate(head + tail[::-1])])


def mask_to_polygon(mask: np.ndarray) -> np.ndarray:
    """Trace a (H, W) binary mask into one (P, 2) pixel polygon ((0, 2) when empty).

    Outer contours only (YOLO rows cannot hold holes); several blobs are joined with
    :func:`join_polygons`. Contour points are the centres of the boundary pixels (no shift
    is applied), so the outline lies up to half a pixel inside the mask's edge.
    """
    import cv2  # lazy: 0.14 s to import, and only RLE masks are traced

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 3]
    return join_polygons(parts)


def traced_mask_iou(mask: np.ndarray) -> float:
    """Mask IoU between a (H, W) binary mask and what :func:`mask_to_polygon` keeps of it: its outer contours,
    filled. Under 1 when the mask has holes (a row cannot hold them); pixel-exact, so the half-pixel inset of the
    traced outline does not count as a loss. 1.0 for an empty mask."""
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)  # pycocotools decodes in Fortran order; cv2 draws in C order
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    area = int(np.count_nonzero(filled | mask))
    return float(np.count_nonzero(mask)) / area if area else 1.0


def decode_rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes or uncompressed counts list) to (H, W) uint8."""
    counts = segmentation["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return mask_utils.decode(rle)


def polygon_to_mask(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterize a (P, 2) pixel polygon the way pycocotools does, to (H, W) uint8."""
    rle = mask_utils.frPyObjects([xy.reshape(-1).tolist()], height, width)
    return mask_utils.decode(mask_utils.merge(rle))


def polygon_iou(a_xy: np.ndarray, b_xy: np.ndarray, height: int, width: int) -> float:
    """Mask IoU of two pixel polygons rasterized by pycocotools."""
    a = mask_utils.frPyObjects([a_xy.reshape(-1).tolist()], height, width)
    b = mask_utils.frPyObjects([b_xy.reshape(-1).tolist()], height, width)
    return float(mask_utils.iou([mask_utils.merge(a)], [mask_utils.merge(b)], [0])[0, 0])


# --- parts of one object that overlap --------------------------------------------------------

JOIN_LOSS_IOU = 0.95  # a joined outline under this mask IoU with its parts loses more than 5% of the mask


def boxes_overlap(low_a: np.ndarray, high_a: np.ndarray, low_b: np.ndarray, high_b: np.ndarray) -> np.ndarray:
    """(N,) bool: the boxes (N, 2) low and high corners of a and b share some area (touching is not sharing)."""
    return ((np.minimum(high_a, high_b) - np.maximum(low_a, low_b)) > 0).all(axis=-1)


def rings_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(C,) bool: ring ``a[c]`` and ring ``b[c]`` share some area.

    True when an edge of one crosses an edge of the other, or the first point of one lies
    inside the other (one holds the other whole). Edges that touch or run along each other
    do not count. Every edge of one against every edge of the other: O(C x NA x NB).

    Args:
        a: (C, NA, 2), b: (C, NB, 2) rings of x, y points (the closing edge implied).
    """

    def straddles(ring: np.ndarray, other: np.ndarray) -> np.ndarray:
        """(C, N, M): edge j of ``other`` has its ends on strictly opposite sides of the line of edge i of ``ring``."""
        edge = np.roll(ring, -1, axis=1) - ring
        ends = np.concatenate([other, other[:, :1]], axis=1)
        side = (edge[..., 0, None] * ends[:, None, :, 1] - edge[..., 1, None] * ends[:, None, :, 0]
                - (edge[..., 0] * ring[..., 1] - edge[..., 1] * ring[..., 0])[..., None])
        return side[..., :-1] * side[..., 1:] < 0

    overlap = np.zeros(len(a), dtype=bool)
    near = np.flatnonzero(~_apart(a, b))  # O(N) per pair: most parts of one object lie apart
    if not len(near):
        return overlap
    a, b = a[near], b[near]
    crossing = np.zeros(len(a), dtype=bool)
    first = straddles(a, b)
    maybe = np.flatnonzero(first.any(axis=(1, 2)))  # none straddle: no crossing (parts apart on a convex outline, usually)
    if len(maybe):
        crossing[maybe] = (first[maybe] & straddles(b[maybe], a[maybe]).transpose(0, 2, 1)).any(axis=(1, 2))
    overlap[near] = crossing | _inside(a[:, 0], b) | _inside(b[:, 0], a)
    return overlap


def _apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(C,) bool: a line along the longest edge of ring a[c] (or of b[c]) has the two rings on its two sides.

    A separating line proves the rings share no area; the longest edge is where an object cut
    in two by an occluder usually has its cut.
    """
    apart = np.zeros(len(a), dtype=bool)
    rows = np.arange(len(a))
    xy = {id(r): (np.ascontiguousarray(r[..., 0]), np.ascontiguousarray(r[..., 1])) for r in (a, b)}
    for ring, other in ((a, b), (b, a)):
        (x, y), (ox, oy) = xy[id(ring)], xy[id(other)]
        ex, ey = np.roll(x, -1, axis=1) - x, np.roll(y, -1, axis=1) - y
        longest = np.argmax(ex * ex + ey * ey, axis=1)
        nx, ny = -ey[rows, longest][:, None], ex[rows, longest][:, None]  # the normal of that edge
        mine, theirs = x * nx + y * ny, ox * nx + oy * ny
        apart |= (mine.max(axis=1) < theirs.min(axis=1)) | (theirs.max(axis=1) < mine.min(axis=1))
    return apart


def _inside(points: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """(C,) bool: point (C, 2) ``points[c]`` lies inside ring (C, N, 2) ``rings[c]`` (even-odd rule)."""
    start, end = rings, np.roll(rings, -1, axis=1)
    px, py = points[:, None, 0], points[:, None, 1]
    spans = (start[..., 1] > py) != (end[..., 1] > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = start[..., 0] + (py - start[..., 1]) * (end[..., 0] - start[..., 0]) / (end[..., 1] - start[..., 1])
    return (spans & (px < x_at)).sum(axis=1) % 2 == 1


def parts_overlap(parts: list[np.ndarray]) -> bool:
    """Whether two of an object's (P, 2) parts share some area (:func:`rings_overlap` of each pair whose boxes do)."""
    parts = [p for p in parts if len(p) >= 3]
    low = [p.min(axis=0) for p in parts]
    high = [p.max(axis=0) for p in parts]
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            if boxes_overlap(low[i], high[i], low[j], high[j]) and rings_overlap(parts[i][None], parts[j][None])[0]:
                return True
    return False


def joined_mask_iou(parts: list[np.ndarray], joined: np.ndarray) -> float:
    """Mask IoU of an object's parts (their union, as COCO rasterizes them) and their joined (P, 2) outline.

    Rasterized by pycocotools on the box around the parts: where parts overlap, the joined
    outline goes round that area twice and its rasterization leaves it out.
    """
    points = np.concatenate(parts)
    low = np.floor(points.min(axis=0))
    w, h = (np.ceil(points.max(axis=0) - low) + 1).astype(int).tolist()
    source = mask_utils.merge(mask_utils.frPyObjects([(p - low).reshape(-1).tolist() for p in parts], h, w))
    outline = mask_utils.frPyObjects([(joined - low).reshape(-1).tolist()], h, w)[0]
    return float(mask_utils.iou([outline], [source], [0])[0, 0])


def join_loss_iou(parts: list[np.ndarray], joined: np.ndarray) -> float | None:
    """The mask IoU of a joined outline when its parts overlap and it falls under JOIN_LOSS_IOU; else None."""
    parts = [p for p in parts if len(p) >= 3]
    if len(parts) < 2 or not parts_overlap(parts):
        return None
    iou = joined_mask_iou(parts, joined)
    return iou if iou < JOIN_LOSS_IOU else None
