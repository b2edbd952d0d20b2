"""The multitask losses: ultralytics' segmentation loss plus its keypoint terms, on one assignment.

- :class:`MultiTaskLoss` (v8/11 heads): v8SegmentationLoss + v8PoseLoss's keypoint terms.
- :class:`MultiTaskLoss26` (YOLO26 head): SegmentLoss26 (mask-aware assignment, box L1 + IoU without DFL,
  mask and semantic terms) + PoseLoss26's keypoint terms (OKS location, visibility, RLE with the learned sigma).
  End-to-end heads train it in ultralytics' scheme, ``E2ELoss``: a one-to-many term (top-10 assignment) and a
  one-to-one term (top-7 then top-1), the one-to-many weight decaying from 0.8 to 0.1 over the epochs.

Parts, in progress-bar order: box_loss, seg_loss (mask), cls_loss, dfl_loss, pose_loss
(keypoint location, OKS-shaped), kobj_loss (keypoint visibility). Keypoint terms count only
anchors assigned to objects of keypoint classes that have at least one labeled keypoint:
discs and unlabeled people teach the keypoint branch nothing, not even "invisible".
"""

from __future__ import annotations

import torch
from torch import nn

from mtdata.keypoints import default_sigmas
from mttrain._ultralytics import (
    RLE_WEIGHT,
    E2ELoss,
    KeypointLoss,
    PoseLoss26,
    RLELoss,
    SegmentLoss26,
    v8PoseLoss,
    v8SegmentationLoss,
)

LOSS_NAMES = ("box_loss", "seg_loss", "cls_loss", "dfl_loss", "pose_loss", "kobj_loss")
LOSS_NAMES_26 = ("box_loss", "seg_loss", "cls_loss", "l1_loss", "pose_loss", "kobj_loss", "rle_loss", "sem_loss")


def criterion_for(model):
    """The loss for a multitask model: E2ELoss around MultiTaskLoss26 for an end-to-end YOLO26 head (as
    ultralytics' SegmentationModel.init_criterion wraps SegmentLoss26), else the plain multitask loss."""
    from mttrain.nn.head import MultiTask26

    head = model.model[-1]
    loss = MultiTaskLoss26 if isinstance(head, MultiTask26) else MultiTaskLoss
    return E2ELoss(model, loss) if getattr(head, "one2one_cv2", None) is not None else loss(model)


def loss_names_for(model) -> tuple[str, ...]:
    from mttrain.nn.head import MultiTask26

    return LOSS_NAMES_26 if isinstance(model.model[-1], MultiTask26) else LOSS_NAMES


class MultiTaskLoss(v8SegmentationLoss):
    """Box, class, DFL and mask terms from v8SegmentationLoss; keypoint terms from v8PoseLoss."""

    def __init__(self, model, tal_topk: int = 10, tal_topk2: int | None = None):
        super().__init__(model, tal_topk, tal_topk2)
        self.loss_names = LOSS_NAMES
        head = model.model[-1]
        self.kpt_shape = list(head.kpt_shape)
        k = self.kpt_shape[0]
        sigmas = getattr(model, "kpt_sigmas", None) or default_sigmas(k)  # COCO's for 17 points, else uniform 1/K
        self.keypoint_loss = KeypointLoss(sigmas=torch.as_tensor(sigmas, dtype=torch.float32, device=self.device))
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
        pred_kpts = self._decode_keypoints(preds, anchor_points, batch_size)

        kpt_loss = torch.zeros(self.keypoint_parts, device=self.device)
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=pred_kpts.dtype) * self.stride[0]
        keypoints = v8PoseLoss._batch_keypoints(self, batch, batch_size, imgsz)  # (B, max_objects, K, 3) pixels
        learnable = self._learnable_objects(batch, batch_size, keypoints.shape[1])
        mask = fg_mask & learnable.gather(1, target_gt_idx)
        if mask.any():
            terms = self._keypoint_terms(mask, target_gt_idx, keypoints, stride_tensor, target_bboxes.clone(), pred_kpts)
            for i, term in enumerate(terms):
                kpt_loss[i] = kpt_loss[i] + term
        else:  # keep the keypoint branch in the graph (DDP requires every parameter to get a gradient)
            kpt_loss[0] += self._zero_keypoint_loss(pred_kpts)
        kpt_loss[0] *= self.hyp.pose
        kpt_loss[1] *= self.hyp.kobj
        parts = torch.cat([seg_total[:4] / batch_size, kpt_loss, *self._extra_parts(seg_total / batch_size)])
        return parts * batch_size, dict(zip(self.loss_names, parts.detach()))

    keypoint_parts = 2  # pose (location), kobj (visibility)

    def _decode_keypoints(self, preds, anchor_points, batch_size: int) -> torch.Tensor:
        """(B, A, K, 3) predicted keypoints in grid units, as v8PoseLoss decodes them."""
        pred_kpts = preds["kpts"].permute(0, 2, 1).contiguous()
        return v8PoseLoss.kpts_decode(anchor_points, pred_kpts.view(batch_size, -1, *self.kpt_shape))

    def _keypoint_terms(self, *args) -> tuple:
        return v8PoseLoss.calculate_keypoints_loss(self, *args)

    def _zero_keypoint_loss(self, pred_kpts: torch.Tensor) -> torch.Tensor:
        return pred_kpts.sum() * 0

    def _extra_parts(self, seg_parts: torch.Tensor) -> list[torch.Tensor]:
        """Parts after the keypoint ones: none here (a v8 Proto has no semantic branch)."""
        return []

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


