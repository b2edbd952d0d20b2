"""One-to-one matching of keypoint boxes to masks by IoU -> a :class:`MatchResult`.

The assignment maximizes the summed box IoU (``scipy.optimize.linear_sum_assignment``, loaded by
:mod:`mtdata._runtime.assignment`); pairs under the IoU threshold are never made. When candidates' box IoUs
are close, the mask that contains more of the pose's visible keypoints wins (``shapely``): each
candidate pair scores ``IoU + keypoint_weight * share of visible keypoints inside the mask``, so
containment can only overturn IoU differences smaller than ``keypoint_weight``.

Ties break deterministically and independently of row order: both sides are put in a canonical
order (by box, then by keypoints or polygon) before solving; the inputs are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtdata._runtime.assignment import linear_sum_assignment
from mtdata.geometry import boxes_iou
from mtdata.records import VISIBILITY_VISIBLE

KEYPOINT_WEIGHT = 0.1  # containment overturns box IoU differences up to this size
KEYPOINT_TOLERANCE = 0.02  # a keypoint this close to a mask (share of the mask box's longer side) is inside


@dataclass(frozen=True)
class MatchResult:
    """The whole accounting of one matching between side A (poses) and side B (masks).

    Attributes:
        pairs: (M, 2) int64 (index in A, index in B), sorted by the index in A.
        iou: (M,) box IoU of each pair.
        unmatched_a: (N - M,) sorted indices in A left without a partner.
        unmatched_b: sorted indices in B left without a partner.
        best_iou_a: (N,) highest box IoU each A object had with any B object (0 when B is empty).
        best_iou_b: best IoU of each B object with any A object.
    """

    pairs: np.ndarray
    iou: np.ndarray
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray
    best_iou_a: np.ndarray
    best_iou_b: np.ndarray

    @property
    def partner_of_b(self) -> np.ndarray:
        """(len B,) index in A matched to each B object, -1 when none."""
        partner = np.full(len(self.best_iou_b), -1, dtype=np.int64)
        partner[self.pairs[:, 1]] = self.pairs[:, 0]
        return partner


def keypoint_containment(keypoints: np.ndarray, polygons: list[np.ndarray], pairs: np.ndarray) -> np.ndarray:
    """Share of each pose's visible keypoints that lie in (or on the edge of) a mask.

    Args:
        keypoints: (N, K, 3) pose keypoints (x, y, COCO visibility).
        polygons: B polygons, each (P, 2) (x, y) in the same coordinates.
        pairs: (C, 2) (pose index, polygon index) pairs to score.

    Returns:
        (C,) float in [0, 1]; 0 for poses without visible keypoints.
    """
    import shapely  # lazy: only needed when candidates compete

    share = np.zeros(len(pairs))
    shapes: dict[int, tuple] = {}
    for c, (i, j) in enumerate(pairs):
        kpts = keypoints[i]
        # Visible points only: hidden ones may sit behind another object's mask. (0, 0) is how
        # 2-D keypoint rows write an absent point.
        points = kpts[(kpts[:, 2] == VISIBILITY_VISIBLE) & np.any(kpts[:, :2] != 0, axis=1), :2]
        if not len(points) or len(polygons[j]) < 3:
            continue
        if j not in shapes:
            poly = polygons[j]
            tolerance = KEYPOINT_TOLERANCE * float(np.ptp(poly, axis=0).max())
            shapes[j] = (shapely.Polygon(poly), tolerance)
        polygon, tolerance = shapes[j]
        inside = shapely.dwithin(polygon, shapely.points(points), tolerance)
        share[c] = float(np.mean(inside))
    return share


def _canonical_order(xyxy: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Indices that sort objects by box, then by ``detail`` columns, then by input position."""
    keys = [np.arange(len(xyxy))]
    keys += [detail[:, c] for c in range(detail.shape[1] - 1, -1, -1)]
    keys += [xyxy[:, c] for c in range(3, -1, -1)]
    return np.lexsort(keys)


def _polygon_detail(polygons: list[np.ndarray]) -> np.ndarray:
    # Polygons with equal boxes still differ in their first points and size.
    out = np.zeros((len(polygons), 3))
    for j, poly in enumerate(polygons):
        if len(poly):
            out[j] = (len(poly), poly[0, 0], poly[0, 1])
    return out


