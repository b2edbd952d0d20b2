"""COCO-standard evaluation: predictions.json in COCO's results format, COCOeval beside our own numbers.

The slow tests train the end-to-end recipe (64 synthetic images, 128 px, 25 CPU epochs, seed 0)
once and check that on its val set our Box and Mask mAP50-95 agree with pycocotools' within
0.02 and Pose within 0.03 (measured: within 0.002 on each).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from mtdata.geometry import polygon_areas
from mttrain.coco_eval import evaluate, polygons_for_targets, prediction_results, rasterize
from tests.mttrain.conftest import make_multitask_dataset

runner = CliRunner()
STAR = np.array([[20, 2], [25, 15], [38, 16], [28, 24], [32, 38], [20, 30], [8, 38], [12, 24], [2, 16], [15, 15]], float)


# --- pure parts --------------------------------------------------------------------------


def test_prediction_results_are_coco_results():
    masks = np.zeros((3, 20, 30), np.uint8)
    masks[0, 2:8, 3:9] = 1
    masks[1, 10:15, 20:28] = 1
    kpts = np.arange(3 * 2 * 3, dtype=float).reshape(3, 2, 3)
    results = prediction_results(
        np.array([[3, 2, 9, 8], [20, 10, 28, 15], [0, 0, 5, 5]]), np.array([0.9, 0.8, 0.7]), np.array([0, 1, 5]),
        masks, kpts, image_id=42, category_ids={0: 3, 1: 7}, keypoint_classes=[0],
    )
    assert len(results) == 2  # class 5 is not a category of the dataset: COCO cannot score it
    person, ball = results
    assert person["image_id"] == 42 and person["category_id"] == 3 and ball["category_id"] == 7
    assert person["bbox"] == [3.0, 2.0, 6.0, 6.0] and person["score"] == 0.9
    assert person["keypoints"] == kpts[0].reshape(-1).tolist() and "keypoints" not in ball
    for result, mask in zip(results, masks):
        rle = result["segmentation"]
        assert rle["size"] == [20, 30] and isinstance(rle["counts"], str)  # compressed, JSON-ready
        assert (mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}) == mask).all()
    json.dumps(results)


def test_target_polygons_are_paired_by_box_through_the_letterbox():
    # an image 40 x 20 letterboxed into 64 x 64: gain 1.6, padded 16 px at the top
    segments = [np.array([[0.1, 0.1], [0.4, 0.1], [0.4, 0.5]]), np.array([[0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.5, 0.9]])]
    ratio_pad = ((1.6, 1.6), (0, 16))
    scale = np.array([64.0, 32.0])
    boxes = np.array([[0.5 * 64, 0.5 * 32 + 16, 0.9 * 64, 0.9 * 32 + 16], [0.1 * 64, 0.1 * 32 + 16, 0.4 * 64, 0.5 * 32 + 16]])
    polygons = polygons_for_targets(segments, boxes, (20, 40), ratio_pad)  # targets come in the other order
    np.testing.assert_allclose(polygons[0], segments[1] * scale + [0, 16])
    np.testing.assert_allclose(polygons[1], segments[0] * scale + [0, 16])
    np.testing.assert_allclose(polygon_areas(polygons), [0.4 * 0.4 * 64 * 32, 0.5 * 0.3 * 0.4 * 64 * 32])
    assert polygons_for_targets(segments, boxes + 5, (20, 40), ratio_pad) is None  # not these objects
    assert polygons_for_targets(segments[:1], boxes, (20, 40), ratio_pad) is None


def test_ground_truth_masks_are_rasterized_as_cocoeval_does():
    masks = rasterize([STAR, STAR + 5], 48, 48)
    rle = mask_utils.frPyObjects([STAR.reshape(-1).tolist()], 48, 48)
    assert masks.shape == (2, 48, 48) and (masks[0] == mask_utils.decode(rle)[..., 0]).all()
    assert rasterize([], 8, 8).shape == (0, 8, 8)


def coco_file(path: Path) -> Path:
    """Two images; category 1 has 3 keypoints, category 2 only 2 (a model with K=3 pads it), category 5 none."""
    images = [{"id": 10, "file_name": "a.jpg", "width": 48, "height": 48}, {"id": 11, "file_name": "b.jpg", "width": 48, "height": 48}]
    anns = []
    for i, (image_id, cat, offset) in enumerate([(10, 1, 0), (10, 5, 8), (11, 2, 4), (11, 1, 6)], start=1):
        poly = STAR + offset
        ann = {"id": i, "image_id": image_id, "category_id": cat, "iscrowd": 0, "segmentation": [poly.reshape(-1).tolist()],
               "bbox": [*poly.min(0), *(poly.max(0) - poly.min(0))], "area": float(polygon_areas([poly])[0])}
        k = {1: 3, 2: 2, 5: 0}[cat]
        if k:
            ann["keypoints"] = [v for x, y in poly[:k] for v in (float(x), float(y), 2)]
            ann["num_keypoints"] = k
        anns.append(ann)
    cats = [{"id": 1, "name": "a", "keypoints": ["p", "q", "r"]}, {"id": 2, "name": "b", "keypoints": ["p", "q"]}, {"id": 5, "name": "c"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def perfect_results(gt: dict, k: int = 3) -> list[dict]:
    out = []
    for ann in gt["annotations"]:
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], 48, 48))
        result = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": ann["bbox"], "score": 0.9,
                  "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}
        if "keypoints" in ann:  # the model's K keypoints: padded with zeros past the category's own
            result["keypoints"] = (ann["keypoints"] + [0.0] * 3 * k)[: 3 * k]
        out.append(result)
    return out


def test_cocoeval_of_perfect_predictions_is_one_per_task(tmp_path):
    gt_path = coco_file(tmp_path / "gt.json")
    results = perfect_results(json.loads(gt_path.read_text()))
    scores, text = evaluate(gt_path, results, [10, 11], [1, 2, 5], sigmas=[0.1, 0.1, 0.1])
    for task in ("box", "mask", "pose"):
        assert scores[task]["map50_95"] == pytest.approx(1.0) and scores[task]["map50"] == pytest.approx(1.0), task
    assert "COCOeval keypoints, categories [1]" in text and "COCOeval keypoints, categories [2]" in text
    # a keypoint 20 px off lowers pose AP; boxes and masks do not change
    results[0]["keypoints"][0] += 20
    scores, _ = evaluate(gt_path, results, [10, 11], [1, 2, 5], sigmas=[0.1, 0.1, 0.1])
    assert scores["box"]["map50_95"] == pytest.approx(1.0) and scores["pose"]["map50_95"] < 1.0
    # images and categories outside the run are left out; no detection at all scores 0
    scores, _ = evaluate(gt_path, [], [11], [5], sigmas=None)
    assert scores["box"]["map50_95"] is None and "pose" not in scores  # no ground truth of category 5 in image 11
    scores, _ = evaluate(gt_path, [], [10, 11], [1, 2, 5], sigmas=[0.1, 0.1, 0.1])
    assert scores["box"]["map50"] == 0.0 and scores["pose"]["map50"] == 0.0


def test_save_json_never_installs_packages(tiny_data, tiny_model, tmp_path, monkeypatch):
    """ultralytics' own save_json path pip-installs faster-coco-eval; ours evaluates with pycocotools."""
    import copy

    from ultralytics.models.yolo.detect import val as detect_val
    from ultralytics.models.yolo.segment import val as segment_val

    from mttrain.val import MultiTaskValidator

    def refuse(*args, **kwargs):
        raise AssertionError(f"check_requirements{args} called")

    monkeypatch.setattr(segment_val, "check_requirements", refuse)
    monkeypatch.setattr(detect_val, "check_requirements", refuse)
    model = copy.deepcopy(tiny_model)
    model.names = {0: "figure", 1: "disc"}
    validator = MultiTaskValidator(save_dir=tmp_path / "val", args=dict(data=str(tiny_data), save_json=True, imgsz=64, batch=8, plots=False))
    validator(model=model)
    metrics = json.loads((tmp_path / "val" / "metrics.json").read_text())
    coco = metrics["coco"]
    assert coco["ground_truth_kind"] == "source" and coco["images"] == 4
    assert Path(coco["ground_truth"]).name == "instances_val.json"
    for task in ("box", "mask", "pose"):
        assert task in coco and task in metrics["ours_minus_coco"]
    results = json.loads((tmp_path / "val" / "predictions.json").read_text())
    assert {r["category_id"] for r in results} <= {3, 7}  # the source COCO's category ids
    assert "COCOeval segm" in (tmp_path / "val" / "coco_eval.txt").read_text()


