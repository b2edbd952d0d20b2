"""Tiny factories for the mtdata tests: records, COCO dicts and files on disk."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from mtdata.records import ImageLabels


def _shared_data() -> Path:
    """``../shared/data`` beside the checkout, else beside the nearest folder above it that has one (a git
    worktree kept in a subfolder), else the first place (the tests that need it then skip)."""
    repo = Path(__file__).resolve().parents[2]
    for folder in repo.parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return repo.parent / "shared" / "data"


SHARED_DATA = _shared_data()

PERSON_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_hand", "right_hand"]


def square(x: float, y: float, side: float, clockwise: bool = False) -> np.ndarray:
    """(4, 2) square with its top-left corner at (x, y), counter-clockwise in (x, y) axes unless ``clockwise``."""
    xy = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], dtype=np.float64)
    return xy[::-1].copy() if clockwise else xy


def make_labels(
    polygons: list[np.ndarray],
    class_ids: list[int] | None = None,
    keypoints: np.ndarray | None = None,
    resolution_wh: tuple[int, int] = (100, 80),
) -> ImageLabels:
    """A record whose boxes enclose its polygons; keypoints (N, K, 3) default to none."""
    n = len(polygons)
    class_ids = class_ids if class_ids is not None else [0] * n
    xyxy = [np.concatenate([p.min(0), p.max(0)]) if len(p) else np.zeros(4) for p in polygons]
    kpts = keypoints if keypoints is not None else np.zeros((n, 0, 3))
    return ImageLabels(resolution_wh, class_ids, np.array(xyxy).reshape(n, 4), polygons, kpts, np.arange(1, n + 1))


def coco_image(image_id: int, width: int = 100, height: int = 80, file_name: str | None = None) -> dict:
    return {"id": image_id, "file_name": file_name or f"img{image_id}.jpg", "width": width, "height": height}


def person_category(cat_id: int = 1, keypoints: list[str] | None = None, skeleton=None) -> dict:
    return {"id": cat_id, "name": "person", "keypoints": keypoints or PERSON_KEYPOINTS, "skeleton": skeleton or [[1, 2], [1, 3]]}


def plain_category(cat_id: int = 5, name: str = "ball") -> dict:
    return {"id": cat_id, "name": name}


def coco_annotation(ann_id: int, image_id: int = 1, category_id: int = 1, polygon=None, *, keypoints=None,
                    bbox=None, iscrowd: int = 0, segmentation=None) -> dict:
    """An annotation with one polygon part (flat pixel list) and optional keypoints (flat x, y, v list)."""
    if segmentation is None:
        polygon = polygon if polygon is not None else [10, 10, 50, 10, 50, 40, 10, 40]
        segmentation = [list(map(float, polygon))]
    if bbox is None:
        flat = [v for part in segmentation for v in part] if isinstance(segmentation, list) and segmentation else [0, 0, 1, 1]
        xs, ys = flat[0::2], flat[1::2]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    ann = {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": iscrowd,
           "segmentation": segmentation, "bbox": bbox, "area": 1.0}
    if keypoints is not None:
        ann["keypoints"] = list(keypoints)
        ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if isinstance(v, (int, float)) and v > 0)
    return ann


def person_keypoints(*visible: int, k: int = 5, x0: float = 20.0, y0: float = 20.0) -> list[float]:
    """Flat COCO keypoints: points at (x0 + 3i, y0 + 2i); ``visible`` gives each point's visibility (default 2)."""
    vis = list(visible) + [2] * (k - len(visible))
    out: list[float] = []
    for i, v in enumerate(vis):
        out += [0.0, 0.0, 0] if v == 0 else [x0 + 3 * i, y0 + 2 * i, v]
    return out


def coco_dict(images: list[dict] | None = None, annotations: list[dict] | None = None, categories: list[dict] | None = None) -> dict:
    """A COCO dict; defaults to one 100x80 image, one person with 5 keypoints and one plain category."""
    return {
        "images": images if images is not None else [coco_image(1)],
        "annotations": annotations if annotations is not None else [],
        "categories": categories if categories is not None else [person_category(1), plain_category(5)],
    }


@lru_cache(maxsize=4)
def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real PNG of ``width x height`` black 1-bit pixels: ~100 KB that decode to ``width * height`` bytes (8-bit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the bits of one row
    pixels = zlib.compressobj(9)
    data = b"".join(pixels.compress(row) for _ in range(height)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
