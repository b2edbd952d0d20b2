"""Records -> COCO JSON (the writing half of the COCO format; :mod:`mtdata.formats.coco.read` reads).

Pure functions: no file listing, no data.yaml. COCO's conventions written here:

- ``bbox`` is ``[x, y, width, height]`` in pixels; keypoints are ``[x1, y1, v1, ...]`` in
  pixels with visibility 0/1/2 and ``num_keypoints`` counts the labeled ones (v > 0).
- ``segmentation`` is a list of polygons ``[[x1, y1, x2, y2, ...]]``; a record's polygon is one
  part (multi-part objects were joined into one ring on the way in).
- ``area`` is the area of the mask as pycocotools rasterizes it (what COCOeval compares and
  what COCO's own files hold); an object without a mask gets 0.53 x its box area, the
  box-to-area factor of xtcocotools that ultralytics' OKS uses too.
- ``skeleton`` pairs are 1-based (data.yaml's are 0-based).

>>> from mtdata.keypoints import BOX_AREA_FACTOR
from mtdata.records import ImageLabels
>>> import numpy as np
>>> labels = ImageLabels((100, 80), [0], [[10, 10, 50, 40]], [np.array([[10, 10], [50, 10], [50, 40], [10, 40]])],
...                      np.zeros((1, 0, 3)))
>>> ann = annotation_entries(labels, image_id=1, category_ids={0: 1}, keypoint_classes=set(), first_id=1)[0]
>>> ann["bbox"], ann["area"], ann["iscrowd"]
([10.0, 10.0, 40.0, 30.0], 1200.0, 0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mtdata.keypoints import BOX_AREA_FACTOR
from mtdata.records import ImageLabels


def image_entry(image_id: int, file_name: str, resolution_wh: tuple[int, int]) -> dict[str, Any]:
    """A COCO ``images`` entry."""
    width, height = resolution_wh
    return {"id": int(image_id), "file_name": file_name, "width": int(width), "height": int(height)}


def category_entries(
    names: dict[int, str],
    category_ids: dict[int, int],
    kpt_names: dict[int, list[str]],
    skeleton: list[list[int]] | None = None,
    supercategories: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """COCO ``categories``, sorted by id.

    Args:
        names: class index -> name.
        category_ids: class index -> COCO category id.
        kpt_names: keypoint class index -> its K keypoint names (other classes get no ``keypoints``).
        skeleton: 0-based keypoint index pairs (data.yaml's), written 1-based.
        supercategories: class index -> the source's supercategory; a class without one gets its name.
    """
    supercategories = supercategories or {}
    out = []
    for cls, name in names.items():
        entry: dict[str, Any] = {"id": int(category_ids[cls]), "name": name, "supercategory": supercategories.get(cls, name)}
        if cls in kpt_names:
            entry["keypoints"] = list(kpt_names[cls])
            entry["skeleton"] = [[int(a) + 1, int(b) + 1] for a, b in (skeleton or [])]
        out.append(entry)
    return sorted(out, key=lambda c: c["id"])


def mask_area(polygon: np.ndarray, resolution_wh: tuple[int, int]) -> float:
    """Pixels of a (P, 2) pixel polygon rasterized by pycocotools in a (W, H) image."""
    width, height = resolution_wh
    rle = mask_utils.frPyObjects([polygon.reshape(-1).tolist()], height, width)
    return float(mask_utils.area(rle)[0])


def _rounded(values: np.ndarray, decimals: int | None) -> list[float]:
    return (np.round(values, decimals) if decimals is not None else np.asarray(values, dtype=np.float64)).tolist()


def annotation_entries(
    labels: ImageLabels,
    image_id: int,
    category_ids: dict[int, int],
    keypoint_classes: set[int] | frozenset[int],
    first_id: int,
    *,
    crowd: set[int] | frozenset[int] = frozenset(),
    decimals: int | None = None,
) -> list[dict[str, Any]]:
    """COCO ``annotations`` of one image's objects, ids ``first_id, first_id + 1, ...``.

    Args:
        labels: the image's objects, pixels.
        image_id: its COCO image id.
        category_ids: class index -> COCO category id.
        keypoint_classes: classes whose objects carry ``keypoints`` and ``num_keypoints``.
        first_id: id of the first annotation.
        crowd: indices of the objects that are crowd regions (``iscrowd: 1``).
        decimals: round pixel coordinates, boxes and box areas to this many decimals (None:
            as computed). The source's precision: a coordinate of D decimals times an integer
            width has at most D decimals, a box side or centre D + 1, so rounding to those
            removes only float noise (``353.37023999999997`` -> ``353.37024``).
    """
    out = []
    for i in range(len(labels)):
        cls = int(labels.class_id[i])
        x1, y1, x2, y2 = (float(v) for v in labels.xyxy[i])
        polygon = labels.polygons[i] if decimals is None else np.round(labels.polygons[i], decimals)  # the area of what is written
        has_mask = len(polygon) >= 3
        ann: dict[str, Any] = {
            "id": first_id + i,
            "image_id": int(image_id),
            "category_id": int(category_ids[cls]),
            "iscrowd": int(i in crowd),
            "segmentation": [polygon.reshape(-1).tolist()] if has_mask else [],
            "bbox": _rounded(np.array([x1, y1, x2 - x1, y2 - y1]), decimals),
            "area": mask_area(polygon, labels.resolution_wh) if has_mask else BOX_AREA_FACTOR * (x2 - x1) * (y2 - y1),
        }
        if decimals is not None:
            ann["area"] = round(ann["area"], decimals)
        if cls in keypoint_classes:
            kpts = labels.keypoints[i].copy()
            kpts[kpts[:, 2] == 0, :2] = 0.0  # COCO: absent points are written 0, 0, 0
            flat = []
            for (x, y), v in zip(_rounded(kpts[:, :2], decimals), kpts[:, 2].tolist()):
                flat += [x, y, int(v)]
            ann["keypoints"] = flat
            ann["num_keypoints"] = int((kpts[:, 2] > 0).sum())
        out.append(ann)
    return out


def coco_document(images: list[dict], annotations: list[dict], categories: list[dict], description: str = "") -> dict[str, Any]:
    """The whole COCO dict, in the key order COCO files use."""
    return {
        "info": {"description": description},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
