"""The multitask head: ultralytics' Segment head plus a keypoint branch.

Per anchor it predicts a box (DFL), class scores, ``nm`` mask coefficients and ``K * 3``
keypoint values; the shared ``Proto`` module predicts mask prototypes. Outputs:

- training: ``{"boxes", "scores", "feats", "mask_coefficient", "kpts", "proto"}``
- export: ``(y, proto)`` with ``y`` of shape (B, 4 + nc + nm + K*3, A): xywh box in pixels,
  class probabilities, mask coefficients, keypoints (x, y in pixels, visibility probability)
- otherwise: ``((y, proto), raw dict)``

One NMS over ``y`` keeps each detection's own mask coefficients and keypoints.

:class:`MultiTask26` is the YOLO26 counterpart (Segment26 + Proto26 + Pose26's keypoint branch, end-to-end):
with ``nms=False`` its one-to-one branch gives ``(B, max_det, 6 + nm + K*3)`` rows that need no NMS.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from ultralytics.nn.modules.conv import Conv

from mttrain._ultralytics import Pose, Pose26, RealNVP, Segment, Segment26


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged going forward; its gradient multiplied by ``scale`` going back (1: a no-op)."""
    if scale == 1:
        return x
    frozen = x.detach()
    return frozen + (x - frozen) * scale  # the value is x exactly (x - frozen is 0); d/dx is scale


