"""MultiTaskValidator: Box, Mask (true mask IoU) and Pose (OKS over keypoint classes) metrics."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtdata.keypoints import BOX_AREA_FACTOR, default_sigmas
from mttrain._ultralytics import (
    LOGGER,
    RANK,
    SegmentationValidator,
    kpt_iou,
    no_requirement_installs,
    ops,
    register_skeleton,
    use_dataset_dict,
)
from mttrain.data import build_multitask_dataset, load_multitask_data
from mttrain.metrics import MultiTaskMetrics
from mttrain.postprocess import split_extra


class MultiTaskValidator(SegmentationValidator):
    """Validates a multitask model; writes ``metrics.json`` in its run folder."""

    def __init__(self, dataloader=None, save_dir=None, args=None, _callbacks=None) -> None:
        super().__init__(dataloader, save_dir, args, _callbacks)
        self.args.task = "multitask"
        self.metrics = MultiTaskMetrics()
        self.sigma = None
        self.kpt_shape = None
        self.keypoint_classes = None  # class ids with keypoints, from the dataset (init_metrics); None: unknown
        self._label_polygons = None  # im_file -> its label polygons, normalized (OKS areas, COCO masks)
        self.coco_ids = None  # --save-json: the COCO ids of the split's categories and images (mtdata.export)
        self.coco_metrics = None  # --save-json: COCOeval's numbers (mttrain.coco_eval)

    def __call__(self, trainer=None, model=None):
        if trainer is not None:
            return super().__call__(trainer, model)
        data = load_multitask_data(self.args.data)
        with use_dataset_dict(data):  # our data.yaml rules, not ultralytics' check_det_dataset
            stats = super().__call__(trainer, model)
        if self.args.save_json and not self.jdict and RANK in {-1, 0}:  # no detection: ultralytics skips eval_json
            (Path(self.save_dir) / "predictions.json").write_text("[]")
            self.eval_json(stats)
        self.write_metrics_json()
        return stats

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        cfg = self.args
        if self.args.save_json or self.args.save_txt:
            # Masks are then predicted at the input size (process_mask_native): rasterize the ground truth there
            # too, not at 1/4 size and upsampled, which rounds thin parts off and biases mask IoU against them.
            cfg = copy.copy(self.args)
            cfg.mask_ratio = 1
        return build_multitask_dataset(cfg, img_path, batch, self.data, mode=mode, stride=self.stride)

    def preprocess(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = super().preprocess(batch)
        batch["keypoints"] = batch["keypoints"].float()
        return batch

    def init_metrics(self, model: torch.nn.Module) -> None:
        with no_requirement_installs():  # save_json: evaluated with pycocotools, never faster-coco-eval
            super().init_metrics(model)
        self.kpt_shape = list(self.data["kpt_shape"])
        register_skeleton(self.kpt_shape[0], self.data.get("skeleton"))  # val batch plots draw it
        k = self.kpt_shape[0]
        sigmas = self.data.get("kpt_sigmas")  # data.yaml kpt_sigmas, else COCO's for 17 points, else uniform
        self.sigma = np.array(sigmas if sigmas else default_sigmas(k), dtype=np.float32)
        self.keypoint_classes = sorted(int(c) for c in self.data["kpt_names"])
        self.metrics.keypoint_classes = self.keypoint_classes
        self.metrics.names = self.names
        if self.args.save_json:
            from mtdata.export import dataset_ids

            self.coco_ids = dataset_ids(self.data["mt_config"], self._split())
            self.coco_metrics = None

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
            # the predictor's own step: classes without keypoints get none (plots, metrics, --save-txt)
            coefficients, pred["keypoints"] = split_extra(pred.pop("extra"), pred["cls"], nm, self.kpt_shape,
                                                          self.keypoint_classes)
            pred["masks"] = self.process(proto[i], coefficients, pred["bboxes"], shape=imgsz)
        return out

    def _prepare_batch(self, si: int, batch: dict[str, Any]) -> dict[str, Any]:
        pbatch = super()._prepare_batch(si, batch)
        kpts = batch["keypoints"][batch["batch_idx"] == si].clone()
        h, w = pbatch["imgsz"]
        kpts[..., 0] *= w
        kpts[..., 1] *= h
        pbatch["keypoints"] = kpts
        pbatch["polygons"] = self._target_polygons(pbatch)
        if self.process is ops.process_mask_native and pbatch["polygons"]:
            # Native-size masks (save_json, save_txt): compare them with COCO's rasterization of the labels
            # (mttrain.coco_eval.rasterize explains why not ultralytics' polygon2mask).
            from mttrain.coco_eval import rasterize

            h, w = (int(v) for v in pbatch["imgsz"])
            pbatch["masks"] = torch.from_numpy(rasterize(pbatch["polygons"], h, w)).to(pbatch["masks"].device, torch.float32)
        return pbatch

    def _target_polygons(self, pbatch: dict[str, Any]) -> list[np.ndarray] | None:
        """The targets' label polygons at the input size, in target order; None when they cannot be found."""
        from mttrain.coco_eval import polygons_for_targets

        if not len(pbatch["cls"]):
            return None
        if self._label_polygons is None:
            self._label_polygons = {lb["im_file"]: lb["segments"] for lb in self.dataloader.dataset.labels}
        segments = self._label_polygons.get(pbatch["im_file"])
        if segments is None:
            return None
        return polygons_for_targets(segments, pbatch["bboxes"].cpu().numpy(), pbatch["ori_shape"], pbatch["ratio_pad"])

    def _process_batch(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, np.ndarray]:
        tp = super()._process_batch(preds, batch)
        gt_cls = batch["cls"]
        kpt_classes = torch.tensor(self.keypoint_classes, device=gt_cls.device)
        # Pose targets: keypoint-class objects with at least one labeled keypoint.
        has_points = (batch["keypoints"][..., 2] > 0).any(-1) if len(gt_cls) else gt_cls.bool()
        target = torch.isin(gt_cls.long(), kpt_classes) & has_points
        tp_p = np.zeros((preds["cls"].shape[0], self.niou), dtype=bool)
        if target.any() and preds["cls"].shape[0]:
            area = self._oks_areas(batch)[target].to(batch["bboxes"].device)
            iou = kpt_iou(batch["keypoints"][target], preds["keypoints"], sigma=self.sigma, area=area)
            tp_p = self.match_predictions(preds["cls"], gt_cls[target], iou).cpu().numpy()
        tp.update({"tp_p": tp_p, "target_cls_p": gt_cls[target].cpu().numpy()})
        return tp

    @staticmethod
    def _oks_areas(batch: dict[str, Any]) -> torch.Tensor:
        """(N,) OKS scale s^2 of each target at the input size: the area of its label polygon, as COCO's
        ``area`` is the object's segment area; 0.53 x its box area (xtcocotools' box-to-area factor, which
        ultralytics uses for every object) when the polygon is unknown or empty."""
        box_area = ops.xyxy2xywh(batch["bboxes"])[:, 2:].prod(1) * BOX_AREA_FACTOR
        if not batch.get("polygons"):
            return box_area
        from mtdata.geometry import polygon_areas

        area = torch.from_numpy(polygon_areas(batch["polygons"])).to(box_area)
        return torch.where(area > 0, area, box_area)

    def scale_preds(self, predn, pbatch):
        scaled = super(SegmentationValidator, self).scale_preds(predn, pbatch)  # boxes as ultralytics scales them
        scaled["masks"] = self._masks_to_original(predn["masks"], pbatch["ori_shape"], pbatch["ratio_pad"])
        scaled["keypoints"] = ops.scale_coords(pbatch["imgsz"], predn["keypoints"].clone(), pbatch["ori_shape"], ratio_pad=pbatch["ratio_pad"])
        return scaled

    @staticmethod
    def _masks_to_original(masks: torch.Tensor, shape, ratio_pad, chunk: int = 32) -> torch.Tensor:
        """(N, h, w) input-size masks -> (N, H, W) uint8 masks of the original image.

        SegmentationValidator.scale_preds resizes with bilinear then ``.byte()``, which keeps only the
        pixels that stay exactly 1: every upscaled mask loses about a pixel all round. Threshold at 0.5
        instead, a chunk at a time so the float copy stays small.
        """
        shape = tuple(int(v) for v in shape)
        if masks.shape[1:] == shape:
            return masks.byte()
        if not len(masks):
            return masks.new_zeros((0, *shape), dtype=torch.uint8)
        parts = [ops.scale_masks(m[None].float(), shape, ratio_pad=ratio_pad)[0].gt(0.5) for m in masks.split(chunk)]
        return torch.cat(parts).byte()

    def save_one_txt(self, predn, save_conf: bool, shape, file: Path) -> None:
        from mttrain.predict import write_multitask_txt

        write_multitask_txt(predn, shape, file, keypoint_classes=self.keypoint_classes, save_conf=save_conf)

    def _split(self) -> str:
        """The split being validated (the trainer falls back to test when there is no val)."""
        splits = self.data["mt_config"].splits
        return self.args.split if self.args.split in splits else next((s for s in ("val", "test") if s in splits), self.args.split)

    def pred_to_json(self, predn: dict[str, torch.Tensor], pbatch: dict[str, Any]) -> None:
        """One image's predictions in COCO's results format, with the ground truth's ids."""
        from mttrain.coco_eval import prediction_results

        image_id = self.coco_ids.image_ids.get(os.path.abspath(pbatch["im_file"]))
        if image_id is None:  # an image mtdata does not list for the split (cannot be in the ground truth)
            LOGGER.warning(f"--save-json: {pbatch['im_file']} is not an image of the '{self._split()}' split; left out")
            return
        self.jdict.extend(prediction_results(
            predn["bboxes"].cpu().numpy(), predn["conf"].cpu().numpy(), predn["cls"].cpu().numpy(),
            predn["masks"].cpu().numpy(), predn["keypoints"].cpu().numpy(),
            image_id, self.coco_ids.category_ids, self.keypoint_classes,
        ))

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """COCOeval (pycocotools) of predictions.json for bbox, segm and keypoints; kept for metrics.json."""
        from mttrain.coco_eval import run_coco_eval

        self.coco_metrics = run_coco_eval(
            self.data["mt_config"], self._split(), Path(self.save_dir), self.jdict, self.dataloader.dataset.im_files,
            self.sigma, self.coco_ids,
        )
        ours = self.metrics.table()
        for task in ("box", "mask", "pose"):
            if task in self.coco_metrics:
                coco = self.coco_metrics[task]
                LOGGER.info(f"{task:>5} mAP50-95 ours {ours[task]['map50_95']:.4f}  COCOeval {coco['map50_95'] or 0:.4f}   "
                            f"mAP50 ours {ours[task]['map50']:.4f}  COCOeval {coco['map50'] or 0:.4f}")
        LOGGER.info(f"COCOeval against {self.coco_metrics['ground_truth']} ({self.coco_metrics['ground_truth_kind']})")
        return stats

    def write_metrics_json(self) -> Path:
        path = Path(self.save_dir) / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"data": str(self.args.data), "split": self.args.split, "imgsz": self.args.imgsz, **self.metrics.table()}
        if self.coco_metrics is not None:
            from mttrain.coco_eval import differences

            payload["coco"] = self.coco_metrics
            payload["ours_minus_coco"] = differences(payload, self.coco_metrics)
        path.write_text(json.dumps(payload, indent=2))
        return path
