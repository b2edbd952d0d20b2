"""flip_idx from keypoint names, and OKS sigmas."""

from __future__ import annotations

import pytest

from mtdata.keypoints import COCO_PERSON_SIGMAS, default_sigmas, derive_flip_idx
from mtdata.synth import COCO_PERSON_KEYPOINTS, FIGURE_KEYPOINTS


@pytest.mark.parametrize(
    "names, flip_idx, unpaired",
    [
        pytest.param(["nose", "left_eye", "right_eye"], [0, 2, 1], [], id="left_-right_"),
        pytest.param(["l_knee", "r_knee", "pelvis"], [1, 0, 2], [], id="l_-r_"),
        pytest.param(["L_knee", "R_knee"], [1, 0], [], id="L_-R_"),
        pytest.param(["LeftHand", "RightHand", "Head"], [1, 0, 2], [], id="CamelCase"),
        pytest.param(["Left Hand", "Right Hand"], [1, 0], [], id="Left-space"),
        pytest.param(["LEFT_EYE", "RIGHT_EYE"], [1, 0], [], id="upper-case"),
        pytest.param(["eye_left", "eye_right"], [1, 0], [], id="suffix-left"),
        pytest.param(["hand-l", "hand-r"], [1, 0], [], id="suffix-l"),
        pytest.param(["a", "b", "c"], [0, 1, 2], [], id="no-sides-identity"),
        pytest.param(["left_eye", "nose"], [0, 1], ["left_eye"], id="left-without-partner"),
        pytest.param(["leftover", "righteous"], [0, 1], ["leftover", "righteous"], id="glued-prefix-counts-as-a-side"),
        pytest.param(["lefteye", "righteye"], [1, 0], [], id="glued-lowercase"),
        pytest.param(["lip", "rib"], [0, 1], [], id="l-and-r-initials-are-not-sides"),
        pytest.param(COCO_PERSON_KEYPOINTS, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15], [], id="coco-person"),
        pytest.param(FIGURE_KEYPOINTS, [0, 2, 1, 4, 3], [], id="synth-figure"),
        pytest.param([], [], [], id="no-keypoints"),
    ],
)
def test_derive_flip_idx(names, flip_idx, unpaired):
    got, got_unpaired = derive_flip_idx(names)
    assert got == flip_idx
    assert got_unpaired == unpaired
    assert all(got[got[i]] == i for i in range(len(got)))  # always an involution


def test_inconsistent_pairs_fall_back_to_identity():
    # two lefts map to one right: no consistent pairing exists
    flip, _ = derive_flip_idx(["left_eye", "right_eye", "Left_eye"])
    assert sorted(flip) == [0, 1, 2] and all(flip[flip[i]] == i for i in range(3))


def test_sigmas():
    assert len(COCO_PERSON_SIGMAS) == 17
    assert COCO_PERSON_SIGMAS[0] == pytest.approx(0.026)  # nose, pycocotools cocoeval
    assert default_sigmas(17) == COCO_PERSON_SIGMAS
    assert default_sigmas(4) == [0.25] * 4
