"""ImageLabels: shapes checked once, selection, padding, concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.errors import MtdataError
from mtdata.records import ImageLabels
from tests.mtdata.factories import make_labels, square


def three_objects() -> ImageLabels:
    kpts = np.zeros((3, 2, 3))
    kpts[0] = [[1, 2, 2], [3, 4, 1]]
    kpts[2, 0] = [5, 6, 2]
    return make_labels([square(0, 0, 10), np.zeros((0, 2)), square(20, 20, 5)], [0, 1, 0], kpts)


def test_shapes_are_normalized():
    labels = ImageLabels((10, 10), [1, 2], [[0, 0, 1, 1], [1, 1, 2, 2]], [[[0, 0], [1, 0], [1, 1]], []], np.zeros((2, 0, 3)))
    assert labels.class_id.dtype == np.int64
    assert labels.xyxy.shape == (2, 4)
    assert [p.shape for p in labels.polygons] == [(3, 2), (0, 2)]
    assert labels.keypoints.shape == (2, 0, 3)
    assert labels.source_ids.tolist() == [-1, -1]  # no source: -1
    assert len(labels) == 2 and labels.num_keypoints == 0


@pytest.mark.parametrize(
    "polygons, keypoints, source_ids",
    [
        pytest.param([np.zeros((0, 2))], np.zeros((2, 0, 3)), None, id="fewer-polygons-than-objects"),
        pytest.param([np.zeros((0, 2))] * 2, np.zeros((2, 3, 2)), None, id="keypoints-not-xyv"),
        pytest.param([np.zeros((0, 2))] * 2, np.zeros((3, 1, 3)), None, id="keypoints-wrong-count"),
        pytest.param([np.zeros((0, 2))] * 2, np.zeros((2, 0, 3)), [1, 2, 3], id="ids-wrong-count"),
    ],
)
def test_inconsistent_shapes_are_rejected(polygons, keypoints, source_ids):
    with pytest.raises(MtdataError):
        ImageLabels((10, 10), [0, 1], np.zeros((2, 4)), polygons, keypoints, source_ids)


def test_empty():
    labels = ImageLabels.empty((64, 48), num_keypoints=17)
    assert len(labels) == 0
    assert labels.keypoints.shape == (0, 17, 3)
    assert labels.xyxy.shape == (0, 4)
    assert labels.resolution_wh == (64, 48)


@pytest.mark.parametrize(
    "index, expected_ids",
    [
        pytest.param(np.array([True, False, True]), [1, 3], id="boolean-mask"),
        pytest.param(np.array([2, 0]), [3, 1], id="index-array-keeps-order"),
        pytest.param(slice(1, None), [2, 3], id="slice"),
        pytest.param(1, [2], id="single-index-stays-a-record"),
        pytest.param(np.array([], dtype=int), [], id="nothing"),
    ],
)
def test_selection(index, expected_ids):
    labels = three_objects()
    picked = labels[index]
    assert picked.source_ids.tolist() == expected_ids
    assert len(picked.polygons) == len(expected_ids) == picked.keypoints.shape[0] == len(picked.xyxy)
    for i, source_id in enumerate(expected_ids):
        original = source_id - 1
        np.testing.assert_array_equal(picked.polygons[i], labels.polygons[original])
        np.testing.assert_array_equal(picked.keypoints[i], labels.keypoints[original])
        assert picked.class_id[i] == labels.class_id[original]


def test_selection_does_not_change_the_source():
    labels = three_objects()
    before = labels.keypoints.copy()
    picked = labels[np.array([0])]
    picked.keypoints[0, 0, 0] = 99
    np.testing.assert_array_equal(labels.keypoints, before)


def test_has_polygon_and_labeled_keypoints():
    labels = three_objects()
    assert labels.has_polygon().tolist() == [True, False, True]
    assert labels.labeled_keypoint_count().tolist() == [2, 0, 1]
    assert make_labels([square(0, 0, 1)]).labeled_keypoint_count().tolist() == [0]


def test_with_keypoints_pads_with_absent_points_and_cuts():
    labels = three_objects()
    padded = labels.with_keypoints(4)
    assert padded.keypoints.shape == (3, 4, 3)
    np.testing.assert_array_equal(padded.keypoints[:, :2], labels.keypoints)
    assert not padded.keypoints[:, 2:].any()
    cut = labels.with_keypoints(1)
    np.testing.assert_array_equal(cut.keypoints, labels.keypoints[:, :1])


def test_concatenate_pads_keypoints_and_skips_empty_parts():
    a = three_objects()
    b = make_labels([square(1, 1, 2)], [4])
    joined = ImageLabels.concatenate([a, ImageLabels.empty((100, 80), 7), b], (100, 80), num_keypoints=2)
    assert len(joined) == 4
    assert joined.class_id.tolist() == [0, 1, 0, 4]
    assert joined.keypoints.shape == (4, 2, 3)
    np.testing.assert_array_equal(joined.keypoints[3], np.zeros((2, 3)))
    np.testing.assert_array_equal(joined.polygons[3], b.polygons[0])


def test_concatenate_nothing_is_empty():
    joined = ImageLabels.concatenate([], (5, 5), num_keypoints=3)
    assert len(joined) == 0 and joined.keypoints.shape == (0, 3, 3)
