"""label_texts (many images at once) writes exactly what format_label_text writes image by image."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.formats.yolo.bulk import label_texts
from mtdata.formats.yolo.rows import LabelLayout, parse_label_text
from mtdata.records import ImageLabels
from tests.mtdata.oracles import format_label_text, labels_to_rows

K = 4
KEYPOINT_CLASSES = frozenset({0, 2})


def random_image(rng, n: int, wh: tuple[int, int]) -> ImageLabels:
    w, h = wh
    polygons = []
    for _ in range(n):
        points = rng.integers(3, 12)
        polygons.append(rng.uniform(-0.05, 1.05, (points, 2)) * [w, h])  # a little outside: clipped
    xyxy = np.array([np.concatenate([p.min(0), p.max(0)]) for p in polygons]).reshape(n, 4)
    keypoints = np.zeros((n, K, 3))
    keypoints[..., :2] = rng.uniform(0, 1, (n, K, 2)) * [w, h]
    keypoints[..., 2] = rng.integers(0, 3, (n, K))
    return ImageLabels(wh, rng.integers(0, 12, n), xyxy, polygons, keypoints)


@pytest.mark.parametrize("task", ["multitask", "segment", "pose"])
def test_bulk_text_equals_row_by_row_text(task):
    rng = np.random.default_rng(7)
    images = [random_image(rng, int(rng.integers(0, 6)), (int(rng.integers(20, 900)), int(rng.integers(20, 900)))) for _ in range(30)]
    layout = LabelLayout(task, num_classes=12, num_keypoints=K if task != "segment" else 0, keypoint_classes=KEYPOINT_CLASSES)
    expected = [format_label_text(labels_to_rows(labels, layout), layout).encode() for labels in images]
    index = np.concatenate([np.full(len(labels), i) for i, labels in enumerate(images)]).astype(np.int64)
    all_labels = ImageLabels.concatenate(images, (1, 1), K)
    wh = np.array([labels.resolution_wh for labels in images for _ in range(len(labels))], dtype=float).reshape(-1, 2)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in all_labels.polygons])]).astype(np.int64)
    points = np.concatenate(all_labels.polygons) if len(all_labels) else np.zeros((0, 2))
    keypoints = all_labels.keypoints if task != "segment" else all_labels.keypoints[:, :0]
    texts = label_texts(task, index, len(images), wh, all_labels.class_id, all_labels.xyxy, offsets, points, keypoints,
                        KEYPOINT_CLASSES)
    assert texts == expected
    for text in texts:  # and every row parses back
        assert parse_label_text(text.decode(), layout).problems == []


def test_objects_of_an_image_keep_their_order_when_images_interleave():
    polygons = [np.array([[0, 0], [1, 0], [1, 1]], float) * s for s in (10, 20, 30)]
    offsets = np.array([0, 3, 6, 9])
    texts = label_texts("segment", np.array([1, 0, 1]), 2, np.full((3, 2), 40.0), np.array([5, 6, 7]), np.zeros((3, 4)),
                        offsets, np.concatenate(polygons), np.zeros((3, 0, 3)), frozenset())
    assert [line.split()[0] for line in texts[1].decode().splitlines()] == ["5", "7"]
    assert texts[0].decode().startswith("6 ")
