"""One image's labels as FiftyOne values: boxes, cropped masks, keypoints, tags, an ``fo.Sample``.

Each label row becomes a ``fo.Detection`` (box + instance mask cropped to the box, FiftyOne's
layout) and, for keypoint classes, a ``fo.Keypoint`` (absent points NaN, COCO visibility kept
in a ``visibility`` attribute); both carry the same ``fo.Instance`` so the App knows they are
one object. ``mtdata check`` findings and rows that cannot be parsed become sample and label
tags named by rule.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mtdata.check.verify import rule_of_problem
from mtdata.errors import Finding
from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.geometry import polygon_to_mask, polygon_xyxy
from mtdata.records import VISIBILITY_ABSENT, ImageLabels
from mtdata.view.entries import ImageEntry
from mtdata.view.fields import GT_FIELD, import_fiftyone, keypoints_field


def object_mask(polygon_xy: np.ndarray, resolution_wh: tuple[int, int]) -> tuple[list[float], np.ndarray] | None:
    """An instance mask cropped to its pixel-aligned box, FiftyOne's layout.

    Args:
        polygon_xy: (P, 2) polygon, pixels (x, y).
        resolution_wh: image (width, height).

    Returns:
        (bounding_box [x, y, w, h] normalized to the image, (h, w) bool mask), or None when
        the polygon covers no whole pixel row or column. The box is the polygon's box rounded
        out to whole pixels so that the mask maps one-to-one onto image pixels.
    """
    width, height = resolution_wh
    box = polygon_xyxy(polygon_xy)
    x0, y0 = np.floor(box[:2]).astype(int)
    x1, y1 = np.ceil(box[2:]).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = polygon_to_mask(polygon_xy - (x0, y0), y1 - y0, x1 - x0).astype(bool)
    box = [float(x0 / width), float(y0 / height), float((x1 - x0) / width), float((y1 - y0) / height)]
    return box, mask


def _normalized_box(xyxy: np.ndarray, resolution_wh: tuple[int, int]) -> list[float]:
    width, height = resolution_wh
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def keypoint_points(keypoints: np.ndarray, resolution_wh: tuple[int, int]) -> list[list[float]]:
    """(K, 3) pixel keypoints with visibility -> K normalized [x, y], NaN where absent."""
    points = keypoints[:, :2] / np.asarray(resolution_wh, dtype=np.float64)
    points[keypoints[:, 2] == VISIBILITY_ABSENT] = np.nan
    return points.tolist()


def object_fields(
    labels: ImageLabels,
    names: dict[int, str],
    keypoint_classes: Iterable[int],
    *,
    masks: bool = True,
    lines: list[int] | None = None,
    tags: dict[int, list[str]] | None = None,
) -> tuple[list[dict], list[dict]]:
    """The FiftyOne fields of one image's objects, as plain values.

    Args:
        labels: objects in pixels of ``labels.resolution_wh``.
        names: class id -> name.
        keypoint_classes: class ids whose objects get keypoints.
        masks: rasterize polygons into masks (False when the image size is unknown).
        lines: 1-based label-file line of each object, kept as the ``line`` attribute.
        tags: object index -> label tags (rules that flagged it).

    Returns:
        (detection fields, keypoint fields): dicts with id, label, bounding_box [x, y, w, h]
        normalized, mask (h, w) bool or None, index, tags, instance_id (shared by an object's
        detection and keypoints) and attributes; keypoint dicts have points (K normalized
        [x, y], NaN where absent) and a visibility attribute instead of box and mask.
    """
    import_fiftyone()
    from bson import ObjectId  # pymongo's, installed with FiftyOne

    keypoint_classes = frozenset(keypoint_classes)
    tags = tags or {}
    detections, keypoints = [], []
    for i in range(len(labels)):
        cls = int(labels.class_id[i])
        label = names.get(cls, str(cls))
        instance_id = ObjectId()
        box, mask = _normalized_box(labels.xyxy[i], labels.resolution_wh), None
        polygon = labels.polygons[i]
        if masks and len(polygon) >= 3:
            cropped = object_mask(polygon, labels.resolution_wh)
            if cropped is not None:
                box, mask = cropped
        attributes = {"line": lines[i]} if lines is not None else {}
        common = {"label": label, "index": i, "tags": list(tags.get(i, ())), "instance_id": instance_id}
        detections.append({"id": ObjectId(), **common, "bounding_box": box, "mask": mask, "attributes": attributes})
        if cls in keypoint_classes and labels.num_keypoints:
            kpts = labels.keypoints[i]
            keypoints.append({
                "id": ObjectId(), **common, "points": keypoint_points(kpts, labels.resolution_wh),
                "attributes": {"visibility": [int(v) for v in kpts[:, 2]], **attributes},
            })
    return detections, keypoints


def to_fiftyone_labels(detections: list[dict], keypoints: list[dict]):
    """Fields from :func:`object_fields` (or predictions) as ``fo.Detection`` and ``fo.Keypoint`` lists."""
    fo = import_fiftyone()
    dets = [
        fo.Detection(
            id=d["id"], label=d["label"], bounding_box=d["bounding_box"], mask=d.get("mask"),
            confidence=d.get("confidence"), index=d["index"], tags=d["tags"],
            instance=fo.Instance(id=d["instance_id"]), **d["attributes"],
        )
        for d in detections
    ]
    kpts = [
        fo.Keypoint(
            id=k["id"], label=k["label"], points=k["points"], confidence=k.get("confidence"), index=k["index"],
            tags=k["tags"], instance=fo.Instance(id=k["instance_id"]), **k["attributes"],
        )
        for k in keypoints
    ]
    return dets, kpts


def labels_to_fiftyone(labels: ImageLabels, names: dict[int, str], keypoint_classes: Iterable[int], **kwargs):
    """One image's objects as (list of fo.Detection, list of fo.Keypoint); see :func:`object_fields`."""
    return to_fiftyone_labels(*object_fields(labels, names, keypoint_classes, **kwargs))