def _pair_scores(iou: np.ndarray, candidate: np.ndarray, a_keypoints: np.ndarray | None, b_polygons: list[np.ndarray] | None,
                 keypoint_weight: float) -> np.ndarray:
    """(N, M) what the assignment maximizes: a candidate pair's IoU (0 for the others), plus ``keypoint_weight`` times
    the share of A's visible keypoints inside B's polygon, for candidates that compete (``keypoint_weight`` 0: none)."""
    score = np.where(candidate, iou, 0.0)
    if keypoint_weight:
        # Only candidates that compete (their row or column holds another candidate) can change
        # the assignment; a lone candidate pair is matched whatever its score, so skip shapely.
        competing = candidate & ((candidate.sum(axis=1, keepdims=True) > 1) | (candidate.sum(axis=0, keepdims=True) > 1))
        if competing.any():
            where = np.argwhere(competing)
            score[where[:, 0], where[:, 1]] += keypoint_weight * keypoint_containment(a_keypoints, b_polygons, where)
    return score


def match_boxes(
    a_xyxy: np.ndarray,
    b_xyxy: np.ndarray,
    iou_threshold: float = 0.5,
    *,
    a_keypoints: np.ndarray | None = None,
    b_polygons: list[np.ndarray] | None = None,
    keypoint_weight: float = KEYPOINT_WEIGHT,
) -> MatchResult:
    """Pair A boxes with B boxes one-to-one, maximizing the summed IoU.

    Args:
        a_xyxy: (N, 4) boxes (x1, y1, x2, y2) of side A, e.g. pose rows.
        b_xyxy: (M, 4) boxes of side B in the same coordinates, e.g. polygon boxes.
        iou_threshold: pairs with IoU below this stay unmatched; must be > 0.
        a_keypoints: (N, K, 3) keypoints of A, enabling the containment preference with ``b_polygons``.
        b_polygons: M polygons (P, 2) of B.
        keypoint_weight: how much a full containment of visible keypoints adds to a pair's score.

    Returns:
        A :class:`MatchResult`.

    >>> r = match_boxes(np.array([[0, 0, 10, 10.]]), np.array([[50, 50, 60, 60.], [1, 0, 10, 10.]]))
    >>> r.pairs.tolist(), r.unmatched_b.tolist()
    ([[0, 1]], [0])
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    a_xyxy = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b_xyxy = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    n, m = len(a_xyxy), len(b_xyxy)
    if n == 0 or m == 0:
        empty = np.zeros((0, 2), dtype=np.int64)
        return MatchResult(empty, np.zeros(0), np.arange(n), np.arange(m), np.zeros(n), np.zeros(m))

    iou = boxes_iou(a_xyxy, b_xyxy)
    candidate = iou >= iou_threshold
    use_keypoints = a_keypoints is not None and b_polygons is not None and keypoint_weight > 0
    score = _pair_scores(iou, candidate, a_keypoints, b_polygons, keypoint_weight if use_keypoints else 0.0)
    a_detail = np.asarray(a_keypoints, dtype=np.float64).reshape(n, -1) if use_keypoints else np.zeros((n, 0))
    b_detail = _polygon_detail(b_polygons) if use_keypoints else np.zeros((m, 0))
    a_order = _canonical_order(a_xyxy, a_detail)
    b_order = _canonical_order(b_xyxy, b_detail)
    rows, cols = linear_sum_assignment(score[np.ix_(a_order, b_order)], maximize=True)
    rows, cols = a_order[rows], b_order[cols]
    keep = candidate[rows, cols]
    rows, cols = rows[keep], cols[keep]
    by_a = np.argsort(rows)
    pairs = np.stack([rows[by_a], cols[by_a]], axis=1).astype(np.int64)
    return MatchResult(
        pairs=pairs,
        iou=iou[pairs[:, 0], pairs[:, 1]],
        unmatched_a=np.setdiff1d(np.arange(n), pairs[:, 0]),
        unmatched_b=np.setdiff1d(np.arange(m), pairs[:, 1]),
        best_iou_a=iou.max(axis=1),
        best_iou_b=iou.max(axis=0),
    )
