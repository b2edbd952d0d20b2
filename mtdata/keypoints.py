"""Keypoint metadata: left/right flip pairs from names, and OKS sigmas."""

from __future__ import annotations

import re

# COCO's per-keypoint OKS sigmas for its 17 person keypoints (pycocotools cocoeval.py).
COCO_PERSON_SIGMAS = [
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
]
COCO_PERSON_SIGMAS = [s / 10.0 for s in COCO_PERSON_SIGMAS]

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
    return [1.0 / num_keypoints] * num_keypoints
