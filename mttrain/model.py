"""MultiTaskYOLO: the ultralytics-style entry point.

>>> model = MultiTaskYOLO("yolov8n-multitask.yaml")          # doctest: +SKIP
>>> model.train(data="data.yaml", epochs=3, imgsz=160)      # doctest: +SKIP
>>> metrics = model.val()                                   # metrics.box.map, .seg.map, .pose.map  # doctest: +SKIP
>>> results = model("image.jpg")                            # boxes, masks, keypoints  # doctest: +SKIP
>>> onnx_file = model.export(format="onnx", imgsz=640)      # beside the weights  # doctest: +SKIP
>>> MultiTaskYOLO(onnx_file)("image.jpg")                   # same postprocess, onnxruntime  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mtdata.errors import MtdataError
from mttrain._ultralytics import Model
from mttrain.nn.model import MultiTaskModel, load_model_cfg
from mttrain.predict import MultiTaskPredictor
from mttrain.train import MultiTaskTrainer
from mttrain.val import MultiTaskValidator

WEIGHT_SUFFIXES = (".pt", ".onnx", ".torchscript")


def _set_up_smoother(predictor, smooth: bool, persist: bool) -> None:
    """on_predict_start: give a tracking predictor its keypoint smoother (kept across calls with ``persist``)."""
    if predictor.args.mode != "track" or not smooth:
        predictor.keypoint_smoother = None
    elif not persist or getattr(predictor, "keypoint_smoother", None) is None:
        from mttrain.smooth import KeypointSmoother

        predictor.keypoint_smoother = KeypointSmoother()


class MultiTaskYOLO(Model):
    """A multitask YOLO model from a shipped/own YAML, a trained ``.pt`` or an export (``.onnx``, ``.torchscript``,
    ``*_openvino_model/``).

    Exports run through ultralytics' AutoBackend with the same predictor and validator as ``.pt``;
    their names, keypoint classes and ``kpt_shape`` come from the file's metadata (``export_metadata``).
    """

    def __init__(self, model: str | Path = "yolov8n-multitask.yaml", verbose: bool = False, trust_weights: bool = False):
        """``trust_weights``: load a ``.pt`` with full unpickling, which runs any code the file holds. Only for
        files you made or whose maker you trust; by default a ``.pt`` may hold only model classes (see
        ``mttrain.checkpoint_guard.load_checkpoint_file``)."""
        from mttrain._ultralytics import trust_weights_file
        from mttrain.errors import WeightsError
        from mttrain.export import check_export, export_format

        path = Path(str(model))
        if path.suffix in WEIGHT_SUFFIXES and not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path} (mttrain never downloads weights)")
        if path.suffix == ".pt" and trust_weights:
            trust_weights_file(path)
        # Checked before ultralytics sees the file: a missing onnxruntime would otherwise be pip-installed.
        self.export_metadata = check_export(path) if export_format(path) else None
        self._run_project: Path | None = None  # PROJECT of the last train(): val() and predict() write there
        try:
            super().__init__(model=str(model), task="multitask", verbose=verbose)
        except MtdataError:
            raise
        except Exception as e:  # a file that unpickled into allowed classes but is not a model ultralytics can use
            if path.suffix != ".pt":
                raise
            text = str(e).strip().splitlines()
            raise WeightsError(f"cannot load the model: {type(e).__name__}: {text[0][:200] if text else ''}",
                               file=path) from e
        if path.suffix == ".pt" and not isinstance(self.model, MultiTaskModel):
            kind = getattr(self.model, "task", None) or type(self.model).__name__
            raise WeightsError(f"not a multitask model (a {kind} checkpoint): train one with `mttrain fit`, starting "
                               "from this file with --weights", file=path)
        self.task = "multitask"
        if self.model is not None and not isinstance(self.model, str):
            self.model.task = "multitask"

    @property
    def keypoint_classes(self) -> list[int]:
        """Ids of the classes that have keypoints (from the model, or from an export's metadata)."""
        source = self.export_metadata if self.export_metadata is not None else vars(self.model)
        return sorted(int(k) for k in (source.get("kpt_names") or {}))

    def train(self, trainer=None, **kwargs):
        """ultralytics' ``train``; the dataset and the arguments are checked first (one clear error each, before
        ultralytics prints its arguments), and a relative or missing ``project`` is under the current folder
        (``./runs/multitask``), never ultralytics' global runs folder."""
        from mttrain._ultralytics import check_arguments

        if not kwargs.get("resume"):
            from mttrain.data_config import read_multitask_config

            data = kwargs.get("data") or self.overrides.get("data")
            if data:
                read_multitask_config(data, for_training=True)
            kwargs["project"] = str(self._project(kwargs.get("project")))
        check_arguments(kwargs)
        metrics = super().train(trainer, **kwargs)
        if self.trainer is not None and getattr(self.trainer, "save_dir", None):
            self._run_project = Path(self.trainer.save_dir).parent
        return metrics

    def predict(self, source=None, stream: bool = False, predictor=None, **kwargs):
        """ultralytics' ``predict``; a path, folder or glob source is checked first (it exists, and OpenCV opens and
        decodes each of its videos: one InputError naming the file otherwise, before anything is written)."""
        from mttrain._ultralytics import check_arguments
        from mttrain.video import check_sources

        self._check_export_args(kwargs)
        check_arguments({k: v for k, v in kwargs.items() if k != "mode"})
        if source is not None:
            check_sources(source, vid_stride=int(kwargs.get("vid_stride") or 1))
        if kwargs.get("project") or self.predictor is None:  # a reused predictor keeps its folder, as ultralytics'
            kwargs["project"] = str(self._project(kwargs.get("project")))
        return super().predict(source, stream, predictor, **kwargs)

    def track(self, source=None, stream: bool = False, persist: bool = False, tracker: str = "bytetrack.yaml",
              smooth: bool = False, **kwargs):
        """ultralytics' ``track`` (ByteTrack by default, ``tracker="botsort.yaml"`` or a YAML file): every tracked
        object keeps its own mask and keypoints; ``result.boxes.id`` holds the track ids, and objects the tracker
        does not (yet) follow are left out. ``persist=True`` keeps the tracks between calls (frame by frame).

        ``smooth``: filter each track's keypoints over time with a one-euro filter (``mttrain.smooth``); off by
        default. ``tracker`` is checked first (:func:`mttrain.video.resolve_tracker`)."""
        from functools import partial

        from mttrain.video import resolve_tracker

        kwargs["tracker"] = str(resolve_tracker(tracker))
        callbacks = self.callbacks["on_predict_start"]  # replaced, not stacked, on every call (as register_tracker)
        callbacks[:] = [cb for cb in callbacks if getattr(cb, "func", None) is not _set_up_smoother]
        callbacks.append(partial(_set_up_smoother, smooth=smooth, persist=persist))
        return super().track(source, stream=stream, persist=persist, **kwargs)

    def val(self, validator=None, **kwargs):
        from mttrain._ultralytics import check_arguments

        self._check_export_args(kwargs)
        check_arguments(kwargs)
        if self.export_metadata is not None and not kwargs.get("data"):
            from mttrain.export import ExportError

            raise ExportError("validating an exported model needs data=... (--data): exports do not carry the "
                              "dataset path", file=self.model)
        kwargs["project"] = str(self._project(kwargs.get("project")))
        return super().val(validator, **kwargs)

    def export(self, **kwargs) -> Path:
        """Export to ONNX, TorchScript or OpenVINO beside the weights; kwargs are :class:`mttrain.export.ExportOptions`.

        ``imgsz`` defaults to the size the model was trained at (as ultralytics' export does)."""
        from mttrain.export import ExportError, ExportOptions, export_model, export_path

        if not isinstance(self.model, MultiTaskModel):
            raise ExportError("only a PyTorch multitask model (.pt or YAML) can be exported", file=str(self.model))
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(ExportOptions)})
        if unknown:
            from mttrain.errors import ArgumentError

            raise ArgumentError(f"export() does not take {', '.join(unknown)} (it writes ONNX, TorchScript and OpenVINO: "
                                f"{', '.join(f.name for f in dataclasses.fields(ExportOptions))})")
        options = ExportOptions(**kwargs)
        source = Path(self.ckpt_path or self.model_name or "multitask.pt")
        return export_model(self.model, export_path(source, options.format), options, source=source)

    def _project(self, project) -> Path:
        """Where runs go: ``project`` (a relative one under the current folder), else the last train()'s
        PROJECT, else ./runs/multitask. ultralytics would put relative and missing ones under its global
        runs folder (``settings.runs_dir``, wherever ultralytics was first run)."""
        if project:
            return Path(project).resolve()
        return self._run_project or (Path.cwd() / "runs" / "multitask")

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
