"""``mtdata.formats.coco.joins``: rings cleaned and turned in bulk, ring by ring (random parts against
:func:`join_polygons` are in test_columns.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.formats.coco.joins import dedupe_rings, join_singles, orient_rings, row_extents, run_extents
from mtdata.geometry import join_polygons

SQUARE_CCW = [(0, 0), (1, 0), (1, 1), (0, 1)]


@pytest.mark.parametrize(
    ("ring", "cleaned"),
    [
        (SQUARE_CCW, SQUARE_CCW),
        ([(0, 0), (1, 0), (1, 0), (1, 1)], [(0, 0), (1, 0), (1, 1)]),  # a repeated point
        ([(0, 0), (1, 0), (1, 1), (0, 0)], [(0, 0), (1, 0), (1, 1)]),  # closed: the last point repeats the first
        ([(0, 0), (1, 0), (1, 1), (0, 0), (0, 0)], [(0, 0), (1, 0), (1, 1)]),  # closed, and the closing point repeated
        ([(0, 0), (0, 0), (1, 0), (1, 1)], [(0, 0), (1, 0), (1, 1)]),  # the first point repeated: the ring keeps its start
    ],
    ids=["clean", "repeat", "closed", "closed-twice", "first-repeated"],
)
def test_dedupe_rings(ring, cleaned):
    # the ring between two others, so that ring boundaries are exercised too
    rings = [np.array(SQUARE_CCW, float), np.array(ring, float), np.array(SQUARE_CCW, float) + 5]
    points, offsets = dedupe_rings(np.vstack(rings), np.cumsum([0] + [len(r) for r in rings]))
    assert offsets.tolist() == [0, 4, 4 + len(cleaned), 8 + len(cleaned)]
    np.testing.assert_array_equal(points[4 : 4 + len(cleaned)], cleaned)
    np.testing.assert_array_equal(points[:4], SQUARE_CCW)
    np.testing.assert_array_equal(points[4 + len(cleaned) :], np.array(SQUARE_CCW) + 5)
    np.testing.assert_array_equal(join_singles(np.array(ring, float), np.array([0, len(ring)]))[0],
                                  join_polygons([np.array(ring, float)]))


def test_orient_rings_turns_only_the_clockwise_ones():
    clockwise = SQUARE_CCW[::-1]  # (0, 1), (1, 1), (1, 0), (0, 0)
    points, twice_area = orient_rings(np.array(SQUARE_CCW + clockwise, float), np.array([0, 4, 8]))
    assert twice_area.tolist() == [2.0, -2.0]  # signed, as given
    np.testing.assert_array_equal(points[:4], SQUARE_CCW)
    np.testing.assert_array_equal(points[4:], [(0, 0), (1, 0), (1, 1), (0, 1)])  # walked backwards: counter-clockwise


def test_extents_of_runs_and_of_rows_of_parts():
    points = np.array([(0, 0), (2, 1), (5, 5), (6, 4), (1, 9)], float)
    low, high = run_extents(points, np.array([0, 2, 2, 5]))  # the middle run is empty
    np.testing.assert_array_equal(low, [(0, 0), (np.nan, np.nan), (1, 4)])
    np.testing.assert_array_equal(high, [(2, 1), (np.nan, np.nan), (6, 9)])
    # rows 0 (two parts), 1 (none), 2 (one part); the parts' own extents
    part_low, part_high = np.array([(0, 0), (3, -1), (7, 7)], float), np.array([(1, 1), (4, 2), (8, 9)], float)
    low, high = row_extents(part_low, part_high, np.array([2, 0, 1]), np.array([0, 1, 2]))
    np.testing.assert_array_equal(low, [(0, -1), (np.nan, np.nan), (7, 7)])
    np.testing.assert_array_equal(high, [(4, 2), (np.nan, np.nan), (8, 9)])
    low, high = row_extents(part_low, part_high, np.array([2, 0, 1]), np.array([2]))  # a subset of rows
    np.testing.assert_array_equal(low, [(7, 7)])
    np.testing.assert_array_equal(high, [(8, 9)])
