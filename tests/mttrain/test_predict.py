"""One NMS: every kept detection keeps its own mask and keypoints; classes without keypoints get none."""

from types import SimpleNamespace

import numpy as np
import torch

from mttrain._ultralytics import ops
from mttrain.predict import MultiTaskPredictor, result_rows
from mttrain.val import MultiTaskValidator

NM, K = 32, 5


def raw_predictions():
    """Three anchors on a 64-px input: two overlapping class-0 boxes (NMS keeps the first) and one class-1 box.

    Each anchor's mask coefficients pick its own prototype channel, and its keypoints sit at its own spot.
    """
    rows = []
    for (cx, cy), cls, score, channel, point in (
        ((16, 16), 0, 0.9, 0, (12, 12)),
        ((18, 18), 0, 0.8, 1, (50, 50)),  # suppressed by the first
        ((48, 48), 1, 0.7, 2, (47, 47)),
    ):
        scores = [0.0, 0.0]
        scores[cls] = score
        coefficients = np.zeros(NM)
        coefficients[channel] = 1.0
        keypoints = np.array([[point[0], point[1], 0.9]] * K).reshape(-1)
        rows.append([cx, cy, 16, 16, *scores, *coefficients, *keypoints])
    y = torch.tensor(rows, dtype=torch.float32).T[None]  # (1, 4 + 2 + NM + 3K, 3)
    proto = torch.full((1, NM, 16, 16), -10.0)
    proto[0, 0, 0:8, 0:8] = 10.0  # channel 0 fills the top-left quarter
    proto[0, 1, 0:16, 0:16] = 10.0  # channel 1 fills everything (the suppressed anchor's mask)
    proto[0, 2, 8:16, 8:16] = 10.0  # channel 2 fills the bottom-right quarter
    return y, proto


def test_validator_postprocess_keeps_each_detections_own_mask_and_keypoints():
    validator = MultiTaskValidator(args=dict(conf=0.25, iou=0.5))
    validator.nc, validator.end2end, validator.kpt_shape = 2, False, [K, 3]
    validator.process = ops.process_mask
    y, proto = raw_predictions()
    (pred,) = validator.postprocess(((y, proto), {}))
    assert pred["cls"].tolist() == [0.0, 1.0]
    assert torch.allclose(pred["keypoints"][0, :, :2], torch.tensor([12.0, 12.0]))
    assert torch.allclose(pred["keypoints"][1, :, :2], torch.tensor([47.0, 47.0]))
    masks = pred["masks"]  # at prototype resolution (1/4 of the input), cropped to each box
    half = masks.shape[-1] // 2
    assert masks[0, :half, :half].sum() > 0 and masks[0, half:, half:].sum() == 0
    assert masks[1, half:, half:].sum() > 0 and masks[1, :half, :half].sum() == 0


def test_predictor_result_drops_keypoints_of_classes_without_them():
    predictor = MultiTaskPredictor(overrides=dict(conf=0.25))
    predictor.model = SimpleNamespace(kpt_shape=(K, 3), kpt_names={0: ["a", "b", "c", "d", "e"]}, names={0: "figure", 1: "disc"})
    y, proto = raw_predictions()
    keep = [0, 2]
    rows = y[0].T[keep]
    pred = torch.cat([ops.xywh2xyxy(rows[:, :4]), rows[:, 4:6].max(1, keepdim=True).values,
                      rows[:, 4:6].argmax(1, keepdim=True).float(), rows[:, 6:]], dim=1)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    result = predictor.construct_result(pred, torch.zeros(1, 3, 64, 64), image, "x.jpg", proto[0])
    assert result.boxes.cls.tolist() == [0.0, 1.0]
    assert (result.keypoints.conf[0] > 0.5).all()
    assert (result.keypoints.conf[1] == 0).all() and (result.keypoints.xy[1] == 0).all()
    rows_text = result_rows(result, keypoint_classes=[0])
    assert len(rows_text) == 2
    figure, disc = (line.split() for line in rows_text)
    assert figure[0] == "0" and figure[3] == "2"  # keypoint 1 visible
    assert disc[0] == "1" and (len(disc) - 1) % 2 == 0  # polygon only
