"""MultiTaskYOLO: the ultralytics-style entry point.

>>> model = MultiTaskYOLO("yolov8n-multitask.yaml")          # doctest: +SKIP
>>> model.train(data="data.yaml", epochs=3, imgsz=160)      # doctest: +SKIP
>>> metrics = model.val()                                   # metrics.box.map, .seg.map, .pose.map  # doctest: +SKIP
>>> results = model("image.jpg")                            # boxes, masks, keypoints  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from mttrain._ultralytics import Model
from mttrain.nn.model import MultiTaskModel, load_model_cfg
from mttrain.predict import MultiTaskPredictor
from mttrain.train import MultiTaskTrainer
from mttrain.val import MultiTaskValidator

WEIGHT_SUFFIXES = (".pt", ".onnx", ".torchscript")


class MultiTaskYOLO(Model):
    """A multitask YOLO model from a shipped/own YAML or a trained ``.pt``."""

    def __init__(self, model: str | Path = "yolov8n-multitask.yaml", verbose: bool = False):
        path = Path(str(model))
        if path.suffix in WEIGHT_SUFFIXES and not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path} (mttrain never downloads weights)")
        super().__init__(model=str(model), task="multitask", verbose=verbose)
        self.task = "multitask"
        if self.model is not None:
            self.model.task = "multitask"

    @property
    def task_map(self) -> dict:
        return {
            "multitask": {
                "model": MultiTaskModel,
                "trainer": MultiTaskTrainer,
                "validator": MultiTaskValidator,
                "predictor": MultiTaskPredictor,
            }
        }

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build from a YAML (shipped names like ``yolo11s-multitask.yaml`` included)."""
        from mttrain._ultralytics import DEFAULT_CFG

        cfg_dict = load_model_cfg(cfg)
        self.cfg = cfg
        self.task = "multitask"
        self.model = MultiTaskModel(cfg_dict, verbose=verbose)
        self.overrides["model"] = self.cfg
        self.overrides["task"] = self.task
        self.model.args = {**vars(DEFAULT_CFG), **self.overrides}
        self.model.task = self.task
        self.model_name = cfg
