"""Fixtures for the mttrain tests: a small multitask dataset on disk, made by mtdata itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")


def make_multitask_dataset(out: Path, images: int, size: int, seed: int) -> Path:
    """``mtdata synth`` + ``mtdata convert`` into ``out``; returns the data.yaml path."""
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth

    coco = out / "coco"
    write_synth(coco, images=images, size=size, seed=seed)
    convert_coco(
        [coco / "annotations" / "instances_train.json", coco / "annotations" / "instances_val.json"],
        out / "multitask", images_dir=coco / "images",
    )
    return out / "multitask" / "data.yaml"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """data.yaml of a 16-image, 96-px multitask dataset (figure: 5 keypoints, disc: none); read-only."""
    return make_multitask_dataset(tmp_path_factory.mktemp("mt-tiny"), images=16, size=96, seed=5)


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained yolov8n multitask model for 2 classes and 5 keypoints (class 0 has keypoints)."""
    from mttrain.nn.model import MultiTaskModel

    model = MultiTaskModel("yolov8n-multitask.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)
    model.kpt_names = {0: ["head", "left_hand", "right_hand", "left_foot", "right_foot"]}
    return model


@pytest.fixture(scope="session")
def tiny_model26():
    """An untrained yolo26n multitask model (end-to-end head) for 2 classes and 5 keypoints (class 0 has them)."""
    from mttrain.nn.model import MultiTaskModel

    model = MultiTaskModel("yolo26n-multitask.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)
    model.kpt_names = {0: ["head", "left_hand", "right_hand", "left_foot", "right_foot"]}
    return model


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory):
    """A 1-epoch run of our trainer at 64 px: {"best": best.pt, "resumable": a copy of last.pt as saved mid-run
    (optimizer and epoch kept, so it can resume), "project": the runs folder}; read-only."""
    import shutil

    from mttrain import MultiTaskYOLO

    project = tmp_path_factory.mktemp("trained-runs")
    resumable = project / "resumable-last.pt"
    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.add_callback("on_model_save", lambda trainer: shutil.copy(trainer.last, resumable))
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, device="cpu", project=str(project),
                name="train", plots=False, verbose=False, exist_ok=True)
    return {"best": project / "train" / "weights" / "best.pt", "resumable": resumable, "project": project}


@pytest.fixture(scope="session")
def trained_run26(tiny_data, tmp_path_factory):
    """A 1-epoch `mttrain fit --model yolo26n-multitask.yaml` run at 64 px through the command line:
    {"best": best.pt, "project": the runs folder, "output": the command's output}; read-only."""
    from typer.testing import CliRunner

    from mttrain.cli import app

    project = tmp_path_factory.mktemp("trained-runs26")
    result = CliRunner().invoke(app, ["fit", str(tiny_data), "--model", "yolo26n-multitask.yaml", "--epochs", "1",
                                      "--imgsz", "64", "--batch", "8", "--workers", "0", "--project", str(project),
                                      "plots=False"])
    assert result.exit_code == 0, result.output
    return {"best": project / "train" / "weights" / "best.pt", "project": project, "output": result.output}