class MultiTask(Segment):
    """Segment head with Pose's keypoint branch (``cv5``).

    ``keypoint_feature_gradient``: what the keypoint loss's gradient is multiplied by where it leaves the keypoint
    branch for the shared neck features; the branch's own weights learn at the full ``pose`` gain. The neck also
    serves the masks, and at full gain the keypoint loss (``pose=12``) shapes it against them: with 1.0 the
    multitask model's masks lagged yolov8n-seg's while its keypoints beat yolov8n-pose's. Measured with
    ``benchmarks/learning.py`` on the planes set (30 epochs, COCOeval referee, seeds 0 / 1 / 2; yolov8n-seg mask
    0.135 / 0.155 / 0.131, yolov8n-pose 0.284 / 0.304 / 0.264), multitask mask and pose mAP50-95:

    - 1.0: mask 0.100 / 0.153 / 0.084 (0.80x), pose 0.348 / 0.336 / 0.308 (1.17x)
    - 0.5: mask 0.140 / 0.131 / 0.114 (0.91x), pose 0.342 / 0.265 / 0.294 (1.06x)
    - 0.25: mask 0.134 / 0.149 / 0.114 (0.94x), pose 0.271 / 0.314 / 0.253 (0.985x)

    0.25 keeps the worse of the two ratios highest. (Halving ``pose`` instead, 6 rather than 12, scales the
    branch's own learning too: mask 0.91x, pose 0.94x on seeds 0 and 1.) Only in training; inference and
    export never see it.
    """

    keypoint_feature_gradient = 0.25

    kpts_decode = Pose.kpts_decode  # same decoding as ultralytics' pose head

    def __init__(
        self,
        nc: int = 80,
        nm: int = 32,
        npr: int = 256,
        kpt_shape: tuple[int, int] = (17, 3),
        reg_max: int = 16,
        end2end: bool = False,
        ch: tuple[int, ...] = (),
    ):
        super().__init__(nc, nm, npr, reg_max, end2end, ch)
        self.kpt_shape = tuple(kpt_shape)
        self.nk = self.kpt_shape[0] * self.kpt_shape[1]
        self.set_keypoint_width(max(ch[0], self.nk), ch)

    def set_keypoint_width(self, width: int, ch: tuple[int, ...] | None = None) -> None:
        """(Re)build the keypoint branch ``cv5`` (and its one-to-one copy) ``width`` channels wide, untrained.

        Why wider than ultralytics' Pose head (``max(ch[0] // 4, nk)``, 16 channels at scale n): the backbone and
        neck also serve the masks here, and a branch of the pose model's width learns the keypoints worse than the
        pose model does. ``benchmarks/learning.py``, planes set, 30 epochs, seeds 0 and 1, COCOeval referee: pose
        mAP50-95 0.291 (seed 0) at 16 channels, 0.400 / 0.346 at ``ch[0]`` (64 at scale n), against 0.338 / 0.335
        for yolov8n-pose; +9% parameters. Weight transfer from a pose checkpoint rebuilds it at that head's width
        (``mttrain.transfer``) so its trained branch loads.
        """
        ch = ch or tuple(seq[0].conv.in_channels for seq in self.cv2)
        like = next(self.cv2.parameters())
        self.cv5 = nn.ModuleList(
            nn.Sequential(Conv(x, width, 3), Conv(width, width, 3), nn.Conv2d(width, self.nk, 1)) for x in ch
        ).to(like.device, like.dtype)
        if getattr(self, "one2one_cv2", None) is not None:
            self.one2one_cv5 = copy.deepcopy(self.cv5)

    @property
    def keypoint_width(self) -> int:
        return self.cv5[0][0].conv.out_channels

    @property
    def one2many(self):
        return {**super().one2many, "pose_head": self.cv5}

    @property
    def one2one(self):
        return {**super().one2one, "pose_head": getattr(self, "one2one_cv5", None)}

    def forward_head(self, x, box_head, cls_head, mask_head, pose_head=None) -> dict[str, torch.Tensor]:
        preds = super().forward_head(x, box_head, cls_head, mask_head)
        if pose_head is not None:
            bs = x[0].shape[0]
            scale = self.keypoint_feature_gradient if self.training else 1
            preds["kpts"] = torch.cat([pose_head[i](scale_gradient(x[i], scale)).view(bs, self.nk, -1)
                                       for i in range(self.nl)], 2)
        return preds

    def _inference(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 4 + nc + nm + K*3, A): boxes, class probabilities, mask coefficients, decoded keypoints."""
        preds = super()._inference(x)
        return torch.cat([preds, self.kpts_decode(x["kpts"])], dim=1)

    @classmethod
    def from_segment(cls, segment: Segment, kpt_shape: tuple[int, int]) -> "MultiTask":
        """A head with the same inputs and sizes as an (untrained) ultralytics Segment head."""
        ch = tuple(seq[0].conv.in_channels for seq in segment.cv2)
        end2end = getattr(segment, "one2one_cv2", None) is not None
        return cls(segment.nc, segment.nm, segment.npr, kpt_shape, segment.reg_max, end2end, ch)


class MultiTask26(Segment26):
    """YOLO26 multitask head: Segment26 (boxes without DFL, classes, mask coefficients, Proto26) plus Pose26's
    keypoint branch, each with its ``one2one_`` copy when end-to-end.

    Names matter here. Segment26 keeps its mask coefficients in ``cv4`` and Pose26 its keypoint trunk there too,
    so the keypoint branch is ``cv5`` (trunk), ``cv5_kpts`` (x, y, visibility), ``cv5_sigma`` (RLE's learned
    sigma, training only) and ``flow_model`` (RLE's RealNVP, training only; the name PoseLoss26 looks up).
    ultralytics' ``Detect.end2end`` keys on ``one2one_cv2`` and ``cv2 is None`` and ``Detect.fuse`` drops every
    ``one2one_*`` module or its twin by prefix, so every one-to-one copy is named ``one2one_<name>``.
    Outputs are Segment26's: a raw dict per branch in training (``{"one2many": ..., "one2one": ...}``), rows
    ``(B, 4 + nc + nm + K*3, A)`` or, end-to-end, ``(B, max_det, 6 + nm + K*3)`` with the prototypes otherwise.
    """

    legacy = False  # YOLO26 heads use the depthwise class branch; parse_model sets this on classes it knows only
    # As MultiTask.keypoint_feature_gradient, for the one-to-many branch (ultralytics' Detect feeds the one-to-one
    # branch detached features, so no keypoint gradient reaches the neck from there).
    keypoint_feature_gradient = 1.0
    kpts_decode = Pose26.kpts_decode  # YOLO26 decoding: (offset + anchor) * stride, no 2x scaling

    def __init__(
        self,
        nc: int = 80,
        nm: int = 32,
        npr: int = 256,
        kpt_shape: tuple[int, int] = (17, 3),
        reg_max: int = 1,
        end2end: bool = True,
        ch: tuple[int, ...] = (),
    ):
        super().__init__(nc, nm, npr, reg_max, end2end, ch)
        self.kpt_shape = tuple(kpt_shape)
        self.nk = self.kpt_shape[0] * self.kpt_shape[1]
        self.nk_sigma = self.kpt_shape[0] * 2  # sigma_x, sigma_y per keypoint
        self.flow_model = RealNVP()
        c5 = max(ch[0] // 4, self.kpt_shape[0] * (self.kpt_shape[1] + 2))  # Pose26's trunk width
        self.cv5 = nn.ModuleList(nn.Sequential(Conv(x, c5, 3), Conv(c5, c5, 3)) for x in ch)
        self.cv5_kpts = nn.ModuleList(nn.Conv2d(c5, self.nk, 1) for _ in ch)
        self.cv5_sigma = nn.ModuleList(nn.Conv2d(c5, self.nk_sigma, 1) for _ in ch)
        if end2end:
            self.one2one_cv5 = copy.deepcopy(self.cv5)
            self.one2one_cv5_kpts = copy.deepcopy(self.cv5_kpts)
            self.one2one_cv5_sigma = copy.deepcopy(self.cv5_sigma)

    @property
    def one2many(self):
        return {**super().one2many, "pose_head": self.cv5, "kpts_head": self.cv5_kpts, "kpts_sigma_head": self.cv5_sigma}

    @property
    def one2one(self):
        return {**super().one2one, "pose_head": getattr(self, "one2one_cv5", None),
                "kpts_head": getattr(self, "one2one_cv5_kpts", None),
                "kpts_sigma_head": getattr(self, "one2one_cv5_sigma", None)}

    def forward_head(self, x, box_head=None, cls_head=None, mask_head=None, pose_head=None, kpts_head=None,
                     kpts_sigma_head=None) -> dict[str, torch.Tensor]:
        preds = super().forward_head(x, box_head, cls_head, mask_head)
        if pose_head is not None:
            bs = x[0].shape[0]
            scale = self.keypoint_feature_gradient if self.training else 1
            features = [pose_head[i](scale_gradient(x[i], scale)) for i in range(self.nl)]
            preds["kpts"] = torch.cat([kpts_head[i](features[i]).view(bs, self.nk, -1) for i in range(self.nl)], 2)
            if self.training and kpts_sigma_head is not None:
                preds["kpts_sigma"] = torch.cat(
                    [kpts_sigma_head[i](features[i]).view(bs, self.nk_sigma, -1) for i in range(self.nl)], 2)
        return preds

    def _inference(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 4 + nc + nm + K*3, A): boxes, class probabilities, mask coefficients, decoded keypoints."""
        preds = super()._inference(x)
        return torch.cat([preds, self.kpts_decode(x["kpts"])], dim=1)

    def fuse(self) -> None:
        """Drop the unused branch (Detect.fuse), Proto26's semantic head (Segment26.fuse), and what only RLE
        training needs: the flow model and the kept branch's sigma head (as Pose26.fuse)."""
        super().fuse()
        self.flow_model = None
        setattr(self, "one2one_cv5_sigma" if self.end2end else "cv5_sigma", None)

    @classmethod
    def from_segment(cls, segment: Segment26, kpt_shape: tuple[int, int]) -> "MultiTask26":
        """A head with the same inputs and sizes as an (untrained) ultralytics Segment26 head."""
        ch = tuple(seq[0].conv.in_channels for seq in segment.cv2)
        end2end = getattr(segment, "one2one_cv2", None) is not None
        return cls(segment.nc, segment.nm, segment.npr, kpt_shape, segment.reg_max, end2end, ch)