class FindingIndex:
    """``mtdata check`` findings by file, to tag samples and the objects on the flagged lines."""

    def __init__(self, findings: Iterable[Finding] = ()):
        self.by_file: dict[str, list[Finding]] = defaultdict(list)
        for finding in findings:
            self.by_file[_key(finding.file)].append(finding)
        self.used: set[str] = set()

    def sample_tags(self, *files: Path | None) -> list[str]:
        rules = []
        for file in files:
            if file is not None and _key(file) in self.by_file:
                self.used.add(_key(file))
                rules.extend(f.rule for f in self.by_file[_key(file)])
        return sorted(set(rules))

    def line_tags(self, label_file: Path | None, lines: list[int]) -> dict[int, list[str]]:
        """Object index -> rules of the findings on that object's line."""
        if label_file is None:
            return {}
        by_line = defaultdict(list)
        for finding in self.by_file.get(_key(label_file), ()):
            if finding.line is not None:
                by_line[finding.line].append(finding.rule)
        return {i: sorted(set(by_line[line])) for i, line in enumerate(lines) if line in by_line}

    def unattached(self) -> int:
        """Findings about files that are no sample (data.yaml, labels without images, ...)."""
        return sum(len(v) for k, v in self.by_file.items() if k not in self.used)


def _key(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


def sample_parts(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex) -> tuple[list[str], list[dict], list[dict]]:
    """(sample tags, detection fields, keypoint fields) of one image; both write paths start here."""
    tags = [entry.split, *findings.sample_tags(entry.image, entry.label_file)]
    tags += sorted({rule_of_problem(p) for p in entry.problems} - set(tags))  # rows check also reports
    if entry.image_error:
        tags.append("image_unreadable")
    detections, keypoints = object_fields(
        entry.labels, config.names, config.keypoint_class_ids, masks=entry.resolution_wh is not None,
        lines=entry.lines, tags=findings.line_tags(entry.label_file, entry.lines),
    )
    return tags, detections, keypoints


def entry_to_sample(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex | None = None):
    """An ``ImageEntry`` as an unsaved ``fo.Sample``, for ``Dataset.add_samples`` (FiftyOne's public API)."""
    fo = import_fiftyone()
    tags, detections, keypoints = sample_parts(entry, config, findings or FindingIndex())
    dets, kpts = to_fiftyone_labels(detections, keypoints)
    fields = {"label_file": str(entry.label_file) if entry.label_file else None, GT_FIELD: fo.Detections(detections=dets)}
    if entry.metadata is not None:
        fields["metadata"] = fo.ImageMetadata(**entry.metadata)
    if config.num_keypoints:
        fields[keypoints_field(GT_FIELD)] = fo.Keypoints(keypoints=kpts)
    return fo.Sample(filepath=str(entry.image), tags=tags, **fields)
