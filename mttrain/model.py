"""MultiTaskYOLO: the ultralytics-style entry point.

>>> model = MultiTaskYOLO("yolov8n-multitask.yaml")          # doctest: +SKIP
>>> model.train(data="data.yaml", epochs=3, imgsz=160)      # doctest: +SKIP
>>> metrics = model.val()                                   # metrics.box.map, .seg.map, .pose.map  # doctest: +SKIP
>>> results = model("image.jpg")                            # boxes, masks, keypoints  # doctest: +SKIP
>>> onnx_file = model.export(format="onnx", imgsz=640)      # beside the weights  # doctest: +SKIP
>>> MultiTaskYOLO(onnx_file)("image.jpg")                   # same postprocess, onnxruntime  # doctest: +SKIP
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
    """A multitask YOLO model from a shipped/own YAML, a trained ``.pt`` or an export (``.onnx``, ``.torchscript``).

    Exports run through ultralytics' AutoBackend with the same predictor and validator as ``.pt``;
    their names, keypoint classes and ``kpt_shape`` come from the file's metadata (``export_metadata``).
    """

    def __init__(self, model: str | Path = "yolov8n-multitask.yaml", verbose: bool = False):
        from mttrain.export import EXPORT_SUFFIXES, check_export

        path = Path(str(model))
        if path.suffix in WEIGHT_SUFFIXES and not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path} (mttrain never downloads weights)")
        # Checked before ultralytics sees the file: a missing onnxruntime would otherwise be pip-installed.
        self.export_metadata = check_export(path) if path.suffix in EXPORT_SUFFIXES else None
        super().__init__(model=str(model), task="multitask", verbose=verbose)
        self.task = "multitask"
        if self.model is not None and not isinstance(self.model, str):
            self.model.task = "multitask"

    @property
    def keypoint_classes(self) -> list[int]:
        """Ids of the classes that have keypoints (from the model, or from an export's metadata)."""
        source = self.export_metadata if self.export_metadata is not None else vars(self.model)
        return sorted(int(k) for k in (source.get("kpt_names") or {}))

    def predict(self, source=None, stream: bool = False, predictor=None, **kwargs):
        self._check_export_args(kwargs)
        return super().predict(source, stream, predictor, **kwargs)

    def val(self, validator=None, **kwargs):
        self._check_export_args(kwargs)
        if self.export_metadata is not None and not kwargs.get("data"):
            from mttrain.export import ExportError

            raise ExportError("validating an exported model needs data=... (--data): exports do not carry the "
                              "dataset path", file=self.model)
        return super().val(validator, **kwargs)

    def export(self, **kwargs) -> Path:
        """Export to ONNX or TorchScript beside the weights; kwargs are :class:`mttrain.export.ExportOptions`."""
        from mttrain.export import FORMATS, ExportError, ExportOptions, export_model

        if not isinstance(self.model, MultiTaskModel):
            raise ExportError("only a PyTorch multitask model (.pt or YAML) can be exported", file=str(self.model))
        options = ExportOptions(**kwargs)
        source = Path(self.ckpt_path or self.model_name or "multitask.pt")
        return export_model(self.model, source.with_suffix(FORMATS[options.format]), options, source=source)

    def _check_export_args(self, kwargs: dict) -> None:
        if self.export_metadata is not None:
            from mttrain.export import check_input_size

            check_input_size(self.export_metadata, kwargs.get("imgsz"), file=self.model)

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
