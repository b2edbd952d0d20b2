"""ImageLabels and ObjectBatch: shapes checked once, selection, padding, concatenation, batch <-> per-image round trips."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.errors import MtdataError
from mtdata.records import ImageLabels, ObjectBatch
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


# --- ObjectBatch ------------------------------------------------------------------------------


def two_images() -> list[ImageLabels]:
    """Image 0: three objects (one without a polygon) with 2 keypoints each; image 1: one object, no keypoints."""
    return [three_objects(), make_labels([square(1, 1, 2)], [4])]


def assert_same_labels(a: ImageLabels, b: ImageLabels) -> None:
    assert a.resolution_wh == b.resolution_wh
    assert a.class_id.tolist() == b.class_id.tolist() and a.source_ids.tolist() == b.source_ids.tolist()
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert len(a.polygons) == len(b.polygons)
    for p, q in zip(a.polygons, b.polygons):
        np.testing.assert_array_equal(p, q)


def test_batch_shapes_are_normalized():
    batch = ObjectBatch([7, 7], [1, 2], [[0, 0, 1, 1], [1, 1, 2, 2]], [0, 3, 3], [[0, 0], [1, 0], [1, 1]], np.zeros((2, 0, 3)))
    assert batch.image.dtype == batch.class_id.dtype == batch.polygon_offsets.dtype == np.int64
    assert batch.xyxy.shape == (2, 4) and batch.polygon_xy.shape == (3, 2) and batch.keypoints.shape == (2, 0, 3)
    assert batch.source_ids.tolist() == [-1, -1]  # no source: -1
    assert len(batch) == 2 and batch.num_keypoints == 0
    assert batch.polygon(0).shape == (3, 2) and batch.polygon(1).shape == (0, 2)


@pytest.mark.parametrize(
    "image, offsets, points, keypoints, source_ids",
    [
        pytest.param([0], [0, 3, 3], np.zeros((3, 2)), np.zeros((2, 0, 3)), None, id="fewer-images-than-objects"),
        pytest.param([0, 0], [0, 3], np.zeros((3, 2)), np.zeros((2, 0, 3)), None, id="offsets-one-short"),
        pytest.param([0, 0], [1, 3, 3], np.zeros((3, 2)), np.zeros((2, 0, 3)), None, id="offsets-not-from-zero"),
        pytest.param([0, 0], [0, 3, 4], np.zeros((3, 2)), np.zeros((2, 0, 3)), None, id="offsets-past-the-points"),
        pytest.param([0, 0], [0, 3, 3], np.zeros((3, 2)), np.zeros((2, 3, 2)), None, id="keypoints-not-xyv"),
        pytest.param([0, 0], [0, 3, 3], np.zeros((3, 2)), np.zeros((3, 1, 3)), None, id="keypoints-wrong-count"),
        pytest.param([0, 0], [0, 3, 3], np.zeros((3, 2)), np.zeros((2, 0, 3)), [1, 2, 3], id="ids-wrong-count"),
    ],
)
def test_batch_inconsistent_shapes_are_rejected(image, offsets, points, keypoints, source_ids):
    with pytest.raises(MtdataError):
        ObjectBatch(image, [0, 1], np.zeros((2, 4)), offsets, points, keypoints, source_ids)


def test_batch_empty():
    batch = ObjectBatch.empty(num_keypoints=17)
    assert len(batch) == 0 and batch.keypoints.shape == (0, 17, 3) and batch.polygon_offsets.tolist() == [0]


@pytest.mark.parametrize(
    "images, keys",
    [
        pytest.param(two_images(), None, id="two-images-keyed-by-position"),
        pytest.param(two_images(), [42, 7], id="keyed-by-coco-id"),
        pytest.param([make_labels([])] * 2 + two_images()[1:], [1, 2, 3], id="empty-images"),
        pytest.param([make_labels([np.zeros((0, 2))] * 2)], None, id="no-polygon-at-all"),
        pytest.param([], None, id="no-image"),
    ],
)
def test_batch_round_trips_through_per_image_records(images, keys):
    batch = ObjectBatch.from_image_labels(images, keys)
    keys = list(range(len(images))) if keys is None else keys
    assert len(batch) == sum(len(labels) for labels in images)
    assert batch.num_keypoints == max((labels.num_keypoints for labels in images), default=0)
    for key, labels in zip(keys, images):
        assert_same_labels(batch.for_image(key, labels.resolution_wh), labels.with_keypoints(batch.num_keypoints))


def test_for_image_of_an_image_without_objects_is_empty():
    view = ObjectBatch.from_image_labels(two_images()).for_image(5, (10, 10))
    assert len(view) == 0 and view.keypoints.shape == (0, 2, 3) and view.resolution_wh == (10, 10)


@pytest.mark.parametrize(
    "index, expected_ids",
    [
        pytest.param(np.array([True, False, True, True]), [1, 3, 1], id="boolean-mask"),
        pytest.param(np.array([3, 0, 1]), [1, 1, 2], id="index-array-keeps-order"),
        pytest.param(slice(1, 3), [2, 3], id="slice"),
        pytest.param(2, [3], id="single-index-stays-a-batch"),
        pytest.param(np.array([], dtype=int), [], id="nothing"),
    ],
)
def test_batch_selection(index, expected_ids):
    batch = ObjectBatch.from_image_labels(two_images())
    picked = batch.select(index)
    original = np.arange(len(batch))[index].reshape(-1)
    assert picked.source_ids.tolist() == expected_ids
    assert picked.image.tolist() == batch.image[original].tolist()
    assert len(picked.polygon_offsets) == len(expected_ids) + 1
    for i, j in enumerate(original.tolist()):
        np.testing.assert_array_equal(picked.polygon(i), batch.polygon(j))
        np.testing.assert_array_equal(picked.keypoints[i], batch.keypoints[j])
        np.testing.assert_array_equal(picked.xyxy[i], batch.xyxy[j])


def test_batch_selection_does_not_change_the_source():
    batch = ObjectBatch.from_image_labels(two_images())
    before = batch.polygon_xy.copy()
    batch.select(np.array([0])).polygon_xy[0, 0] = 99
    np.testing.assert_array_equal(batch.polygon_xy, before)


@pytest.mark.parametrize(
    "num_keypoints, expected_k",
    [
        pytest.param(None, 2, id="largest-k-by-default"),
        pytest.param(4, 4, id="padded-with-absent-points"),
        pytest.param(1, 1, id="cut"),
    ],
)
def test_batch_concatenate(num_keypoints, expected_k):
    first, second = two_images()
    a, b = ObjectBatch.from_image_labels([first]), ObjectBatch.from_image_labels([second], [1])
    joined = ObjectBatch.concatenate([a, ObjectBatch.empty(1), b], num_keypoints)  # an empty part adds nothing
    assert joined.keypoints.shape == (4, expected_k, 3)
    assert joined.image.tolist() == [0, 0, 0, 1] and joined.class_id.tolist() == [0, 1, 0, 4]
    k = min(2, expected_k)
    np.testing.assert_array_equal(joined.keypoints[:3, :k], first.keypoints[:, :k])
    assert not joined.keypoints[:, k:].any() and not joined.keypoints[3].any()
    assert_same_labels(joined.for_image(1, second.resolution_wh), second.with_keypoints(expected_k))
    np.testing.assert_array_equal(joined.polygon(2), first.polygons[2])


def test_batch_concatenate_nothing_is_empty():
    joined = ObjectBatch.concatenate([], num_keypoints=3)
    assert len(joined) == 0 and joined.keypoints.shape == (0, 3, 3)