# --- a trained model ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(best.pt, data.yaml): the end-to-end recipe (learns all three tasks in ~2 CPU minutes)."""
    from mttrain import MultiTaskYOLO

    root = tmp_path_factory.mktemp("coco-eval")
    data = make_multitask_dataset(root, images=64, size=128, seed=1)
    MultiTaskYOLO("yolov8n-multitask.yaml").train(
        data=str(data), epochs=25, imgsz=128, batch=8, workers=0, device="cpu", seed=0, deterministic=True,
        warmup_epochs=1, close_mosaic=5, project=str(root / "runs"), name="fit", plots=False, verbose=False,
    )
    return root / "runs" / "fit" / "weights" / "best.pt", data


def val_save_json(weights: Path, data: Path, project: Path, name: str) -> tuple[dict, str]:
    from mttrain.cli import app

    result = runner.invoke(app, ["val", str(weights), "--data", str(data), "--imgsz", "128", "--project", str(project),
                                 "--name", name, "--save-json"])
    assert result.exit_code == 0, result.output
    return json.loads((project / name / "metrics.json").read_text()), result.output


@pytest.mark.slow
def test_our_numbers_agree_with_cocoeval(trained, tmp_path):
    weights, data = trained
    metrics, output = val_save_json(weights, data, tmp_path, "val")
    coco = metrics["coco"]
    assert coco["ground_truth_kind"] == "source" and coco["images"] == 16
    for task, tolerance in (("box", 0.02), ("mask", 0.02), ("pose", 0.03)):
        assert coco[task]["map50"] > 0.25, (task, coco)  # the model learned: agreement is not 0 == 0
        assert abs(metrics[task]["map50_95"] - coco[task]["map50_95"]) <= tolerance, (task, metrics[task], coco[task])
        assert abs(metrics[task]["map50"] - coco[task]["map50"]) <= tolerance, (task, metrics[task], coco[task])
    assert "COCOeval against source ground truth" in output

    gt = COCO(coco["ground_truth"])
    results = json.loads(Path(coco["predictions"]).read_text())
    dt = gt.loadRes(results)  # pycocotools accepts the file as it is
    assert len(dt.anns) == len(results) > 0
    for r in results:
        assert r["category_id"] in (3, 7) and r["image_id"] in gt.imgs
        assert ("keypoints" in r) == (r["category_id"] == 3)  # only the figure class has keypoints
        if "keypoints" in r:
            assert len(r["keypoints"]) == 15
        assert r["segmentation"]["size"] == [128, 128]


