"""The Python API in the ultralytics manner: MultiTaskYOLO(...).train / .val / .predict / model(img)."""

import numpy as np
import pytest
import torch

from mttrain import MultiTaskYOLO


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A model trained for 2 epochs through the API (too short to learn: the API is what is under test)."""
    project = tmp_path_factory.mktemp("api-runs")
    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.train(data=str(tiny_data), epochs=2, imgsz=64, batch=8, workers=0, device="cpu", project=str(project),
                name="train", plots=False, verbose=False)
    return model, project / "train"


def test_yaml_model_is_a_torch_module():
    model = MultiTaskYOLO("yolo11n-multitask.yaml")
    assert isinstance(model.model, torch.nn.Module) and model.task == "multitask"


def test_train_writes_the_run_folder(trained):
    _, run = trained
    for name in ("weights/best.pt", "weights/last.pt", "results.csv", "args.yaml"):
        assert (run / name).is_file()


def test_val_exposes_box_seg_and_pose_metrics(trained, tiny_data):
    model, run = trained
    metrics = model.val(data=str(tiny_data), imgsz=64, plots=False, project=str(run.parent), name="val", exist_ok=True)
    for metric in (metrics.box, metrics.seg, metrics.pose):
        assert 0.0 <= metric.map <= 1.0
    assert "metrics/mAP50-95(P)" in metrics.results_dict
    assert (run.parent / "val" / "metrics.json").is_file()


def test_loaded_checkpoint_predicts_boxes_masks_and_keypoints(trained, tiny_data):
    _, run = trained
    model = MultiTaskYOLO(run / "weights" / "best.pt")
    assert model.task == "multitask" and model.model.kpt_names
    image = np.full((96, 96, 3), 120, dtype=np.uint8)
    (result,) = model(image, imgsz=64, conf=0.0001, verbose=False)
    assert result.boxes is not None
    if len(result.boxes):
        assert result.masks is not None and result.keypoints is not None
        assert result.keypoints.data.shape[1:] == (5, 3)


def test_missing_weights_fail_without_network(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        MultiTaskYOLO(tmp_path / "best.pt")
