"""``mtdata.merge.match``: one-to-one IoU assignment, thresholds, ties, keypoint containment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdata.geometry import boxes_iou
from mtdata.merge.match import KEYPOINT_WEIGHT, keypoint_containment, match_boxes


def box(x1, y1, x2, y2) -> list[float]:
    return [float(x1), float(y1), float(x2), float(y2)]


def boxes(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# (id, A boxes, B boxes, threshold, expected pairs, expected unmatched A, expected unmatched B)
CASES = [
    ("both empty", boxes(), boxes(), 0.5, [], [], []),
    ("no masks", boxes(box(0, 0, 10, 10)), boxes(), 0.5, [], [0], []),
    ("no poses", boxes(), boxes(box(0, 0, 10, 10)), 0.5, [], [], [0]),
    ("exact", boxes(box(0, 0, 10, 10)), boxes(box(0, 0, 10, 10)), 0.5, [[0, 0]], [], []),
    ("reordered", boxes(box(0, 0, 10, 10), box(50, 50, 60, 60)), boxes(box(51, 50, 60, 60), box(0, 0, 10, 11)), 0.5,
     [[0, 1], [1, 0]], [], []),
    ("below threshold", boxes(box(0, 0, 10, 10)), boxes(box(6, 0, 16, 10)), 0.5, [], [0], [0]),
    ("threshold is inclusive", boxes(box(0, 0, 10, 10)), boxes(box(0, 0, 10, 5)), 0.5, [[0, 0]], [], []),
    ("two poses, one mask: the closer wins", boxes(box(0, 0, 10, 10), box(1, 0, 11, 10)), boxes(box(1, 0, 11, 10)), 0.5,
     [[1, 0]], [0], []),
    ("one pose, two masks: the closer wins", boxes(box(0, 0, 10, 10)), boxes(box(2, 0, 12, 10), box(0, 0, 10, 9)), 0.5,
     [[0, 1]], [], [0]),
    # Greedy would give A0 its best mask (B0, IoU 0.9) and leave A1 with nothing (A1-B1 is 0.4);
    # the assignment pairs A0-B1 (0.6) and A1-B0 (0.6).
    ("assignment beats greedy", boxes(box(0, 0, 10, 10), box(1, 0, 16, 10)), boxes(box(1, 0, 10, 10), box(4, 0, 10, 10)), 0.5,
     [[0, 1], [1, 0]], [], []),
    ("low threshold pairs far boxes", boxes(box(0, 0, 10, 10)), boxes(box(6, 0, 16, 10)), 0.2, [[0, 0]], [], []),
]


@pytest.mark.parametrize("name, a, b, threshold, pairs, lost_a, lost_b", CASES, ids=[c[0] for c in CASES])
def test_match_table(name, a, b, threshold, pairs, lost_a, lost_b):
    a_before, b_before = a.copy(), b.copy()
    result = match_boxes(a, b, threshold)
    assert result.pairs.tolist() == pairs
    assert result.unmatched_a.tolist() == lost_a
    assert result.unmatched_b.tolist() == lost_b
    iou = boxes_iou(a, b) if len(a) and len(b) else np.zeros((len(a), len(b)))
    assert np.allclose(result.iou, [iou[i, j] for i, j in pairs])
    assert (result.iou >= threshold).all()
    assert np.allclose(result.best_iou_a, iou.max(axis=1) if len(b) else np.zeros(len(a)))
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)  # inputs untouched


def test_partner_of_b():
    result = match_boxes(boxes(box(0, 0, 10, 10), box(50, 50, 60, 60)), boxes(box(50, 50, 60, 61), box(80, 80, 90, 90), box(0, 0, 10, 10)))
    assert result.partner_of_b.tolist() == [1, -1, 0]


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_threshold_must_be_in_unit_interval(threshold):
    with pytest.raises(ValueError, match="iou_threshold"):
        match_boxes(boxes(box(0, 0, 1, 1)), boxes(box(0, 0, 1, 1)), threshold)


def test_ties_break_the_same_way_whatever_the_row_order():
    """Two identical poses and two identical masks: every input order gives the same objects paired."""
    a = boxes(box(0, 0, 10, 10), box(0, 0, 10, 10), box(30, 30, 40, 40))
    b = boxes(box(0, 0, 10, 10), box(0, 0, 10, 10), box(30, 30, 40, 41))
    # Tell the identical boxes apart by their keypoints and polygons (the canonical order uses them).
    kpts = np.zeros((3, 1, 3))
    kpts[:, 0] = [[2, 2, 2], [8, 8, 2], [35, 35, 2]]
    polys = [np.array([[0, 0], [10, 0], [10, 10], [0, 10.0]]), np.array([[10, 10], [0, 10], [0, 0], [10, 0.0]]),
             np.array([[30, 30], [40, 30], [40, 41], [30, 41.0]])]
    seen = set()
    for pa in itertools.permutations(range(3)):
        for pb in itertools.permutations(range(3)):
            r = match_boxes(a[list(pa)], b[list(pb)], 0.5, a_keypoints=kpts[list(pa)], b_polygons=[polys[i] for i in pb])
            seen.add(frozenset((pa[i], pb[j]) for i, j in r.pairs.tolist()))
    assert len(seen) == 1
    assert len(next(iter(seen))) == 3


def triangles(x1, y1, x2, y2):
    """Two triangles that share one box: upper-left and lower-right halves."""
    upper_left = np.array([[x1, y1], [x2, y1], [x1, y2]], dtype=float)
    lower_right = np.array([[x2, y1], [x2, y2], [x1, y2]], dtype=float)
    return upper_left, lower_right


def keypoints_at(*points) -> np.ndarray:
    return np.array([[x, y, 2.0] for x, y in points])[None]


def test_keypoints_decide_between_masks_with_equal_boxes():
    ul, lr = triangles(0, 0, 100, 100)
    poses = boxes(box(1, 0, 100, 100), box(0, 1, 100, 100))
    kpts = np.concatenate([keypoints_at((10, 10), (20, 15), (15, 30)), keypoints_at((90, 90), (80, 85), (85, 70))])
    for masks, polygons, expected in ((boxes(box(0, 0, 100, 100), box(0, 0, 100, 100)), [ul, lr], [[0, 0], [1, 1]]),
                                      (boxes(box(0, 0, 100, 100), box(0, 0, 100, 100)), [lr, ul], [[0, 1], [1, 0]])):
        result = match_boxes(poses, masks, 0.5, a_keypoints=kpts, b_polygons=polygons)
        assert result.pairs.tolist() == expected
        # Without keypoints the boxes alone cannot tell: the pairing follows the box order only.
        plain = match_boxes(poses, masks, 0.5)
        assert len(plain.pairs) == 2


def test_keypoints_do_not_overturn_a_clear_iou_difference():
    ul, lr = triangles(0, 0, 100, 100)
    pose = boxes(box(0, 0, 100, 100))
    # Mask 1 has a clearly better box, but holds none of the keypoints; mask 0 holds them all.
    masks = boxes(box(0, 0, 100, 140), box(0, 0, 100, 100))
    iou = boxes_iou(pose, masks)[0]
    assert iou[1] - iou[0] > KEYPOINT_WEIGHT
    result = match_boxes(pose, masks, 0.5, a_keypoints=keypoints_at((10, 10), (20, 20)), b_polygons=[ul * [1, 1.4], lr])
    assert result.pairs.tolist() == [[0, 1]]


def test_hidden_and_absent_keypoints_do_not_count():
    ul, lr = triangles(0, 0, 100, 100)
    kpts = np.array([[[90, 90, 1], [85, 95, 1], [0, 0, 0], [10, 10, 2]]], dtype=float)
    share = keypoint_containment(kpts, [ul, lr], np.array([[0, 0], [0, 1]]))
    assert share.tolist() == [1.0, 0.0]  # only the visible point (10, 10) counts, and it lies in the upper-left half


def test_points_on_the_outline_are_inside():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10.0]])
    kpts = np.array([[[10, 5, 2], [0, 0.01, 2], [10.1, 5, 2], [20, 5, 2]]], dtype=float)
    assert keypoint_containment(kpts, [square], np.array([[0, 0]])).tolist() == [0.75]


@st.composite
def box_sets(draw):
    def one():
        x = draw(st.integers(0, 20))
        y = draw(st.integers(0, 20))
        return box(x, y, x + draw(st.integers(1, 12)), y + draw(st.integers(1, 12)))

    a = boxes(*[one() for _ in range(draw(st.integers(0, 5)))])
    b = boxes(*[one() for _ in range(draw(st.integers(0, 5)))])
    return a, b, draw(st.sampled_from([0.1, 0.3, 0.5, 0.7]))


@settings(max_examples=150, deadline=None)
@given(box_sets(), st.randoms(use_true_random=False))
def test_assignment_is_optimal_one_to_one_and_order_free(case, rnd):
    """Against brute force: the summed IoU of the pairs is the best any one-to-one pairing above the threshold gets."""
    a, b, threshold = case
    result = match_boxes(a, b, threshold)
    assert len(set(result.pairs[:, 0].tolist())) == len(result.pairs) == len(set(result.pairs[:, 1].tolist()))
    assert sorted([*result.pairs[:, 0].tolist(), *result.unmatched_a.tolist()]) == list(range(len(a)))
    assert sorted([*result.pairs[:, 1].tolist(), *result.unmatched_b.tolist()]) == list(range(len(b)))
    iou = boxes_iou(a, b) if len(a) and len(b) else np.zeros((len(a), len(b)))
    best = 0.0
    for k in range(min(len(a), len(b)) + 1):
        for rows in itertools.combinations(range(len(a)), k):
            for cols in itertools.permutations(range(len(b)), k):
                values = [iou[i, j] for i, j in zip(rows, cols)]
                if all(v >= threshold for v in values):
                    best = max(best, sum(values))
    assert result.iou.sum() == pytest.approx(best)
    # Shuffling the inputs pairs the same boxes, unless some boxes are exact duplicates.
    pa, pb = list(range(len(a))), list(range(len(b)))
    rnd.shuffle(pa)
    rnd.shuffle(pb)
    shuffled = match_boxes(a[pa], b[pb], threshold)
    if len(np.unique(a, axis=0)) == len(a) and len(np.unique(b, axis=0)) == len(b):
        assert {(pa[i], pb[j]) for i, j in shuffled.pairs.tolist()} == {tuple(p) for p in result.pairs.tolist()}
    assert shuffled.iou.sum() == pytest.approx(best)
