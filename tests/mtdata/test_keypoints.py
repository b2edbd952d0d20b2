"""flip_idx from keypoint names, OKS sigmas and OKS."""

from __future__ import annotations

import numpy as np
import pytest

from mtdata.keypoints import COCO_PERSON_SIGMAS, default_sigmas, derive_flip_idx, object_keypoint_similarity
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
    assert default_sigmas(0) == []


def test_oks_agrees_with_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    sigmas = np.array([0.026, 0.025, 0.035, 0.079, 0.072])
    gt = np.array([[30, 40, 2], [50, 42, 2], [0, 0, 0], [45, 80, 1], [60, 90, 2]], dtype=np.float64)
    area = 900.0
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "figure", "keypoints": list("abcde"), "skeleton": []}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area,
                         "bbox": [25, 35, 40, 60], "keypoints": gt.reshape(-1).tolist(), "num_keypoints": 4}],
    }
    coco.createIndex()
    for noise in (0.0, 2.0, 8.0):
        pred = gt[:, :2] + rng.normal(0, noise, size=(5, 2))
        detections = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0,
                                    "keypoints": np.concatenate([pred, np.ones((5, 1))], 1).reshape(-1).tolist()}])
        evaluation = COCOeval(coco, detections, "keypoints")
        evaluation.params.kpt_oks_sigmas = sigmas
        evaluation._prepare()
        expected = evaluation.computeOks(1, 1)[0, 0]
        assert object_keypoint_similarity(pred, gt, area, sigmas) == pytest.approx(expected, abs=1e-9)
    assert object_keypoint_similarity(gt[:, :2], np.zeros((5, 3)), area, sigmas) is None



def test_oks_agrees_with_ultralytics_kpt_iou():
    """ultralytics' kpt_iou (what mttrain's validator scores poses with) and this OKS are one formula."""
    torch = pytest.importorskip("torch")
    kpt_iou = pytest.importorskip("ultralytics.utils.metrics").kpt_iou

    rng = np.random.default_rng(1)
    sigmas = np.array(COCO_PERSON_SIGMAS)
    gt = np.concatenate([rng.uniform(0, 300, (3, 17, 2)), rng.choice([0, 1, 2], (3, 17, 1))], axis=2)
    gt[0, :, 2] = 2  # all labelled
    pred = gt[:, :, :2][None] + rng.normal(0, 6, (2, 3, 17, 2))  # two predictions per label
    areas = np.array([900.0, 2500.0, 12000.0])
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    want = kpt_iou(as_tensor(gt), as_tensor(pred.reshape(6, 17, 2)), sigma=sigmas.tolist(), area=as_tensor(areas)).numpy()
    for i in range(3):
        for j in range(6):
            got = object_keypoint_similarity(pred.reshape(6, 17, 2)[j], gt[i], areas[i], sigmas)
            assert got == pytest.approx(want[i, j], rel=1e-6)  # kpt_iou adds eps 1e-7 to the area and the count


def test_box_area_factor_is_ultralytics_and_sigmas_are_its_oks_sigma():
    from mtdata.keypoints import BOX_AREA_FACTOR

    metrics = pytest.importorskip("ultralytics.utils.metrics")
    # ultralytics' copy is float32 (0.26 / 10 in float32: one float32 step off in 5 of 17); pycocotools' is float64
    np.testing.assert_allclose(COCO_PERSON_SIGMAS, metrics.OKS_SIGMA, rtol=1e-6)
    assert BOX_AREA_FACTOR == 0.53
