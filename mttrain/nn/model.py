"""MultiTaskModel: an ultralytics DetectionModel whose head is :class:`MultiTask`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mttrain._ultralytics import DetectionModel, build_with_head
from mttrain.nn.head import MultiTask, MultiTask26

CFG_DIR = Path(__file__).resolve().parents[1] / "cfg"
HEADS = {"MultiTask": (MultiTask, "Segment"), "MultiTask26": (MultiTask26, "Segment26")}  # YAML name -> (head, stand-in)


def resolve_model_yaml(name: str | Path) -> tuple[Path, str]:
    """Find a model YAML by path or by shipped name; return (file, scale letter).

    ``yolov8n-multitask.yaml`` resolves to the shipped ``cfg/yolov8-multitask.yaml`` at scale ``n``.
    """
    import re

    path = Path(name)
    match = re.fullmatch(r"(yolov8|yolo11|yolo26)([nslmx])?(-multitask\.ya?ml)", path.name)
    if path.is_file():
        return path, (match.group(2) or "") if match else ""
    if match:
        shipped = CFG_DIR / f"{match.group(1)}-multitask.yaml"
        if shipped.is_file():
            return shipped, match.group(2) or ""
    shipped_names = sorted(f"{p.stem.replace('-multitask', '')}{{n,s,m,l,x}}-multitask.yaml" for p in CFG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"model config {name!s} not found; shipped configs: {', '.join(shipped_names)}")


def load_model_cfg(name: str | Path | dict) -> dict[str, Any]:
    if isinstance(name, dict):
        return dict(name)
    path, scale = resolve_model_yaml(name)
    cfg = yaml.safe_load(path.read_text())
    cfg["scale"] = scale or cfg.get("scale") or "n"
    cfg["yaml_file"] = str(Path(name).name)
    return cfg


class MultiTaskModel(DetectionModel):
    """Backbone + neck + MultiTask head; ``init_criterion`` gives the multitask loss.

    Attributes set by the trainer and saved in checkpoints: ``names``, ``kpt_shape``,
    ``kpt_names`` (keypoint class id -> keypoint names), ``flip_idx``, ``skeleton``,
    ``kpt_sigmas``.
    """

    def __init__(self, cfg="yolov8n-multitask.yaml", ch=3, nc=None, data_kpt_shape=None, verbose=True):
        cfg = load_model_cfg(cfg)
        if data_kpt_shape and list(data_kpt_shape) != list(cfg.get("kpt_shape", [])):
            cfg["kpt_shape"] = list(data_kpt_shape)
        kpt_shape = tuple(cfg["kpt_shape"])
        head_name = cfg["head"][-1][2]
        head, stand_in = HEADS.get(head_name, (MultiTask, "Segment"))
        with build_with_head(head_name, lambda segment: head.from_segment(segment, kpt_shape), stand_in):
            super().__init__(cfg=cfg, ch=ch, nc=nc, verbose=verbose)
        self.task = "multitask"  # saved with the model: ultralytics would guess "segment" from the head class
        self.kpt_shape = kpt_shape
        self.kpt_names: dict[int, list[str]] = {}
        self.flip_idx: list[int] | None = None
        self.skeleton: list[list[int]] | None = None
        self.kpt_sigmas: list[float] | None = None

    @property
    def keypoint_classes(self) -> list[int]:
        return sorted(int(k) for k in self.kpt_names)

    def init_criterion(self):
        from mttrain.nn.loss import criterion_for

        return criterion_for(self)
