"""MultiTaskPredictor: one NMS, then each kept detection's own mask and keypoints.

Results are ultralytics ``Results`` with ``boxes``, ``masks`` and ``keypoints``. Objects of
classes without keypoints come back with keypoint confidences 0 (no visible keypoints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mttrain._ultralytics import DetectionPredictor, Results, ops


class MultiTaskPredictor(DetectionPredictor):
    """Predictor for :class:`mttrain.nn.model.MultiTaskModel` (``.pt``) models."""

    def __init__(self, cfg=None, overrides=None, _callbacks=None):
        from mttrain._ultralytics import DEFAULT_CFG

        super().__init__(cfg or DEFAULT_CFG, overrides, _callbacks)
        self.args.task = "multitask"

    def postprocess(self, preds, img, orig_imgs):
        protos = preds[0][1] if isinstance(preds[0], tuple) else preds[1]
        return super().postprocess(preds[0], img, orig_imgs, protos=protos)

    def construct_results(self, preds, img, orig_imgs, protos):
        return [self.construct_result(p, img, o, path, proto) for p, o, path, proto in zip(preds, orig_imgs, self.batch[0], protos)]

    def construct_result(self, pred, img, orig_img, img_path, proto):
        """pred: (N, 6 + nm + K*3) rows of xyxy, conf, cls, mask coefficients, keypoints (input pixels)."""
        nm = proto.shape[0]
        kpt_shape = tuple(self.model.kpt_shape)
        keypoint_classes = _keypoint_classes(self.model)
        masks = None
        if pred.shape[0]:
            masks = ops.process_mask(proto, pred[:, 6 : 6 + nm], pred[:, :4], img.shape[2:], upsample=True)
            keep = masks.amax((-2, -1)) > 0
            pred, masks = pred[keep], masks[keep]
        boxes = pred[:, :6].clone()
        boxes[:, :4] = ops.scale_boxes(img.shape[2:], boxes[:, :4], orig_img.shape)
        kpts = pred[:, 6 + nm :].reshape(pred.shape[0], *kpt_shape)
        kpts = ops.scale_coords(img.shape[2:], kpts.clone(), orig_img.shape)
        no_keypoints = ~torch.isin(pred[:, 5].long(), torch.tensor(keypoint_classes, device=pred.device))
        kpts[no_keypoints, :, 2] = 0.0
        kpts[no_keypoints, :, :2] = 0.0
        return Results(orig_img, path=img_path, names=self.model.names, boxes=boxes, masks=masks, keypoints=kpts)


def _keypoint_classes(model) -> list[int]:
    """Keypoint class ids of a model, whether wrapped by AutoBackend or not."""
    for candidate in (model, getattr(model, "model", None)):
        names = getattr(candidate, "kpt_names", None)
        if names:
            return sorted(int(k) for k in names)
    return []


def result_rows(result: Results, keypoint_classes: list[int], min_visible: float = 0.5) -> list[str]:
    """Multitask label rows (normalized) for one Results; keypoints with confidence < ``min_visible`` are ``0 0 0``."""
    if result.masks is None or result.boxes is None:
        return []
    rows = []
    polygons = result.masks.xyn
    classes = result.boxes.cls.int().tolist()
    kpts = result.keypoints.data.cpu().numpy() if result.keypoints is not None else None
    h, w = result.orig_shape
    for i, (cls, polygon) in enumerate(zip(classes, polygons)):
        if len(polygon) < 3:
            continue
        values: list[float] = []
        if cls in keypoint_classes and kpts is not None:
            k = kpts[i].copy()
            visible = k[:, 2] >= min_visible
            k[:, 0] /= w
            k[:, 1] /= h
            k[:, 2] = np.where(visible, 2, 0)
            k[~visible, :2] = 0
            values.extend(np.clip(k, 0, 2).reshape(-1).tolist())
        values.extend(np.clip(polygon, 0, 1).reshape(-1).tolist())
        rows.append(("%d" + " %.6g" * len(values)) % (cls, *values))
    return rows


def write_multitask_txt(predn: dict, shape, file: Path, keypoint_classes: list[int], save_conf: bool = False) -> None:
    """Write a validator's scaled predictions as multitask rows (``save_conf`` is not part of the format)."""
    result = Results(
        np.zeros((shape[0], shape[1]), dtype=np.uint8), path=None, names={},
        boxes=torch.cat([predn["bboxes"], predn["conf"].unsqueeze(-1), predn["cls"].unsqueeze(-1)], dim=1),
        masks=torch.as_tensor(predn["masks"], dtype=torch.uint8), keypoints=predn["keypoints"],
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(r + "\n" for r in result_rows(result, keypoint_classes)))
