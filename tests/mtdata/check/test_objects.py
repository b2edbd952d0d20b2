"""mtdata.check.objects: near-duplicates found without comparing every pair, bounded on crowded files."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.check.objects import NEAR_DUPLICATE_CANDIDATES, near_duplicate_candidates, object_findings
from mtdata.formats.yolo.rows import LabelLayout, parse_label_text

SEGMENT = LabelLayout("segment", num_classes=3)


def _all_pairs_over(boxes: np.ndarray, group: np.ndarray, iou: float) -> set[tuple[int, int]]:
    """Every pair of one group with box IoU >= iou, the quadratic way."""
    out = set()
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            if group[a] != group[b]:
                continue
            lo, hi = np.maximum(boxes[a, :2], boxes[b, :2]), np.minimum(boxes[a, 2:], boxes[b, 2:])
            inter = np.clip(hi - lo, 0, None).prod()
            union = (boxes[a, 2:] - boxes[a, :2]).prod() + (boxes[b, 2:] - boxes[b, :2]).prod() - inter
            if union > 0 and inter / union >= iou:
                out.add((a, b))
    return out


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes in [0, 1], many of them jittered copies of a few (near-duplicates), some tiny, some huge."""
    seeds = rng.uniform(0, 0.7, size=(max(1, n // 4), 2))
    xy = seeds[rng.integers(0, len(seeds), n)] + rng.normal(0, rng.choice([0.001, 0.01, 0.05]), size=(n, 2))
    wh = np.exp(rng.uniform(np.log(0.005), np.log(0.3), size=(n, 2))) * rng.choice([1.0, 1.03], size=(n, 1))
    return np.clip(np.concatenate([xy, xy + wh], axis=1), 0, 1)


@pytest.mark.parametrize("seed", range(40))
def test_candidates_hold_every_pair_over_the_threshold(seed):
    """Below the cap the candidates are complete: every pair an all-pairs search finds is among them."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    boxes = _random_boxes(rng, n)
    group = rng.integers(0, 3, n)
    iou = float(rng.choice([0.5, 0.9, 0.95]))
    candidates = {tuple(p) for p in near_duplicate_candidates(boxes, group, iou).tolist()}
    assert _all_pairs_over(boxes, group, iou) <= candidates
    assert all(a < b and group[a] == group[b] for a, b in candidates)


def test_a_crowd_of_20000_rows_gives_at_most_cap_candidates_each():
    """20,000 jittered copies of one box, one class: all 200M pairs overlap; the search stays linear."""
    rng = np.random.default_rng(0)
    n = 20_000
    xy = 0.4 + rng.normal(0, 0.002, size=(n, 2))
    boxes = np.concatenate([xy, xy + 0.2], axis=1)
    pairs = near_duplicate_candidates(boxes, np.zeros(n, np.int64), 0.9)
    assert len(pairs) <= n * NEAR_DUPLICATE_CANDIDATES
    assert len(pairs) >= n  # each row still meets its neighbours


def test_each_near_duplicate_row_is_reported_once():
    square = "0.5 0.5 0.7 0.5 0.7 0.7 0.5 0.7"
    shifted = "0.505 0.5 0.705 0.5 0.705 0.7 0.505 0.7"
    text = "\n".join([f"1 {square}", f"1 {shifted}", f"1 {square.replace('0.5 ', '0.501 ', 1)}", f"2 {shifted}"]) + "\n"
    parsed = parse_label_text(text, SEGMENT)
    found = [f for f in object_findings(parsed, text.splitlines(), SEGMENT, (100, 100), "a.txt") if f.rule == "object_near_duplicate"]
    assert [f.line for f in found] == [2, 3]  # line 4 is another class
    assert "overlaps line 1" in found[0].message and "overlaps line 1" in found[1].message


def test_a_file_of_6000_overlapping_rows_is_checked(tmp_path):
    """The file of the issue (6,000 rows of one class, 168 KB) took 60 s and 2.7 GB by all pairs."""
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(6000):
        x, y = 0.3 + rng.uniform(0, 0.01, 2)
        rows.append(f"0 {x:.6f} {y:.6f} {x + 0.2:.6f} {y:.6f} {x + 0.2:.6f} {y + 0.2:.6f} {x:.6f} {y + 0.2:.6f}")
    text = "\n".join(rows) + "\n"
    parsed = parse_label_text(text, SEGMENT)
    found = object_findings(parsed, text.splitlines(), SEGMENT, (640, 480), "a.txt")
    near = [f for f in found if f.rule == "object_near_duplicate"]
    assert len(near) <= 6000 and len({f.line for f in near}) == len(near)
    assert len(near) > 5000  # nearly every row is a near-duplicate of an earlier one
