"""mtdata.check.polygons: one verdict on a polygon, whatever the scale, and bounded on huge polygons."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mtdata.check.polygons import MAX_PAIRWISE_POINTS, has_crossing, polygon_defects
from mtdata.geometry import join_polygons
from tests.mtdata.factories import square

BOW_TIE = np.array([[0.1, 0.1], [0.5, 0.3], [0.5, 0.1], [0.1, 0.4]])

CASES = [
    # (id, polygon (normalized), rule or None)
    ("square", square(0.1, 0.1, 0.2), None),
    ("clockwise square", square(0.1, 0.1, 0.2, clockwise=True), None),
    ("collinear points", np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]), "zero_area"),
    ("one point three times", np.array([[0.5, 0.5]] * 3), "zero_area"),
    ("bow tie", BOW_TIE, "polygon_self_intersecting"),
    ("two squares bridged by convert", join_polygons([square(0.1, 0.1, 0.1), square(0.5, 0.5, 0.1)]), None),
    ("a kink of 0.1% of the area", np.array([[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.3001, 0.5], [0.2999, 0.4999], [0.1, 0.5]]), None),
]


@pytest.mark.parametrize("polygon,rule", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdict(polygon, rule):
    (defect,), (shape,) = polygon_defects([polygon])
    assert (defect[0] if defect else None) == rule
    assert (shape is None) == (rule == "zero_area")


@pytest.mark.parametrize("seed", range(20))
def test_crossing_verdict_does_not_depend_on_the_image_size(seed):
    """Taken in pixels of any image (as check once did) or normalized (as now): the same crossings."""
    rng = np.random.default_rng(seed)
    polygons = [rng.uniform(0, 1, size=(int(rng.integers(3, 12)), 2)) for _ in range(30)] + [p for _, p, r in CASES if r != "zero_area"]
    scale = rng.uniform(10, 5000, size=2)
    normalized, _ = polygon_defects(polygons)
    pixels, _ = polygon_defects([p * scale for p in polygons])
    assert [d and d[0] for d in normalized] == [d and d[0] for d in pixels]
    assert any(d for d in normalized) and not all(d for d in normalized)


def test_a_huge_polygon_is_judged_without_comparing_every_pair_of_edges():
    """has_crossing builds (P, P) arrays: a 20,000-point ring would need 3.2 GB each. The area test decides it."""
    t = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    star = np.stack([0.5 + 0.4 * np.cos(t) * np.cos(7 * t), 0.5 + 0.4 * np.sin(t) * np.cos(7 * t)], axis=1)
    assert has_crossing(star)  # over MAX_PAIRWISE_POINTS: assumed, without the pairwise arrays
    assert len(star) > MAX_PAIRWISE_POINTS
    start = time.perf_counter()
    (defect,), _ = polygon_defects([star])
    assert time.perf_counter() - start < 30  # generous: make_valid is O(P log P)
    assert defect is not None and defect[0] == "polygon_self_intersecting"
    ring = np.stack([0.5 + 0.4 * np.cos(t), 0.5 + 0.4 * np.sin(t)], axis=1)
    assert polygon_defects([ring])[0] == [None]