class MultiTaskLoss26(MultiTaskLoss, SegmentLoss26):
    """YOLO26: SegmentLoss26's box (L1 + IoU, no DFL), class, mask and semantic terms on its mask-aware
    assignment, and PoseLoss26's keypoint terms (OKS location, visibility, RLE) on that same assignment.

    Parts: box_loss, seg_loss, cls_loss, l1_loss, pose_loss, kobj_loss, rle_loss, sem_loss. The keypoint terms
    count only objects of keypoint classes with labeled points (as :class:`MultiTaskLoss`).
    """

    keypoint_parts = 3  # pose, kobj, rle
    calculate_rle_loss = PoseLoss26.calculate_rle_loss  # PoseLoss26.calculate_keypoints_loss calls these on self
    _rle_zero = PoseLoss26._rle_zero

    def __init__(self, model, tal_topk: int = 10, tal_topk2: int | None = None):
        super().__init__(model, tal_topk, tal_topk2)
        self.loss_names = LOSS_NAMES_26
        self.flow_model = model.model[-1].flow_model
        self.rle_loss = RLELoss(use_target_weight=True).to(self.device)
        k = self.kpt_shape[0]
        self.target_weights = torch.from_numpy(RLE_WEIGHT).to(self.device) if k == 17 else torch.ones(k, device=self.device)

    def _decode_keypoints(self, preds, anchor_points, batch_size: int) -> torch.Tensor:
        """(B, A, K, 5) keypoints (x, y in grid units, visibility logit) with RLE's sigma logits, as PoseLoss26."""
        pred_kpts = preds["kpts"].permute(0, 2, 1).contiguous().view(batch_size, -1, *self.kpt_shape)
        sigma = preds.get("kpts_sigma")
        if sigma is not None:
            sigma = sigma.permute(0, 2, 1).contiguous().view(batch_size, -1, self.kpt_shape[0], 2)
            pred_kpts = torch.cat([pred_kpts, sigma], dim=-1)
        return PoseLoss26.kpts_decode(anchor_points, pred_kpts)

    def _keypoint_terms(self, *args) -> tuple:
        pose, kobj, rle = PoseLoss26.calculate_keypoints_loss(self, *args)
        return pose, kobj, rle * self.hyp.rle  # the pose and kobj gains are applied by the caller

    def _zero_keypoint_loss(self, pred_kpts: torch.Tensor) -> torch.Tensor:
        return pred_kpts.sum() * 0 + self._rle_zero(pred_kpts)

    def _extra_parts(self, seg_parts: torch.Tensor) -> list[torch.Tensor]:
        return [seg_parts[4:5]]  # Proto26's semantic term (already scaled by the box gain, as ultralytics does)
