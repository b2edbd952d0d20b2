"""``mtdata.check.fix_rows``: what --fix does to each kind of row, one table (the CLI runs are in test_dataset.py and
test_fix_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.check.fix import FIXED_RULES
from mtdata.check.fix_rows import fix_label_text
from mtdata.check.polygons import polygon_defects
from mtdata.formats.yolo.rows import LabelLayout

SEGMENT = LabelLayout("segment", 2)
MULTITASK = LabelLayout("multitask", 2, 2, keypoint_classes=frozenset({0}))  # class 0: 2 keypoints, then a polygon
POSE = LabelLayout("pose", 1, 2)
POSE_2D = LabelLayout("pose", 1, 2, 2)  # keypoints (x, y): no visibility, all visible
DETECT = LabelLayout("detect", 2)
BOWTIE = "0.1 0.1 0.9 0.1 0.1 0.5 0.3 0.5"
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
        # detect rows: a box clipped; a repeat spelled differently is still a repeat (values, not text)
        (DETECT, "0 0.5 0.5 1.004 0.2", "0 0.500000 0.500000 1.000000 0.200000\n",
         [(1, "coord_clipped", "clipped coordinates to [0, 1]")]),
        (DETECT, "0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.2", "0 0.5 0.5 0.2 0.2\n", [(2, "row_duplicate", "dropped: repeats line 1")]),
        (DETECT, "0 0.5 0.5 0 0.2", "", [(1, "zero_area", "dropped the row: box width and height must be > 0, found 0 x 0.2")]),
        # 2-D keypoints: clipped like any coordinate; beyond the tolerance there is no visibility to zero: dropped
        (POSE_2D, "0 0.5 0.5 0.2 0.2 1.004 0.3 0.2 0.2",
         "0 0.500000 0.500000 0.200000 0.200000 1.000000 0.300000 0.200000 0.200000\n",
         [(1, "coord_clipped", "clipped coordinates to [0, 1]")]),
        (POSE_2D, "0 0.5 0.5 0.2 0.2 1.5 0.3 0.2 0.2", "",
         [(1, "kpt_out_of_image", "dropped the row: keypoint coordinate 1.5 is outside [0, 1]")]),
        # two rows equal once their bad keypoints are zeroed: the second goes
        (MULTITASK, f"0 0.2 0.2 2 0.3 0.3 7 {SQUARE}\n0 0.2 0.2 2 0.4 0.4 9 {SQUARE}",
         f"0 0.200000 0.200000 2 0.000000 0.000000 0 {SQUARE_6}\n",
         [(1, "kpt_bad_visibility", "set keypoints 1 to 0 0 0"), (2, "row_duplicate", "dropped: repeats line 1")]),
        # a salvaged row is rewritten, clipped values and all, under the salvage's one note
        (MULTITASK, "0 0.2 0.2 2 0.3 0.3 7 -0.004 0.1 0.5 0.1 0.5 0.5 0.1 0.5",
         f"0 0.200000 0.200000 2 0.000000 0.000000 0 0.000000 {SQUARE_6[9:]}\n",
         [(1, "kpt_bad_visibility", "set keypoints 1 to 0 0 0")]),
        # a row dropped for its polygon gets that one change, not the salvage's
        (MULTITASK, "0 0.2 0.2 3 0.3 0.3 2 0.1 0.1 0.2 0.2 0.3 0.3", "", [(1, "zero_area", "dropped: the polygon encloses no area")]),
        # -0.0 and 0.0 are different values to the repeat test (row_key compares bytes)
        (SEGMENT, "0 -0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5",
         "0 -0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n", []),
        # repeats are found after the repairs: a clipped row repeats a later 0.0 row, twin bowties repeat once repaired
        (SEGMENT, f"0 {SQUARE}\n0 -0.004 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5",
         f"0 {SQUARE}\n0 0.000000 {SQUARE_6[9:]}\n",
         [(2, "coord_clipped", "clipped coordinates to [0, 1]"), (3, "row_duplicate", "dropped: repeats line 2")]),
        (SEGMENT, f"0 {BOWTIE}\n0 {BOWTIE} ",
         "0 0.260000 0.420000 0.300000 0.500000 0.100000 0.500000 0.260000 0.420000 0.100000 0.100000 0.900000 0.100000\n",
         [(1, "polygon_self_intersecting", "repaired the polygon (4 -> 6 points)"), (2, "row_duplicate", "dropped: repeats line 1")]),
        # dropped rows are never the row a repeat names: both zero-area rows go for their area
        (SEGMENT, "0 0.1 0.1 0.2 0.2 0.3 0.3\n0 0.1 0.1 0.2 0.2 0.3 0.3", "",
         [(1, "zero_area", "dropped: the polygon encloses no area"), (2, "zero_area", "dropped: the polygon encloses no area")]),
        # an unlabeled keypoint at (-0.0, 0.2) is zeroed; one at (-0.0, 0.0) holds no non-zero value and is kept
        (MULTITASK, f"0 -0.0 0.2 0 0.3 0.3 1 {SQUARE}\n0 -0.0 0.0 0 0.3 0.3 1 {SQUARE}",
         f"0 0.000000 0.000000 0 0.300000 0.300000 1 {SQUARE_6}\n0 -0.0 0.0 0 0.3 0.3 1 {SQUARE}\n",
         [(1, "kpt_unlabeled_nonzero", "zeroed unlabeled keypoints 0")]),
        # two repairs of one row: their notes in the order they are made
        (POSE, "0 0.5 0.5 1.004 0.2 0.2 0.2 0 0.3 0.3 2", "0 0.500000 0.500000 1.000000 0.200000 0.000000 0.000000 0 0.300000 0.300000 2\n",
         [(1, "coord_clipped", "clipped coordinates to [0, 1]"), (1, "kpt_unlabeled_nonzero", "zeroed unlabeled keypoints 0")]),
        # an empty file stays empty; CRLF line ends become LF in a rewritten file
        (SEGMENT, "", "", []),
        (SEGMENT, f"0 {SQUARE}\r\n0 {SQUARE}\r\n", f"0 {SQUARE}\n", [(2, "row_duplicate", "dropped: repeats line 1")]),
    ],
    ids=["good", "good-class-without-keypoints", "blank-lines", "duplicate", "clipped", "out-of-bounds", "zero-area",
         "non-numeric", "class-out-of-range", "nan", "odd-count", "bad-visibility", "bad-visibility-pose",
         "keypoint-outside", "unlabeled-nonzero", "line-numbers", "detect-clipped", "detect-repeat-respelled",
         "detect-zero-size", "pose-2d-clipped", "pose-2d-outside", "salvaged-rows-repeat", "salvaged-and-clipped",
         "salvaged-then-zero-area", "minus-zero-not-a-repeat", "clipped-makes-a-repeat", "repaired-twins",
         "repeated-zero-area", "unlabeled-minus-zero", "two-notes-in-order", "empty", "crlf"],
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


def test_each_repeat_names_the_first_line_holding_the_same_values():
    """120 rows drawn from 30 squares: every repeat, and only a repeat, is dropped, naming its first line."""
    rng = np.random.default_rng(0)
    squares = [np.array([[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y + 0.1]]) for x, y in rng.uniform(0, 0.8, (30, 2))]
    lines = [" ".join(["0", *(f"{v:.6f}" for v in squares[int(i)].reshape(-1))]) for i in rng.integers(0, 30, 120)]
    first: dict[str, int] = {}  # equal text, equal values; these squares' texts all differ
    want = []
    for n, line in enumerate(lines, start=1):
        if line in first:
            want.append((n, f"dropped: repeats line {first[line]}"))
        first.setdefault(line, n)
    _, changes = fix_label_text("\n".join(lines), SEGMENT, "a.txt")
    assert len(want) > 50
    assert [(c.line, c.action) for c in changes if c.rule == "row_duplicate"] == want
    assert all(c.rule == "row_duplicate" for c in changes)
