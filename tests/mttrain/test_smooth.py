"""The one-euro keypoint smoother: less jitter at rest, little lag in motion, one filter per track."""

from __future__ import annotations

import numpy as np
import torch

from mttrain.predict import MultiTaskResults
from mttrain.smooth import KeypointSmoother, OneEuro


def test_jitter_at_rest_is_smoothed_and_motion_followed():
    rng = np.random.default_rng(0)
    f = OneEuro()
    noisy = 50 + rng.normal(0, 2, size=200)
    smoothed = np.array([f(np.array([v]), t)[0] for t, v in enumerate(noisy)])
    assert np.std(smoothed[50:]) < 0.5 * np.std(noisy[50:])  # jitter of a still point: halved or better
    g = OneEuro()
    ramp = 3.0 * np.arange(100)  # 3 px a frame
    followed = np.array([g(np.array([v]), t)[0] for t, v in enumerate(ramp)])
    assert np.abs(followed[30:] - ramp[30:]).max() < 10  # about 2-3 frames of lag on steady motion


def test_first_value_and_a_restart_pass_through():
    f = OneEuro()
    assert f(np.array([1.0, 2.0]), 5)[1] == 2.0
    assert f(np.array([9.0, 9.0]), 5)[0] == 9.0  # same time again (a new video): starts over


def result(frame: int, x: float, track_ids=(1, 2)) -> MultiTaskResults:
    boxes = torch.tensor([[0.0, 0, 60, 60, track_ids[0], 0.9, 0], [0, 0, 60, 60, track_ids[1], 0.9, 1]])
    kpts = torch.zeros((2, 5, 3))
    kpts[0, :, 0], kpts[0, :, 1], kpts[0, :, 2] = x, 30.0, 0.9
    return MultiTaskResults(np.zeros((64, 64, 3), np.uint8), path="clip.avi", names={0: "figure", 1: "disc"},
                            boxes=boxes, keypoints=kpts, keypoint_classes=[0], frame=frame)


def test_each_track_is_smoothed_on_its_own_and_classes_without_keypoints_are_left_alone():
    smoother = KeypointSmoother()
    xs = []
    for frame, x in enumerate([30.0, 34.0, 26.0, 34.0, 26.0, 34.0], 1):
        r = result(frame, x)
        smoother.apply(r)
        xs.append(float(r.keypoints.data[0, 0, 0]))
        assert r.keypoints.data[1].abs().sum() == 0  # the disc has no keypoints, before and after
        assert torch.all(r.keypoints.data[0, :, 2] == 0.9)  # confidences are kept
    assert max(xs[2:]) - min(xs[2:]) < 4  # +-4 px of jitter shrinks
    fresh = result(7, 80.0, track_ids=(5, 2))  # a new track starts where its detection is
    smoother.apply(fresh)
    assert float(fresh.keypoints.data[0, 0, 0]) == 80.0
