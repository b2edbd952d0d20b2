"""The one postprocess step the predictor and the validator share, after their NMS.

Each row NMS keeps carries, after its box, score and class, ``nm`` mask coefficients and ``K x D`` keypoint
values (x, y in input pixels, visibility probability). Objects of classes without keypoints get all-zero
keypoints (no visible point), so nothing downstream (results, label rows, plots, metrics) draws or scores
keypoints the model was never taught for that class.
"""

from __future__ import annotations

import torch


def without_keypoints(cls: torch.Tensor, keypoint_classes) -> torch.Tensor:
    """(N,) bool: which of N detections of classes ``cls`` belong to a class without keypoints (none when
    ``keypoint_classes`` is None, i.e. unknown)."""
    if keypoint_classes is None:
        return torch.zeros(cls.shape[0], dtype=torch.bool, device=cls.device)
    allowed = torch.tensor(sorted(int(c) for c in keypoint_classes), device=cls.device, dtype=torch.long)
    return ~torch.isin(cls.long(), allowed)


def split_extra(extra: torch.Tensor, cls: torch.Tensor, nm: int, kpt_shape, keypoint_classes) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, nm + K*D) extra channels of N detections of classes ``cls`` (N,) -> (coefficients (N, nm), keypoints (N, K, D)),
    the keypoints of classes without keypoints zeroed.

    ``keypoint_classes``: class ids that have keypoints; None when unknown (nothing is zeroed).
    """
    coefficients = extra[:, :nm]
    keypoints = extra[:, nm:].reshape(extra.shape[0], *kpt_shape).clone()
    keypoints[without_keypoints(cls, keypoint_classes)] = 0.0
    return coefficients, keypoints
