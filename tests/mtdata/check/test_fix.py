"""``mtdata.check.fix``: what --fix does to each kind of row, one table (the CLI runs are in test_dataset.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.check.fix import FIXED_RULES, fix_label_text
from mtdata.check.polygons import polygon_defects
from mtdata.formats.yolo.rows import LabelLayout

SEGMENT = LabelLayout("segment", 2)
MULTITASK = LabelLayout("multitask", 2, 2, keypoint_classes=frozenset({0}))  # class 0: 2 keypoints, then a polygon
POSE = LabelLayout("pose", 1, 2)
SQUARE = "0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"
SQUARE_6 = "0.100000 0.100000 0.500000 0.100000 0.500000 0.500000 0.100000 0.500000"  # as a rewritten row spells it


@pytest.mark.parametrize(
    ("layout", "text", "fixed", "changes"),
    [
        # a good row is copied byte for byte (not respelled), and gets its newline
        (SEGMENT, f"0 {SQUARE}", f"0 {SQUARE}\n", []),
        (MULTITASK, f"1 {SQUARE}", f"1 {SQUARE}\n", []),  # class 1 has no keypoints
        # blank lines are kept where they are
        (SEGMENT, f"\n0 {SQUARE}\n\n", f"\n0 {SQUARE}\n\n", []),
        # the second of two equal rows goes, naming the first
        (SEGMENT, f"0 {SQUARE}\n0 {SQUARE}", f"0 {SQUARE}\n", [(2, "row_duplicate", "dropped: repeats line 1")]),
        # just outside [0, 1], within the 0.01 tolerance: clipped, the row rewritten
        (SEGMENT, "0 -0.005 0.1 0.5 0.1 0.5 0.5 0.1 0.5", f"0 0.000000 {SQUARE_6[9:]}\n",
         [(1, "coord_clipped", "clipped coordinates to [0, 1]")]),
        # beyond the tolerance the row cannot be parsed: dropped with the parser's words
        (SEGMENT, "0 1.5 0.1 0.5 0.1 0.5 0.5 0.1 0.5", "",
         [(1, "coord_out_of_bounds", "dropped the row: polygon coordinate 1.5 is outside [0, 1]")]),
        # collinear points enclose nothing
        (SEGMENT, "0 0.1 0.1 0.2 0.2 0.3 0.3", "", [(1, "zero_area", "dropped: the polygon encloses no area")]),
        # rows the parser refuses
        (SEGMENT, "0 abc 0.1 0.5 0.1 0.5 0.5", "",
         [(1, "row_non_numeric", "dropped the row: expected numbers, found 'abc'")]),
        (SEGMENT, f"5 {SQUARE}", "", [(1, "row_class_out_of_range", "dropped the row: class '5' is not in names (0..1)")]),
        (SEGMENT, "0 nan 0.1 0.5 0.1 0.5 0.5 0.1 0.5", "",
         [(1, "row_not_finite", "dropped the row: values must be finite, found NaN or inf")]),
        (SEGMENT, "0 0.1 0.1 0.5", "",
         [(1, "row_wrong_count",
           "dropped the row: expected an even number of polygon values; found an odd count of 3 polygon values")]),
        # a visibility outside {0, 1, 2}: that keypoint becomes 0 0 0, the rest of the row stays
        (MULTITASK, f"0 0.2 0.2 2 0.3 0.3 7 {SQUARE}", f"0 0.200000 0.200000 2 0.000000 0.000000 0 {SQUARE_6}\n",
         [(1, "kpt_bad_visibility", "set keypoints 1 to 0 0 0")]),
        (POSE, "0 0.3 0.3 0.4 0.4 0.2 0.2 2 0.3 0.3 5",
         "0 0.300000 0.300000 0.400000 0.400000 0.200000 0.200000 2 0.000000 0.000000 0\n",
         [(1, "kpt_bad_visibility", "set keypoints 1 to 0 0 0")]),
        # a labeled keypoint outside the image
        (MULTITASK, f"0 0.2 0.2 2 1.5 0.3 2 {SQUARE}", f"0 0.200000 0.200000 2 0.000000 0.000000 0 {SQUARE_6}\n",
         [(1, "kpt_out_of_image", "set keypoints 1 to 0 0 0")]),
        # an unlabeled keypoint (v=0) with coordinates: zeroed; a hidden one (v=1) is kept
        (MULTITASK, f"0 0.2 0.2 0 0.3 0.3 1 {SQUARE}", f"0 0.000000 0.000000 0 0.300000 0.300000 1 {SQUARE_6}\n",
         [(1, "kpt_unlabeled_nonzero", "zeroed unlabeled keypoints 0")]),
        # changes keep their line numbers when rows before them go
        (SEGMENT, f"0 abc\n0 {SQUARE}\n0 {SQUARE}", f"0 {SQUARE}\n",
         [(1, "row_non_numeric", "dropped the row: expected numbers, found 'abc'"),
          (3, "row_duplicate", "dropped: repeats line 2")]),
    ],
    ids=["good", "good-class-without-keypoints", "blank-lines", "duplicate", "clipped", "out-of-bounds", "zero-area",
         "non-numeric", "class-out-of-range", "nan", "odd-count", "bad-visibility", "bad-visibility-pose",
         "keypoint-outside", "unlabeled-nonzero", "line-numbers"],
)
def test_row_fixes(layout, text, fixed, changes):
    new_text, found = fix_label_text(text, layout, "labels/train/a.txt")
    assert new_text == fixed
    assert [(c.line, c.rule, c.action) for c in found] == changes
    assert all(c.file == "labels/train/a.txt" for c in found)
    assert {c.rule for c in found} <= FIXED_RULES  # every rule --fix acts on is counted as fixed, not unfixed
    assert fix_label_text(new_text, layout, "a.txt") == (new_text, [])  # a fixed file needs no second fix


def _shoelace(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def test_a_self_intersecting_polygon_is_repaired_keeping_its_area():
    # a bowtie: (0.1, 0.1) -> (0.9, 0.1) -> (0.1, 0.5) -> (0.3, 0.5) crosses itself at (0.26, 0.42); its two
    # triangles hold 0.8 * 0.32 / 2 + 0.2 * 0.08 / 2 = 0.136 of the image
    new_text, found = fix_label_text("1 0.1 0.1 0.9 0.1 0.1 0.5 0.3 0.5", SEGMENT, "a.txt")
    assert [(c.line, c.rule) for c in found] == [(1, "polygon_self_intersecting")]
    assert found[0].action.startswith("repaired the polygon (4 -> ")
    values = new_text.split()
    assert values[0] == "1" and new_text.endswith("\n")
    polygon = np.array(values[1:], dtype=float).reshape(-1, 2)
    assert polygon_defects([polygon])[0][0] is None  # usable now
    assert _shoelace(polygon) == pytest.approx(0.136, abs=1e-5)  # no area lost (the parts are joined by a seam)
    assert f"-> {len(polygon)} points)" in found[0].action
    assert fix_label_text(new_text, SEGMENT, "a.txt") == (new_text, [])
