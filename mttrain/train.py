"""MultiTaskTrainer: ultralytics' segmentation trainer, made multitask.

Overrides only the template methods: dataset (mtdata's data.yaml and parser), model, validator,
model attributes saved in checkpoints, and the loss names shown in the progress bar.
"""

from __future__ import annotations

from copy import copy
from typing import Any

from mttrain._ultralytics import DEFAULT_CFG, RANK, SegmentationTrainer, register_skeleton
from mttrain.data import build_multitask_dataset, load_multitask_data
from mttrain.nn.loss import LOSS_NAMES, loss_names_for
from mttrain.nn.model import MultiTaskModel
from mttrain.transfer import load_weights
from mttrain.val import MultiTaskValidator


class MultiTaskTrainer(SegmentationTrainer):
    """Trains a :class:`MultiTaskModel` on a multitask dataset."""

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict[str, Any] | None = None, _callbacks=None):
        super().__init__(cfg, overrides, _callbacks)
        self.args.task = "multitask"  # SegmentationTrainer forces "segment"
        self.loss_names = LOSS_NAMES

    def get_dataset(self) -> dict[str, Any]:
        data = load_multitask_data(self.args.data)
        if self.args.single_cls:
            raise ValueError("single_cls is not supported for multitask data: keypoint classes would be lost")
        return data

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        stride = max(int(self.model.stride.max() if self.model else 0), 32)
        return build_multitask_dataset(self.args, img_path, batch, self.data, mode=mode, rect=mode == "val", stride=stride)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> MultiTaskModel:
        model = MultiTaskModel(
            cfg or "yolov8n-multitask.yaml", nc=self.data["nc"], ch=self.data["channels"],
            data_kpt_shape=self.data["kpt_shape"], verbose=verbose and RANK == -1,
        )
        model.names = self.data["names"]
        if weights:
            load_weights(model, weights, verbose=verbose and RANK in {-1, 0})
        return model

    def set_model_attributes(self) -> None:
        super().set_model_attributes()
        self.model.kpt_shape = tuple(self.data["kpt_shape"])
        self.model.kpt_names = self.data["kpt_names"]
        self.model.flip_idx = self.data["flip_idx"]
        self.model.skeleton = self.data["skeleton"]
        self.model.kpt_sigmas = self.data["kpt_sigmas"]

    def get_validator(self) -> MultiTaskValidator:
        self.loss_names = loss_names_for(getattr(self.model, "module", self.model))  # DDP wraps the model
        return MultiTaskValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks)

    def plot_training_samples(self, batch: dict[str, Any], ni: int) -> None:
        """Masks, keypoints and the dataset's skeleton on each training mosaic."""
        register_skeleton(self.data["kpt_shape"][0], self.data.get("skeleton"))
        super().plot_training_samples(batch, ni)
