"""A small, learnable synthetic dataset in COCO format, for demos, tests and benchmarks.

Two classes with non-contiguous COCO ids: ``figure`` (id 3): a five-pointed star whose tips
are its keypoints (head, left/right hand, left/right foot) and ``disc`` (id 7): an ellipse
without keypoints. Objects are drawn in random colours on a noisy background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mtdata.errors import OutputError
from mtdata.geometry import polygon_areas, polygon_xyxy

FIGURE_KEYPOINTS = ["head", "left_hand", "right_hand", "left_foot", "right_foot"]
FIGURE_SKELETON = [[1, 2], [1, 3], [1, 4], [1, 5]]  # 1-based, as COCO stores it
COCO_PERSON_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
FIGURE_ID, DISC_ID = 3, 7


@dataclass(frozen=True)
class SynthSpec:
    """How a synthetic COCO file is made.

    Attributes:
        images: number of images.
        size: image width and height in pixels.
        objects: (min, max) objects per image.
        person_keypoints: use COCO's 17 person keypoint names (benchmarks) instead of the 5-point figure.
        multipart_ratio: share of discs written as two polygons.
        crowd_ratio: share of images that also get one crowd RLE annotation.
        hidden_ratio, absent_ratio: share of keypoints with visibility 1 and 0.
        star_points: points on a star's outline (>= 10: its 10 corners, the rest spread along
            its edges), so benchmarks can ask for COCO-like ~32-point polygons.
    """

    images: int = 64
    size: int = 160
    objects: tuple[int, int] = (1, 4)
    person_keypoints: bool = False
    multipart_ratio: float = 0.0
    crowd_ratio: float = 0.0
    hidden_ratio: float = 0.1
    absent_ratio: float = 0.05
    star_points: int = 10


# Tip directions in degrees (image axes, y down) for head, left hand, right hand, left foot, right foot.
_TIP_DEGREES = np.array([-90.0, 190.0, -10.0, 125.0, 55.0])


def _star(rng: np.random.Generator, cx: float, cy: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """A five-pointed star: polygon (10, 2) and its tips (5, 2) in FIGURE_KEYPOINTS order."""
    angles = np.deg2rad(_TIP_DEGREES + rng.uniform(-8, 8, size=5))
    tips = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
    order = np.argsort(angles)  # walk the tips around the centre so the outline does not cross itself
    around = angles[order]
    inner_angles = around + np.diff(np.append(around, around[0] + 2 * np.pi)) / 2
    inner = np.stack([cx + 0.45 * r * np.cos(inner_angles), cy + 0.45 * r * np.sin(inner_angles)], axis=1)
    polygon = np.empty((10, 2))
    polygon[0::2], polygon[1::2] = tips[order], inner
    return polygon, tips


def _densify(polygon: np.ndarray, points: int) -> np.ndarray:
    """Spread ``points - len(polygon)`` extra points evenly over the edges of a closed (P, 2) outline."""
    extra = points - len(polygon)
    if extra <= 0:
        return polygon
    per_edge = np.full(len(polygon), extra // len(polygon))
    per_edge[: extra % len(polygon)] += 1
    nxt = np.roll(polygon, -1, axis=0)
    out = []
    for start, end, m in zip(polygon, nxt, per_edge):
        t = np.arange(m + 1)[:, None] / (m + 1)  # 0 keeps the corner itself
        out.append(start + t * (end - start))
    return np.concatenate(out)


def _ellipse(rng: np.random.Generator, cx: float, cy: float, r: float, points: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, points, endpoint=False)
    a, b = r, r * rng.uniform(0.5, 0.9)
    rot = rng.uniform(0, np.pi)
    x, y = a * np.cos(t), b * np.sin(t)
    return np.stack([cx + x * np.cos(rot) - y * np.sin(rot), cy + x * np.sin(rot) + y * np.cos(rot)], axis=1)


def _place(rng: np.random.Generator, size: int, taken: list[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    for _ in range(30):
        r = rng.uniform(0.1, 0.22) * size
        cx, cy = rng.uniform(r, size - r, size=2)
        if all((cx - x) ** 2 + (cy - y) ** 2 > (0.8 * (r + rr)) ** 2 for x, y, rr in taken):
            return cx, cy, r
    return None


def _flat(polygon: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in polygon.reshape(-1)]


def make_coco(spec: SynthSpec, seed: int = 0, draw: bool = True, first_image_id: int = 1):
    """Build a COCO dict and, with ``draw``, the images as (H, W, 3) uint8 BGR arrays.

    Returns:
        (coco dict, list of images or None).
    """
    rng = np.random.default_rng(seed)
    kp_names = COCO_PERSON_KEYPOINTS if spec.person_keypoints else FIGURE_KEYPOINTS
    categories = [
        {"id": FIGURE_ID, "name": "person" if spec.person_keypoints else "figure", "supercategory": "shape",
         "keypoints": kp_names, "skeleton": FIGURE_SKELETON},
        {"id": DISC_ID, "name": "disc", "supercategory": "shape"},
    ]
    images, annotations, pixels = [], [], []
    s = spec.size
    for index in range(spec.images):
        image_id = first_image_id + index
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": s, "height": s})
        canvas = None
        if draw:
            canvas = rng.integers(90, 150, size=(s, s, 3), dtype=np.uint8)
            canvas = cv2.GaussianBlur(canvas, (5, 5), 0)
        for fields in _image_objects(rng, spec, canvas):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **fields})
        if rng.random() < spec.crowd_ratio:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **_crowd_fields(rng, s, len(kp_names))})
        pixels.append(canvas)
    coco = {
        "info": {"description": "mtdata synthetic shapes"},
        "images": images, "annotations": annotations, "categories": categories,
    }
    return coco, (pixels if draw else None)


def _image_objects(rng: np.random.Generator, spec: SynthSpec, canvas: np.ndarray | None) -> list[dict]:
    """The annotations of one image (without id and image_id), figures and discs on free spots, drawn on ``canvas``."""
    objects = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(spec.objects[0], spec.objects[1] + 1))):
        spot = _place(rng, spec.size, taken)
        if spot is None:
            continue
        taken.append(spot)
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        fields, parts = _figure_fields(rng, spec, *spot) if rng.random() < 0.5 else _disc_fields(rng, spec, *spot)
        objects.append(fields)
        if canvas is not None:
            cv2.fillPoly(canvas, [np.round(p).astype(np.int32) for p in parts], color)
    return objects


def _box_fields(polygon: np.ndarray) -> dict:
    """COCO ``area`` and ``bbox`` (xywh, 2 decimals) of a (P, 2) outline."""
    x1, y1, x2, y2 = polygon_xyxy(polygon)
    return {"area": float(polygon_areas([polygon])[0]),
            "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]}


def _figure_fields(rng: np.random.Generator, spec: SynthSpec, cx: float, cy: float, r: float) -> tuple[dict, list[np.ndarray]]:
    """(annotation fields, [(P, 2) outline]) of a star centred at ``cx, cy`` whose tips (and, with person keypoints, 12
    points inside) are its keypoints; some hidden (v=1) or absent (v=0, written as 0, 0, 0)."""
    polygon, tips = _star(rng, cx, cy, r)
    polygon = _densify(polygon, spec.star_points)
    kp = tips
    if spec.person_keypoints:  # 12 more points inside the star
        inside = rng.uniform(-0.3, 0.3, size=(12, 2)) * r + [cx, cy]
        kp = np.concatenate([tips, inside])
    vis = np.full(len(kp), 2)
    roll = rng.random(len(kp))
    vis[roll < spec.hidden_ratio + spec.absent_ratio] = 1
    vis[roll < spec.absent_ratio] = 0
    kpts = np.concatenate([np.round(kp, 2), vis[:, None]], axis=1)
    kpts[vis == 0, :2] = 0
    box = _box_fields(polygon)
    fields = {
        "category_id": FIGURE_ID, "iscrowd": 0, "segmentation": [_flat(polygon)], "area": box["area"], "bbox": box["bbox"],
        "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kpts.reshape(-1))],
        "num_keypoints": int((vis > 0).sum()),
    }
    return fields, [polygon]


def _disc_fields(rng: np.random.Generator, spec: SynthSpec, cx: float, cy: float, r: float) -> tuple[dict, list[np.ndarray]]:
    """(annotation fields, its (P, 2) parts) of an ellipse centred at ``cx, cy``; with ``spec.multipart_ratio`` written as
    two halves, a disc cut by an occluder."""
    polygon = _ellipse(rng, cx, cy, r)
    parts = [polygon]
    if rng.random() < spec.multipart_ratio:
        parts = [polygon[:16], polygon[16:]]
    return {"category_id": DISC_ID, "iscrowd": 0, "segmentation": [_flat(p) for p in parts], **_box_fields(polygon)}, parts


def _crowd_fields(rng: np.random.Generator, size: int, num_keypoints: int) -> dict:
    """Annotation fields of a crowd figure: a disc as an RLE mask (COCO's uncompressed-size, compressed-counts form)."""
    from pycocotools import mask as mask_utils

    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.circle(mask, (int(rng.uniform(0, size)), int(rng.uniform(0, size))), max(2, size // 10), 1, -1)
    rle = mask_utils.encode(np.asfortranarray(mask))
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    return {
        "category_id": FIGURE_ID, "iscrowd": 1, "segmentation": {"size": [size, size], "counts": rle["counts"].decode()},
        "area": float(mask.sum()), "bbox": [x, y, max(w, 1), max(h, 1)],
        "keypoints": [0] * (3 * num_keypoints), "num_keypoints": 0,
    }


def write_synth(out: Path, images: int = 64, size: int = 160, seed: int = 0, val: int | None = None) -> dict[str, Path]:
    """Write ``annotations/instances_{train,val}.json`` and ``images/{train,val}/*.jpg`` under ``out``.

    ``images`` train images and ``val`` val images (default: a quarter as many, at least 4).

    Returns:
        split -> annotation file.
    """
    out = Path(out)
    files = {}
    first_id = 1
    for split, count, split_seed in (("train", images, seed), ("val", max(4, images // 4) if val is None else val, seed + 10_000)):
        coco, pixels = make_coco(SynthSpec(images=count, size=size), seed=split_seed, first_image_id=first_id)
        first_id += count
        image_dir = out / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        for entry, canvas in zip(coco["images"], pixels):
            path = image_dir / entry["file_name"]
            if not cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92]):  # False, not an error, on a full disk
                raise OutputError(f"cannot write {path}: OpenCV could not write the image (is the disk full?)")
        ann = out / "annotations" / f"instances_{split}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(coco))
        files[split] = ann
    return files
