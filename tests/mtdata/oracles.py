"""Reference implementations the tests hold the bulk paths to: one image, one object, one row at a time.

No production code calls these (convert, export and merge go through the bulk readers and writers):
they are the slow, obvious spelling of what those do, kept beside the tests that compare the two.

- :func:`image_labels`: the objects of one COCO image as a record, annotation by annotation
  (:func:`mtdata.formats.coco.read.annotation_object`), against :func:`mtdata.formats.coco.objects.table_objects`.
- :func:`labels_to_rows` + :func:`format_label_text`: one record as YOLO label text, row by row
  (:meth:`LabelLayout.format`), against :func:`mtdata.formats.yolo.bulk.label_texts`.
"""

from __future__ import annotations

import numpy as np

from mtdata.errors import AnnotationError
from mtdata.formats.coco.read import Skip, annotation_object
from mtdata.formats.coco.types import CocoAnnotation, CocoImage
from mtdata.formats.yolo.rows import LabelLayout, YoloRow
from mtdata.records import ImageLabels


def image_labels(
    image: CocoImage,
    annotations: list[CocoAnnotation],
    class_of_category: dict[int, int],
    keypoints_of_category: dict[int, int],
    num_keypoints: int,
    include_crowd: bool,
) -> tuple[ImageLabels, list[Skip]]:
    """Objects of one image as a record (pixels), plus the annotations skipped.

    Annotations of categories missing from ``class_of_category`` (filtered classes) are
    ignored silently; crowd ones are skipped with reason ``crowd`` unless ``include_crowd``.
    """
    class_ids, boxes, polygons, kpts, source_ids, skips = [], [], [], [], [], []
    for ann in annotations:
        if ann.category_id not in class_of_category:
            continue
        if ann.iscrowd and not include_crowd:
            skips.append(Skip(ann.id, ann.image_id, "crowd", "crowd annotation (use --crowd include to keep it)"))
            continue
        try:
            xyxy, polygon, k = annotation_object(ann, image, keypoints_of_category.get(ann.category_id, 0))
        except AnnotationError as e:
            skips.append(Skip(ann.id, ann.image_id, e.reason, e.message))
            continue
        padded = np.zeros((num_keypoints, 3))
        padded[: min(len(k), num_keypoints)] = k[:num_keypoints]  # segment output: num_keypoints is 0
        class_ids.append(class_of_category[ann.category_id])
        boxes.append(xyxy)
        polygons.append(polygon)
        kpts.append(padded)
        source_ids.append(ann.id)
    labels = ImageLabels(
        (image.width, image.height),
        np.array(class_ids, dtype=np.int64),
        np.array(boxes).reshape(-1, 4),
        polygons,
        np.array(kpts).reshape(len(class_ids), num_keypoints, 3),
        np.array(source_ids, dtype=np.int64),
    )
    return labels, skips


def format_label_text(rows: list[YoloRow], layout: LabelLayout) -> str:
    return "".join(layout.format(row) + "\n" for row in rows)


def labels_to_rows(labels: ImageLabels, layout: LabelLayout) -> list[YoloRow]:
    """One record (pixels) to rows of ``layout`` (normalized).

    Absent keypoints are written as ``0 0 0``; segment and multitask rows need a polygon of
    >= 3 points, detect and pose rows a box with positive size (callers filter first).
    """
    w, h = labels.resolution_wh
    scale = np.array([w, h], dtype=np.float64)
    rows = []
    for i in range(len(labels)):
        cls = int(labels.class_id[i])
        polygon = box = kpts = None
        if layout.task in ("segment", "multitask"):
            polygon = np.clip(labels.polygons[i] / scale, 0.0, 1.0)
        if layout.task in ("detect", "pose"):
            x1, y1, x2, y2 = np.clip(labels.xyxy[i] / np.tile(scale, 2), 0.0, 1.0)
            box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        if layout.task == "pose" or (layout.task == "multitask" and cls in layout.keypoint_classes):
            kpts = np.zeros((layout.num_keypoints, 3))
            k = min(layout.num_keypoints, labels.num_keypoints)
            src = labels.keypoints[i, :k]
            labeled = src[:, 2] > 0
            kpts[:k, :2] = np.where(labeled[:, None], np.clip(src[:, :2] / scale, 0.0, 1.0), 0.0)
            kpts[:k, 2] = np.where(labeled, src[:, 2], 0.0)
        rows.append(YoloRow(cls, polygon_xyn=polygon, box_cxcywhn=box, keypoints_xyn=kpts))
    return rows
