"""One NMS: every kept detection keeps its own mask and keypoints; classes without keypoints get none."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
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


def test_predictor_and_validator_share_one_postprocess():
    """Same raw output, same image size: the validator's detections carry the predictor's keypoints, zeros for
    the class without keypoints included (its val_batch*_pred.jpg plots drew them before)."""
    validator = MultiTaskValidator(args=dict(conf=0.25, iou=0.5))
    validator.nc, validator.end2end, validator.kpt_shape = 2, False, [K, 3]
    validator.keypoint_classes = [0]
    validator.process = ops.process_mask
    y, proto = raw_predictions()
    (pred,) = validator.postprocess(((y, proto), {}))
    assert pred["cls"].tolist() == [0.0, 1.0]
    assert (pred["keypoints"][1] == 0).all(), "class 1 has no keypoints: nothing to plot or score"
    assert torch.allclose(pred["keypoints"][0, :, :2], torch.tensor([12.0, 12.0]))

    predictor = MultiTaskPredictor(overrides=dict(conf=0.25))
    predictor.model = SimpleNamespace(kpt_shape=(K, 3), kpt_names={0: list("abcde")}, names={0: "figure", 1: "disc"})
    rows = torch.cat([pred["bboxes"], pred["conf"][:, None], pred["cls"][:, None], y[0].T[[0, 2], 6:]], dim=1)
    result = predictor.construct_result(rows, torch.zeros(1, 3, 64, 64), np.zeros((64, 64, 3), np.uint8), "x.jpg", proto[0])
    assert torch.equal(result.keypoints.data, pred["keypoints"])

    from mttrain import postprocess

    calls = []
    original = postprocess.split_extra

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    import mttrain.predict as predict_module
    import mttrain.val as val_module

    predict_module.split_extra, val_module.split_extra = spy, spy
    try:
        validator.postprocess(((y, proto), {}))
        predictor.construct_result(rows, torch.zeros(1, 3, 64, 64), np.zeros((64, 64, 3), np.uint8), "x.jpg", proto[0])
    finally:
        predict_module.split_extra = val_module.split_extra = original
    assert len(calls) == 2  # one function, both call it


def layout():
    from mtdata.formats.yolo.rows import LabelLayout

    return LabelLayout("multitask", num_classes=2, num_keypoints=K, keypoint_classes=frozenset({0}))


def test_results_save_txt_writes_multitask_rows_mtdata_reads(tmp_path):
    from mtdata.formats.yolo.rows import read_label_file

    predictor = MultiTaskPredictor(overrides=dict(conf=0.25))
    predictor.model = SimpleNamespace(kpt_shape=(K, 3), kpt_names={0: list("abcde")}, names={0: "figure", 1: "disc"})
    y, proto = raw_predictions()
    rows = y[0].T[[0, 2]]
    pred = torch.cat([ops.xywh2xyxy(rows[:, :4]), rows[:, 4:6].max(1, keepdim=True).values,
                      rows[:, 4:6].argmax(1, keepdim=True).float(), rows[:, 6:]], dim=1)
    result = predictor.construct_result(pred, torch.zeros(1, 3, 64, 64), np.zeros((64, 64, 3), np.uint8), "x.jpg", proto[0])
    file = Path(result.save_txt(tmp_path / "labels" / "x.txt"))
    parsed = read_label_file(file, layout())
    assert not parsed.problems, parsed.problems
    figure, disc = parsed.rows
    assert (figure.class_id, disc.class_id) == (0, 1)
    assert figure.keypoints_xyn.shape == (K, 3) and (figure.keypoints_xyn[:, 2] == 2).all()
    assert np.allclose(figure.keypoints_xyn[:, :2], 12 / 64, atol=1e-5)
    assert disc.keypoints_xyn is None and len(disc.polygon_xyn) >= 3
    assert file.read_text() == "".join(r + "\n" for r in result_rows(result, [0]))
    result.save_txt(file)  # a second save replaces, never appends
    assert len(read_label_file(file, layout()).rows) == 2


# --- YOLO26, nms=False: the one-to-one branch's top-k rows, no NMS ----------------------------------------------

@pytest.mark.slow
def test_yolo26_nms_free_predict_keeps_each_rows_own_mask_and_keypoints(trained_run26, tiny_data):
    """Every result of ``predict(nms=False)`` is one of the one-to-one branch's rows, with that row's mask and
    keypoints; objects of the class without keypoints come back with none visible."""
    import cv2

    from mttrain import MultiTaskYOLO

    image = next((tiny_data.parent / "images" / "val").iterdir())
    im = cv2.resize(cv2.imread(str(image)), (64, 64))  # the model's size: the letterbox changes nothing
    model = MultiTaskYOLO(trained_run26["best"])
    result = model.predict(im, imgsz=64, conf=0.0001, nms=False, save=False, verbose=False)[0]
    fused = model.predictor.model.model  # the module predict ran: fused to the one-to-one branch
    assert fused.end2end and getattr(fused.model[-1], "cv2", None) is None
    x = torch.from_numpy(im[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        (rows, proto), _ = fused(x)
    rows = rows[0][rows[0][:, 4] > 0.0001]
    masks = ops.process_mask(proto[0], rows[:, 6 : 6 + NM], rows[:, :4], (64, 64), upsample=True)
    rows, masks = rows[masks.amax((-2, -1)) > 0], masks[masks.amax((-2, -1)) > 0]  # the predictor drops empty masks
    boxes = result.boxes.data
    assert len(boxes) == len(rows) > 1  # every row above conf, in the branch's top-k order: no NMS
    clipped = rows[:, :6].clone()
    clipped[:, :4] = clipped[:, :4].clamp(0, 64)  # Results clip boxes to the image
    unused = set(range(len(rows)))  # near-tied scores of a barely trained model may come in another order
    for det, mask, keypoints in zip(boxes, result.masks.data, result.keypoints.data):
        own = row_keypoints = None
        for j in sorted(unused):
            row_keypoints = rows[j, 6 + NM :].view(K, 3) if int(det[5]) == 0 else torch.zeros(K, 3)
            if (torch.allclose(clipped[j], det, atol=1e-4) and torch.equal(masks[j], mask)
                    and torch.allclose(keypoints, row_keypoints, atol=1e-3)):
                own = j
                break
        assert own is not None, f"no row has detection {det.tolist()}'s box, mask and keypoints"
        unused.remove(own)
        if int(det[5]) == 1:  # disc: no keypoints
            assert float(keypoints[:, 2].abs().sum()) == 0
    assert {0, 1} <= set(boxes[:, 5].int().tolist()), "both classes among the rows: both cases checked"
    with_nms = model.predict(im, imgsz=64, conf=0.0001, nms=None, save=False, verbose=False)[0]  # rebuilds (as ultralytics)
    assert not model.predictor.model.end2end and len(with_nms.boxes) != len(boxes)  # ultralytics' default: NMS
