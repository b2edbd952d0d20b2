"""Read the data.yaml mttrain trains on, and say what to do when it is not a multitask dataset.

Light (mtdata only, no torch or ultralytics): ``mttrain fit`` calls it before the heavy imports, so a wrong
dataset is one line in a fraction of a second, not one after ultralytics has printed its arguments.
"""

from __future__ import annotations

from pathlib import Path

from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.data_yaml import DatasetConfig, read_data_yaml

MERGE = "`mtdata merge POSE SEGMENT OUT` (a pose and a segment dataset of the same images)"
CONVERT = "`mtdata convert --task multitask` (the default) on a COCO file with masks and keypoints"
ADVICE = {
    "pose": f"it has keypoints but no masks; pair it with a segment dataset of the same images: {MERGE}, or {CONVERT}",
    "segment": f"it has masks but no keypoints; pair it with a pose dataset of the same images: {MERGE}, or {CONVERT}",
    "detect": f"it has boxes only; mttrain needs masks and keypoints: {CONVERT}, or {MERGE}",
}


def read_multitask_config(path: str | Path, for_training: bool = False) -> DatasetConfig:
    """The multitask data.yaml at ``path`` (mtdata's rules); DatasetConfigError saying what works otherwise.

    ``for_training``: it must also list a ``train`` split, and a ``val`` or ``test`` split to validate on.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetConfigError("data.yaml not found", file=path)
    config = read_data_yaml(path)
    if config.task != "multitask":
        advice = ADVICE.get(config.task, f"make a multitask dataset with {CONVERT}, or {MERGE}")
        raise DatasetConfigError(
            f"a {config.task} dataset; mttrain trains multitask datasets (a mask for every object, keypoints for "
            f"the classes that have them): {advice}", file=path)
    if for_training:
        listed = ", ".join(sorted(config.splits)) or "none"
        if not config.splits.get("train"):
            raise DatasetConfigError(
                f"no 'train' split to train on (splits: {listed}): add 'train: <image folder>' to data.yaml, or "
                "convert a training annotation file too (mtdata convert TRAIN.json VAL.json OUT)", file=path)
        if not (config.splits.get("val") or config.splits.get("test")):
            raise DatasetConfigError(f"no 'val' or 'test' split to validate on (splits: {listed}): add "
                                     "'val: <image folder>' to data.yaml", file=path)
    return config
