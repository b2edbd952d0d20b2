"""Batch plots draw the dataset's skeleton (ultralytics draws limbs only for 17-point COCO poses)."""

import numpy as np
import torch
from ultralytics.utils.plotting import plot_images

from mttrain._ultralytics import _SKELETONS, register_skeleton


def draw(num_points: int) -> np.ndarray:
    points = [[20.0, 20.0, 1.0], [100.0, 100.0, 1.0], [20.0, 100.0, 0.0], [0.0, 0.0, 0.0]][:num_points]
    labels = {
        "img": torch.zeros(1, 3, 128, 128),
        "cls": torch.zeros(1, 1),
        "bboxes": torch.tensor([[0.5, 0.5, 0.8, 0.8]]),
        "keypoints": torch.tensor([points]) / torch.tensor([128.0, 128.0, 1.0]),
        "batch_idx": torch.zeros(1),
    }
    return plot_images(labels, paths=["x.jpg"], save=False, max_subplots=1, threaded=False)


def test_registered_skeleton_is_drawn_between_visible_points(monkeypatch):
    monkeypatch.setattr("mttrain._ultralytics._SKELETONS", {})
    plain = draw(3)
    register_skeleton(3, [[0, 1], [0, 2]])
    import mttrain._ultralytics as mu

    assert mu._SKELETONS == {3: [[0, 1], [0, 2]]}
    drawn = draw(3)
    diff = np.abs(plain.astype(int) - drawn.astype(int)).sum(-1) > 0
    ys, xs = np.nonzero(diff)
    assert diff.sum() > 50  # the 0-1 edge: a diagonal between (20, 20) and (100, 100)
    assert np.all(np.abs(ys - xs) < 12)  # nothing toward the invisible third point at (20, 100)
    other = draw(4)  # another keypoint count: no skeleton registered for it
    assert np.array_equal(other, plain)


def test_coco_layout_keeps_ultralytics_skeleton():
    register_skeleton(17, [[0, 1]])
    assert 17 not in _SKELETONS


def test_a_malformed_skeleton_draws_no_limbs(monkeypatch):
    monkeypatch.setattr("mttrain._ultralytics._SKELETONS", {})
    import mttrain._ultralytics as mu

    for bad in ("[[0, 1]]", [[0, 9]], [[0]], [["a", "b"]], [[0.5, 1]]):
        register_skeleton(3, bad)
        assert mu._SKELETONS == {}, bad
