"""MultiTaskLoss: ultralytics' segmentation loss plus its keypoint terms, on one assignment.

Parts, in progress-bar order: box_loss, seg_loss (mask), cls_loss, dfl_loss, pose_loss
(keypoint location, OKS-shaped), kobj_loss (keypoint visibility). Keypoint terms count only
anchors assigned to objects of keypoint classes that have at least one labeled keypoint:
discs and unlabeled people teach the keypoint branch nothing, not even "invisible".
"""

from __future__ import annotations

import torch
from torch import nn

from mttrain._ultralytics import OKS_SIGMA, KeypointLoss, v8PoseLoss, v8SegmentationLoss

LOSS_NAMES = ("box_loss", "seg_loss", "cls_loss", "dfl_loss", "pose_loss", "kobj_loss")


class MultiTaskLoss(v8SegmentationLoss):
    """Box, class, DFL and mask terms from v8SegmentationLoss; keypoint terms from v8PoseLoss."""

    def __init__(self, model, tal_topk: int = 10):
        super().__init__(model, tal_topk)
        self.loss_names = LOSS_NAMES
        head = model.model[-1]
        self.kpt_shape = list(head.kpt_shape)
        k = self.kpt_shape[0]
        sigmas = getattr(model, "kpt_sigmas", None)
        if sigmas:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float32, device=self.device)
        elif k == 17:
            sigmas = torch.from_numpy(OKS_SIGMA).to(self.device)  # COCO persons
        else:
            sigmas = torch.ones(k, device=self.device) / k
        self.keypoint_loss = KeypointLoss(sigmas=sigmas)
        self.bce_pose = nn.BCEWithLogitsLoss()
        classes = [int(c) for c in getattr(model, "kpt_names", {})]
        self.keypoint_class = torch.zeros(self.nc, dtype=torch.bool, device=self.device)
        self.keypoint_class[classes] = True
        self._assigned = None

    def get_assigned_targets_and_loss(self, preds, batch, **assign_kwargs):
        """Remember the assignment, so the keypoint terms use the very same one as box and mask."""
        (fg_mask, target_gt_idx, *rest), *losses = super().get_assigned_targets_and_loss(preds, batch, **assign_kwargs)
        # A batch without objects (background images only) gets a float index from the assigner.
        self._assigned = (fg_mask, target_gt_idx.long(), *rest)
        return (self._assigned, *losses)

    def loss(self, preds, batch):
        seg_total, _ = super().loss(preds, batch)  # box, seg, cls, dfl, semantic (unused) times batch size
        batch_size = preds["boxes"].shape[0]
        fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor = self._assigned
        self._assigned = None
        pred_kpts = preds["kpts"].permute(0, 2, 1).contiguous()
        pred_kpts = v8PoseLoss.kpts_decode(anchor_points, pred_kpts.view(batch_size, -1, *self.kpt_shape))

        kpt_loss = torch.zeros(2, device=self.device)
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=pred_kpts.dtype) * self.stride[0]
        keypoints = v8PoseLoss._batch_keypoints(self, batch, batch_size, imgsz)  # (B, max_objects, K, 3) pixels
        learnable = self._learnable_objects(batch, batch_size, keypoints.shape[1])
        mask = fg_mask & learnable.gather(1, target_gt_idx)
        if mask.any():
            kpt_loss[0], kpt_loss[1] = v8PoseLoss.calculate_keypoints_loss(
                self, mask, target_gt_idx, keypoints, stride_tensor, target_bboxes.clone(), pred_kpts
            )
        else:  # keep the keypoint branch in the graph (DDP requires every parameter to get a gradient)
            kpt_loss[0] += pred_kpts.sum() * 0
        kpt_loss[0] *= self.hyp.pose
        kpt_loss[1] *= self.hyp.kobj
        parts = torch.cat([seg_total[:4] / batch_size, kpt_loss])
        return parts * batch_size, dict(zip(self.loss_names, parts.detach()))

    def _learnable_objects(self, batch, batch_size: int, max_objects: int) -> torch.Tensor:
        """(B, max_objects) bool: the object is of a keypoint class and has a labeled keypoint."""
        cls = batch["cls"].view(-1).long().to(self.device)
        labeled = (batch["keypoints"][..., 2] > 0).any(-1).to(self.device) if batch["keypoints"].numel() else cls.bool()
        flags = self.keypoint_class[cls] & labeled
        batch_idx = batch["batch_idx"].view(-1).long().to(self.device)
        counts = torch.bincount(batch_idx, minlength=batch_size)
        out = torch.zeros(batch_size, max(max_objects, 1), dtype=torch.bool, device=self.device)
        within = torch.arange(len(batch_idx), device=self.device) - (counts.cumsum(0) - counts)[batch_idx]
        out[batch_idx, within] = flags
        return out
