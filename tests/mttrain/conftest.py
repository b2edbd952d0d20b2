"""Fixtures for the mttrain tests: a small multitask dataset on disk, made by mtdata itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")


def make_multitask_dataset(out: Path, images: int, size: int, seed: int) -> Path:
    """``mtdata synth`` + ``mtdata convert`` into ``out``; returns the data.yaml path."""
    from mtdata.convert import convert_coco
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
