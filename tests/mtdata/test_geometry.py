"""Geometry helpers: areas, boxes, IoU, joining multi-part polygons, masks and RLE."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mtdata.geometry import (
    boxes_iou,
    decode_rle,
    join_polygons,
    mask_to_polygon,
    paired_iou,
    polygon_areas,
    polygon_iou,
    polygon_signed_area,
    polygon_to_mask,
    polygon_xyxy,
)
from tests.mtdata.factories import square


def test_signed_area_orientation():
    assert polygon_signed_area(square(0, 0, 3)) == pytest.approx(9.0)
    assert polygon_signed_area(square(0, 0, 3, clockwise=True)) == pytest.approx(-9.0)


def test_polygon_areas_are_unsigned_and_count_joined_parts_whole():
    parts = [square(0, 0, 3), square(10, 0, 2, clockwise=True)]
    polygons = [square(0, 0, 3, clockwise=True), join_polygons(parts), np.zeros((0, 2)), np.array([[0, 0], [5, 5.0]]),
                np.array([[0, 0], [1, 1], [2, 2.0]])]
    np.testing.assert_allclose(polygon_areas(polygons), [9, 13, 0, 0, 0])
    assert polygon_areas([]).shape == (0,)
    rng = np.random.default_rng(0)
    ring = rng.uniform(0, 100, (40, 2))  # crossing itself: still the shoelace value, as the signed area says
    assert polygon_areas([ring])[0] == pytest.approx(abs(polygon_signed_area(ring)))


def test_polygon_xyxy():
    np.testing.assert_array_equal(polygon_xyxy(np.array([[3, 1], [0, 5], [2, 2]])), [0, 1, 3, 5])


@pytest.mark.parametrize(
    "a, b, expected",
    [
        pytest.param([0, 0, 10, 10], [0, 0, 10, 10], 1.0, id="same"),
        pytest.param([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150, id="half-overlap"),
        pytest.param([0, 0, 10, 10], [20, 20, 30, 30], 0.0, id="apart"),
        pytest.param([0, 0, 0, 0], [0, 0, 0, 0], 0.0, id="degenerate-no-division-by-zero"),
    ],
)
def test_boxes_iou(a, b, expected):
    iou = boxes_iou(np.array([a], float), np.array([b], float))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected)


def test_boxes_iou_is_n_by_m():
    assert boxes_iou(np.zeros((3, 4)), np.zeros((5, 4))).shape == (3, 5)


def test_paired_iou_is_the_diagonal_of_boxes_iou():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 1, (50, 4)).reshape(50, 2, 2), axis=1).reshape(50, 4)  # x1 y1 x2 y2
    b = np.sort(rng.uniform(0, 1, (50, 4)).reshape(50, 2, 2), axis=1).reshape(50, 4)  # x1 y1 x2 y2
    a[0] = b[0] = [0.2, 0.2, 0.2, 0.5]  # zero area on both sides: IoU 0, not NaN
    assert np.array_equal(paired_iou(a, b), boxes_iou(a, b).diagonal())


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([square(0, 0, 10), square(20, 0, 10)], id="two-ccw"),
        pytest.param([square(0, 0, 10), square(20, 0, 10, clockwise=True)], id="ccw-and-cw"),
        pytest.param([square(0, 0, 10, clockwise=True), square(20, 0, 10, clockwise=True)], id="two-cw"),
        pytest.param([square(0, 0, 10), square(30, 30, 4, clockwise=True), square(0, 40, 6)], id="three-mixed"),
        pytest.param([square(50, 50, 2), square(0, 0, 10)], id="small-part-first"),
    ],
)
def test_join_polygons_keeps_the_area_of_every_part(parts):
    joined = join_polygons(parts)
    total = sum(abs(polygon_signed_area(p)) for p in parts)
    assert abs(polygon_signed_area(joined)) == pytest.approx(total)
    # every corner of every part is on the joined outline, nothing is invented outside them
    corners = {tuple(v) for p in parts for v in p}
    assert corners == {tuple(v) for v in joined}
    # rasterized, the joined polygon covers what the parts cover
    parts_mask = np.maximum.reduce([polygon_to_mask(p, 60, 60) for p in parts])
    joined_mask = polygon_to_mask(joined, 60, 60)
    assert (joined_mask != parts_mask).sum() <= 0.02 * parts_mask.sum()


def test_join_polygons_single_part_and_degenerate_input():
    single = join_polygons([square(0, 0, 4, clockwise=True)])
    assert polygon_signed_area(single) == pytest.approx(16.0)  # turned counter-clockwise
    closed = np.vstack([square(0, 0, 4), square(0, 0, 4)[:1]])  # first point repeated at the end
    assert len(join_polygons([closed])) == 4
    assert join_polygons([]).shape == (0, 2)
    assert join_polygons([np.array([[0.0, 0.0], [1.0, 1.0]])]).shape == (0, 2)  # fewer than 3 points: dropped


def rectangle_mask(h: int = 40, w: int = 60, box=(10, 5, 30, 25)) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = 1
    return mask


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def test_mask_to_polygon_traces_the_mask():
    mask = rectangle_mask()
    polygon = mask_to_polygon(mask)
    assert polygon.ndim == 2 and polygon.shape[1] == 2 and len(polygon) >= 4
    assert mask_iou(polygon_to_mask(polygon, *mask.shape), mask) >= 0.9


def test_mask_to_polygon_joins_blobs():
    mask = rectangle_mask(box=(2, 2, 20, 20)) | rectangle_mask(box=(35, 10, 55, 35))
    polygon = mask_to_polygon(mask)
    assert mask_iou(polygon_to_mask(polygon, *mask.shape), mask) >= 0.85


def test_mask_to_polygon_of_empty_mask():
    assert mask_to_polygon(np.zeros((10, 10), np.uint8)).shape == (0, 2)


def encoded(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask))


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths over the column-major mask, starting with zeros."""
    flat = mask.reshape(-1, order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda m: {"size": list(m.shape), "counts": encoded(m)["counts"]}, id="compressed-bytes"),
        pytest.param(lambda m: {"size": list(m.shape), "counts": encoded(m)["counts"].decode()}, id="compressed-string"),
        pytest.param(lambda m: {"size": list(m.shape), "counts": uncompressed_counts(m)}, id="uncompressed-list"),
    ],
)
def test_decode_rle(make):
    mask = rectangle_mask()
    mask[30:35, 40:58] = 1
    decoded = decode_rle(make(mask), *mask.shape)
    assert decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)


def test_polygon_iou():
    a = square(0, 0, 10)
    assert polygon_iou(a, a, 20, 20) == pytest.approx(1.0)
    assert polygon_iou(a, square(5, 0, 10), 20, 20) == pytest.approx(1 / 3, abs=0.05)
    assert polygon_iou(a, square(12, 12, 5), 20, 20) == 0.0
