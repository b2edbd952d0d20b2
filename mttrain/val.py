"""MultiTaskValidator: Box, Mask (true mask IoU) and Pose (OKS over keypoint classes) metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtdata.keypoints import default_sigmas
from mttrain._ultralytics import SegmentationValidator, kpt_iou, ops, use_dataset_dict
from mttrain.data import build_multitask_dataset, load_multitask_data
from mttrain.metrics import MultiTaskMetrics


class MultiTaskValidator(SegmentationValidator):
    """Validates a multitask model; writes ``metrics.json`` in its run folder."""

    def __init__(self, dataloader=None, save_dir=None, args=None, _callbacks=None) -> None:
        super().__init__(dataloader, save_dir, args, _callbacks)
        self.args.task = "multitask"
        self.metrics = MultiTaskMetrics()
        self.sigma = None
        self.kpt_shape = None

    def __call__(self, trainer=None, model=None):
        if trainer is not None:
            return super().__call__(trainer, model)
        data = load_multitask_data(self.args.data)
        with use_dataset_dict(data):  # our data.yaml rules, not ultralytics' check_det_dataset
            stats = super().__call__(trainer, model)
        self.write_metrics_json()
        return stats

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        return build_multitask_dataset(self.args, img_path, batch, self.data, mode=mode, stride=self.stride)

    def preprocess(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = super().preprocess(batch)
        batch["keypoints"] = batch["keypoints"].float()
        return batch

    def init_metrics(self, model: torch.nn.Module) -> None:
        super().init_metrics(model)
        self.kpt_shape = list(self.data["kpt_shape"])
        k = self.kpt_shape[0]
        sigmas = self.data.get("kpt_sigmas")  # data.yaml kpt_sigmas, else COCO's for 17 points, else uniform
        self.sigma = np.array(sigmas if sigmas else default_sigmas(k), dtype=np.float32)
        self.keypoint_classes = sorted(int(c) for c in self.data["kpt_names"])
        self.metrics.keypoint_classes = self.keypoint_classes
        self.metrics.names = self.names

    def get_desc(self) -> str:
        cols = ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)", "Mask(P", "R", "mAP50", "mAP50-95)",
                "Pose(P", "R", "mAP50", "mAP50-95)")
        return ("%22s" + "%11s" * 14) % cols

    def postprocess(self, preds):
        """One NMS (in the parent) over boxes; each kept row's extra channels are its mask coefficients then keypoints."""
        proto = preds[0][1] if isinstance(preds[0], tuple) else preds[1]
        nm = proto.shape[1]
        out = super(SegmentationValidator, self).postprocess(preds[0])
        imgsz = [4 * x for x in proto.shape[2:]]
        for i, pred in enumerate(out):
            extra = pred.pop("extra")
            coefficients, keypoints = extra[:, :nm], extra[:, nm:]
            pred["masks"] = self.process(proto[i], coefficients, pred["bboxes"], shape=imgsz)
            pred["keypoints"] = keypoints.view(-1, *self.kpt_shape)
        return out

    def _prepare_batch(self, si: int, batch: dict[str, Any]) -> dict[str, Any]:
        pbatch = super()._prepare_batch(si, batch)
        kpts = batch["keypoints"][batch["batch_idx"] == si].clone()
        h, w = pbatch["imgsz"]
        kpts[..., 0] *= w
        kpts[..., 1] *= h
        pbatch["keypoints"] = kpts
        return pbatch

    def _process_batch(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, np.ndarray]:
        tp = super()._process_batch(preds, batch)
        gt_cls = batch["cls"]
        kpt_classes = torch.tensor(self.keypoint_classes, device=gt_cls.device)
        # Pose targets: keypoint-class objects with at least one labeled keypoint.
        has_points = (batch["keypoints"][..., 2] > 0).any(-1) if len(gt_cls) else gt_cls.bool()
        target = torch.isin(gt_cls.long(), kpt_classes) & has_points
        tp_p = np.zeros((preds["cls"].shape[0], self.niou), dtype=bool)
        if target.any() and preds["cls"].shape[0]:
            area = ops.xyxy2xywh(batch["bboxes"][target])[:, 2:].prod(1) * 0.53  # 0.53: xtcocotools' box-to-area factor
            iou = kpt_iou(batch["keypoints"][target], preds["keypoints"], sigma=self.sigma, area=area)
            tp_p = self.match_predictions(preds["cls"], gt_cls[target], iou).cpu().numpy()
        tp.update({"tp_p": tp_p, "target_cls_p": gt_cls[target].cpu().numpy()})
        return tp

    def scale_preds(self, predn, pbatch):
        scaled = super().scale_preds(predn, pbatch)
        scaled["keypoints"] = ops.scale_coords(pbatch["imgsz"], predn["keypoints"].clone(), pbatch["ori_shape"], ratio_pad=pbatch["ratio_pad"])
        return scaled

    def save_one_txt(self, predn, save_conf: bool, shape, file: Path) -> None:
        from mttrain.predict import write_multitask_txt

        write_multitask_txt(predn, shape, file, keypoint_classes=self.keypoint_classes, save_conf=save_conf)

    def write_metrics_json(self) -> Path:
        path = Path(self.save_dir) / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"data": str(self.args.data), "split": self.args.split, "imgsz": self.args.imgsz, **self.metrics.table()}
        path.write_text(json.dumps(payload, indent=2))
        return path
