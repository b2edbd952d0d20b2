"""The catalogue of ``mtdata check`` rules: stable ids, a severity and a one-line explanation.

Ids are part of the interface (JSON output, ``mtdata view`` tags, the trainer's log): never
rename one, add a new id instead. Errors are what training would drop, crash on or learn
wrong; warnings are legal but suspicious; info notes something that loading fixes silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtdata.errors import Finding, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


@dataclass(frozen=True)
class Rule:
    """One check: ``id`` (stable), ``group``, ``severity`` and a one-line ``summary``."""

    id: str
    group: str
    severity: Severity
    summary: str


_TABLE = [
    # data.yaml
    ("yaml_missing_key", "data.yaml", E, "a required key is missing: names; kpt_shape and kpt_names for keypoint tasks; some split"),
    ("yaml_missing_split", "data.yaml", W, "train or val is not given: training needs both"),
    ("yaml_bad_value", "data.yaml", E, "a key has the wrong type or value (names, nc, task, split folders, kpt_sigmas)"),
    ("yaml_split_not_found", "data.yaml", E, "a split's image folder (or list file) does not exist"),
    ("yaml_split_empty", "data.yaml", E, "a split's folders hold no images"),
    ("yaml_bad_kpt_shape", "data.yaml", E, "kpt_shape is not [K, 2|3] with 0 < K <= 1024 ([K, 3] for multitask)"),
    ("yaml_bad_kpt_names", "data.yaml", E, "kpt_names names a class that is not in names, or not K keypoint names"),
    ("yaml_bad_flip_idx", "data.yaml", E, "flip_idx is not a permutation of 0..K-1 that is its own inverse"),
    ("yaml_bad_skeleton", "data.yaml", E, "skeleton is not a list of [a, b] pairs of keypoint indices in 0..K-1"),
    # images and label files
    ("image_unreadable", "image", E, "the image cannot be read or is not an image format that can be decoded"),
    ("image_corrupt", "image", E, "decoding the whole image fails: truncated or corrupt data"),
    ("image_zero_size", "image", E, "the image file is empty or has a zero width or height"),
    ("image_too_large", "image", E, "the image is over 89.5 megapixels (or its file over 1 GiB): never decoded (a decompression bomb?)"),
    ("image_too_small", "image", E, "the image is under 10 pixels wide or high (ultralytics rejects it)"),
    ("image_exif_rotated", "image", W, "EXIF orientation rotates or flips the image when loaded; labels must match that view"),
    ("image_without_label", "image", W, "the image has no label file: it trains as background"),
    ("image_duplicate", "image", W, "the same image content appears twice in one split"),
    ("image_duplicate_across_splits", "image", E, "the same image content is in two splits (leakage)"),
    ("label_without_image", "label", E, "a label file has no image"),
    ("label_unreadable", "label", E, "the label file cannot be read as UTF-8 text (or is not a regular file, or over 64 MiB)"),
    # rows
    ("row_non_numeric", "row", E, "a row holds a token that is not a number"),
    ("row_class_not_integer", "row", E, "the class is not a non-negative integer"),
    ("row_class_out_of_range", "row", E, "the class id is not in names"),
    ("row_not_finite", "row", E, "a value is NaN or inf"),
    ("row_wrong_count", "row", E, "wrong number of values for the row's class and task (keypoint classes: 1 + 3K + polygon)"),
    ("row_too_few_points", "row", E, "a polygon has fewer than 3 points"),
    ("row_invalid", "row", E, "the row cannot be parsed for another reason"),
    ("row_duplicate", "row", E, "the row repeats an earlier row of the same file"),
    # geometry
    ("coord_out_of_bounds", "geometry", E, "a polygon or box coordinate is outside [0, 1] beyond the 0.01 tolerance"),
    ("coord_clipped", "geometry", I, "a coordinate is outside [0, 1] within the 0.01 tolerance: clipped on load"),
    ("zero_area", "geometry", E, "a box or polygon has zero area"),
    ("polygon_self_intersecting", "geometry", E, "the polygon crosses itself (its filled area differs from its outline's by > 1%)"),
    ("object_near_duplicate", "geometry", W, "two objects of one class overlap almost entirely (IoU >= 0.9)"),
    ("object_tiny", "geometry", W, "the object is under 2 pixels wide or high at 640 pixels on the image's long side"),
    # keypoints
    ("kpt_bad_visibility", "keypoint", E, "a keypoint visibility is not 0, 1 or 2"),
    ("kpt_out_of_image", "keypoint", E, "a labeled keypoint lies outside the image beyond the 0.01 tolerance"),
    ("kpt_far_outside_box", "keypoint", E, "a visible keypoint lies far (> half the box's long side) outside its object's box"),
    ("kpt_unlabeled_nonzero", "keypoint", W, "an unlabeled keypoint (visibility 0) has non-zero coordinates"),
    ("kpt_none_labeled", "keypoint", W, "a row of a keypoint class has no labeled keypoint"),
]

RULES: dict[str, Rule] = {rid: Rule(rid, group, sev, text) for rid, group, sev, text in _TABLE}


def finding(rule: str, file: str | Path, line: int | None, message: str) -> Finding:
    """A finding of a catalogued rule, with the rule's severity; unknown ids raise KeyError."""
    return Finding(rule, RULES[rule].severity, str(file), line, message)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)