@pytest.mark.slow
def test_without_a_source_coco_the_export_is_the_ground_truth(trained, tmp_path):
    weights, data = trained
    config = yaml.safe_load(data.read_text())
    config.pop("coco_ids")
    own = data.parent / "data_no_ids.yaml"
    own.write_text(yaml.safe_dump(config))
    metrics, _ = val_save_json(weights, own, tmp_path, "export")
    source, _ = val_save_json(weights, data, tmp_path, "source")
    coco, coco_source = metrics["coco"], source["coco"]
    assert coco["ground_truth_kind"] == "export" and Path(coco["ground_truth"]) == tmp_path / "export" / "ground_truth.json"
    gt = COCO(coco["ground_truth"])
    assert sorted(gt.getCatIds()) == [1, 2] and sorted(gt.getImgIds()) == list(range(1, 17))
    # the same objects, written by mtdata export instead of mtdata synth: the same numbers
    for task in ("box", "mask"):
        assert coco[task]["map50_95"] == pytest.approx(coco_source[task]["map50_95"], abs=0.005), task
    # OKS scales with the area: the export's is pycocotools' mask area, synth's the polygon's (within 1-2 %)
    assert coco["pose"]["map50_95"] == pytest.approx(coco_source["pose"]["map50_95"], abs=0.01)


def test_oks_areas_are_the_label_polygons_else_053_of_the_box():
    import torch

    from mtdata.keypoints import BOX_AREA_FACTOR
    from mttrain.val import MultiTaskValidator

    boxes = torch.tensor([[0, 0, 10, 10.0], [0, 0, 4, 4.0]])
    polygons = [np.array([[0, 0], [8, 0], [8, 8], [0, 8.0]]), np.zeros((0, 2))]  # the second object has none
    areas = MultiTaskValidator._oks_areas({"bboxes": boxes, "polygons": polygons})
    np.testing.assert_allclose(areas.numpy(), [64, BOX_AREA_FACTOR * 16])
    np.testing.assert_allclose(MultiTaskValidator._oks_areas({"bboxes": boxes}).numpy(), [53, 0.53 * 16])
