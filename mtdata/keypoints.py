"""Keypoint metadata and similarity: left/right flip pairs from names, OKS sigmas, OKS."""

from __future__ import annotations

import re

import numpy as np
from pycocotools.cocoeval import Params

# COCO's per-keypoint OKS sigmas for its 17 person keypoints, from pycocotools itself (cocoeval.Params).
COCO_PERSON_SIGMAS = Params(iouType="keypoints").kpt_oks_sigmas.tolist()
# OKS area of an object known only by its box: box area x 0.53 (xtcocotools' factor; ultralytics
# uses it for every object). With a mask, the mask's area is used, as COCO uses the segment area.
BOX_AREA_FACTOR = 0.53

# (pattern, replacement for the mirrored side); tried in order, the first that matches wins.
_SIDE_RULES = [
    (re.compile(r"(?i)\bleft(?=[\s_\-]|$)|^left|left$"), "left", "right"),
    (re.compile(r"(?i)\bright(?=[\s_\-]|$)|^right|right$"), "right", "left"),
    (re.compile(r"^Left(?=[A-Z])"), "Left", "Right"),
    (re.compile(r"^Right(?=[A-Z])"), "Right", "Left"),
    (re.compile(r"(?i)^l(?=[_\-\s])"), "l", "r"),
    (re.compile(r"(?i)^r(?=[_\-\s])"), "r", "l"),
    (re.compile(r"(?i)(?<=[_\-\s])l$"), "l", "r"),
    (re.compile(r"(?i)(?<=[_\-\s])r$"), "r", "l"),
]


def _mirror_name(name: str) -> str | None:
    for pattern, side, other in _SIDE_RULES:
        match = pattern.search(name)
        if match:
            found = match.group(0)
            if found.lower() != side.lower():
                continue
            # keep the case style of what was found: left/Left/LEFT, l/L
            replacement = other.upper() if found.isupper() and len(found) > 1 else other.capitalize() if found[0].isupper() else other
            if len(found) == 1:
                replacement = other.upper() if found.isupper() else other.lower()
            return name[: match.start()] + replacement + name[match.end():]
    return None


def derive_flip_idx(names: list[str]) -> tuple[list[int], list[str]]:
    """flip_idx from keypoint names: ``left_eye``<->``right_eye``, ``l_knee``<->``r_knee``, ``LeftHand``<->``RightHand``.

    Returns:
        (flip_idx of len(names), names that look sided but have no partner). A name with no
        side maps to itself.

    >>> derive_flip_idx(["nose", "left_eye", "right_eye"])
    ([0, 2, 1], [])
    """
    index = {n: i for i, n in enumerate(names)}
    flip = list(range(len(names)))
    unpaired = []
    for i, name in enumerate(names):
        mirrored = _mirror_name(name)
        if mirrored is None:
            continue
        if mirrored in index:
            flip[i] = index[mirrored]
        else:
            unpaired.append(name)
    if any(flip[flip[i]] != i for i in range(len(flip))):
        return list(range(len(names))), unpaired + ["(inconsistent pairs)"]
    return flip, unpaired


def default_sigmas(num_keypoints: int) -> list[float]:
    """COCO's sigmas for 17 keypoints, else uniform 1/K as ultralytics does."""
    if num_keypoints == 17:
        return list(COCO_PERSON_SIGMAS)
    return [1.0 / num_keypoints] * num_keypoints if num_keypoints else []


def object_keypoint_similarity(
    pred_xy: np.ndarray, gt_xyv: np.ndarray, area: float, sigmas: np.ndarray
) -> float | None:
    """COCO's OKS of one predicted pose against one labelled pose (pycocotools ``computeOks``).

    ultralytics' ``kpt_iou`` computes the same for (N, M) pairs in torch (with eps 1e-7 where this has
    ``np.spacing(1)``); mtdata does not import ultralytics, so the test suite checks the two agree.

    Args:
        pred_xy: (K, 2) predicted points, pixels.
        gt_xyv: (K, 3) labelled points, pixels, with COCO visibility.
        area: the labelled object's area in pixels (its segment area, as COCO uses; else
            BOX_AREA_FACTOR x its box area).
        sigmas: (K,) per-keypoint sigmas.

    Returns:
        OKS in [0, 1], or None when the label has no labelled point.
    """
    labelled = gt_xyv[:, 2] > 0
    if not labelled.any():
        return None
    variances = (2 * np.asarray(sigmas)) ** 2
    d2 = ((pred_xy - gt_xyv[:, :2]) ** 2).sum(axis=1)
    e = d2 / variances / (area + np.spacing(1)) / 2
    return float(np.exp(-e)[labelled].mean())
