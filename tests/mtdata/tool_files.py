"""Writers of Labelme files and Label Studio exports from a COCO dict, for the tests (and the benchmark).

They write what the tools write (the keys, the coordinate conventions), so converting their output must
give the label files of converting the COCO dict directly.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

KEYPOINTS = ["nose", "left_eye", "right_eye"]
CELL = 50  # images are 200 x 100: four cells of 50 x 100, one object each at most, so no object holds another's points


def random_coco(seed: int, images: int = 6) -> dict:
    """A COCO dict of 200 x 100 images whose objects (person: 3 keypoints, ball: none) do not overlap; integer
    pixel coordinates (exact in percent of 200 and 100), keypoints visible (2) or absent (0)."""
    rng = np.random.default_rng(seed)
    out = {"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "person", "keypoints": KEYPOINTS, "skeleton": [[1, 2], [1, 3]]}, {"id": 2, "name": "ball"}]}
    ann_id = 1
    for image_id in range(1, images + 1):
        out["images"].append({"id": image_id, "file_name": f"img{image_id}.jpg", "width": 200, "height": 100})
        for cell in sorted(rng.choice(4, size=int(rng.integers(0, 4)), replace=False).tolist()):
            cx, cy = CELL * cell + 25, int(rng.integers(30, 71))
            n = int(rng.integers(5, 9))  # spread around the centre: it holds the keypoints (within 6 pixels of it)
            angles = (np.arange(n) + rng.uniform(-0.2, 0.2, n)) / n * 2 * np.pi
            radius = rng.integers(12, 21, n)
            polygon = np.stack([cx + np.round(radius * np.cos(angles)), cy + np.round(radius * np.sin(angles))], 1)
            category = int(rng.integers(1, 3))
            ann = {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0,
                   "segmentation": [polygon.reshape(-1).tolist()], "area": 1.0,
                   "bbox": [float(polygon[:, 0].min()), float(polygon[:, 1].min()), float(np.ptp(polygon[:, 0])), float(np.ptp(polygon[:, 1]))]}
            if category == 1:
                kpts = []
                for _ in KEYPOINTS:
                    v = int(rng.choice([0, 2]))
                    kpts += [float(cx + rng.integers(-4, 5)), float(cy + rng.integers(-4, 5)), v] if v else [0.0, 0.0, 0]
                ann["keypoints"] = kpts
            out["annotations"].append(ann)
            ann_id += 1
    return out


def _by_image(coco: dict) -> dict[int, list[dict]]:
    found = defaultdict(list)
    for ann in coco["annotations"]:
        found[ann["image_id"]].append(ann)
    return found


def _points(ann: dict, category: dict) -> list[tuple[str, float, float]]:
    values = ann.get("keypoints") or []
    return [(name, values[3 * j], values[3 * j + 1]) for j, name in enumerate(category.get("keypoints", [])) if values[3 * j + 2] > 0]


def write_labelme(coco: dict, folder: Path, *, group_ids: bool = True, class_prefix: bool = False, embed: dict | None = None,
                  image_path: str = "{}") -> list[Path]:
    """One Labelme file per image in ``folder`` (``<stem>.json``); ``embed``: file name -> image bytes for imageData;
    ``image_path``: how imagePath names the image (``../images/{}`` for a sibling folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    categories = {c["id"]: c for c in coco["categories"]}
    annotations = _by_image(coco)
    written = []
    for image in coco["images"]:
        shapes = []
        for k, ann in enumerate(annotations[image["id"]]):
            category = categories[ann["category_id"]]
            group = k if group_ids else None
            for part in ann["segmentation"]:
                shapes.append({"label": category["name"], "points": np.reshape(part, (-1, 2)).tolist(), "group_id": group,
                               "description": "", "shape_type": "polygon", "flags": {}, "mask": None})
            for name, x, y in _points(ann, category):
                label = f"{category['name']}/{name}" if class_prefix else name
                shapes.append({"label": label, "points": [[x, y]], "group_id": group, "description": "", "shape_type": "point",
                               "flags": {}, "mask": None})
        data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path.format(image["file_name"]),
                "imageData": base64.b64encode(embed[image["file_name"]]).decode() if embed and image["file_name"] in embed else None,
                "imageHeight": image["height"], "imageWidth": image["width"]}
        path = folder / (image["file_name"].rsplit(".", 1)[0] + ".json")
        path.write_text(json.dumps(data, indent=2))
        written.append(path)
    return written


def _percent(x: float, y: float, image: dict) -> list[float]:
    return [x / image["width"] * 100, y / image["height"] * 100]


def labelstudio_results(anns: list[dict], image: dict, categories: dict, parent_ids: bool = True) -> list[dict]:
    """The ``result`` list of one task (JSON export): a polygon per annotation, a keypoint per labelled point."""
    size = {"original_width": image["width"], "original_height": image["height"], "image_rotation": 0}
    results = []
    for ann in anns:
        category = categories[ann["category_id"]]
        region = f"r{ann['id']}"
        points = [_percent(x, y, image) for x, y in np.reshape(ann["segmentation"][0], (-1, 2)).tolist()]
        results.append({"id": region, "type": "polygonlabels", "from_name": "label", "to_name": "image", **size,
                        "value": {"points": points, "closed": True, "polygonlabels": [category["name"]]}})
        for j, (name, x, y) in enumerate(_points(ann, category)):
            px, py = _percent(x, y, image)
            result = {"id": f"k{ann['id']}_{j}", "type": "keypointlabels", "from_name": "kp", "to_name": "image", **size,
                      "value": {"x": px, "y": py, "width": 0.5, "keypointlabels": [name]}}
            if parent_ids:
                result["parentID"] = region
            results.append(result)
    return results


def write_labelstudio(coco: dict, path: Path, *, variant: str = "json", parent_ids: bool = True, ref: str = "/data/upload/1/{}") -> Path:
    """A Label Studio export of ``coco``: ``json`` (tasks with annotations) or ``min`` (JSON-MIN)."""
    categories = {c["id"]: c for c in coco["categories"]}
    annotations = _by_image(coco)
    tasks = []
    for t, image in enumerate(coco["images"], start=1):
        results = labelstudio_results(annotations[image["id"]], image, categories, parent_ids)
        if variant == "json":
            tasks.append({"id": t, "data": {"image": ref.format(image["file_name"])}, "predictions": [],
                          "annotations": [{"id": t, "completed_by": 1, "was_cancelled": False, "result": results}]})
            continue
        task = {"image": ref.format(image["file_name"]), "id": t}
        for r in results:
            task.setdefault(r["from_name"], []).append({**r["value"], "original_width": r["original_width"],
                                                        "original_height": r["original_height"]})
        task.update({"annotator": 1, "annotation_id": t, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                     "lead_time": 3.5})
        tasks.append(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tasks))
    return path


def encode_brush_rle(values: np.ndarray) -> list[int]:
    """Label Studio's brush RLE of flat uint8 RGBA ``values`` (the inverse of ``decode_brush_rle``): repeated
    values as repeat runs, lone ones as literal runs; 8-bit words, run-length widths 4, 8, 16, 16 bits."""
    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    put(len(values), 32)
    put(7, 5)
    for width in (4, 8, 16, 16):
        put(width - 1, 4)
    changes = np.flatnonzero(np.diff(values.astype(np.int64))) + 1
    starts = np.concatenate([[0], changes]).tolist()
    ends = np.concatenate([changes, [len(values)]]).tolist()
    literal: list[int] = []

    def flush() -> None:
        while literal:
            chunk = literal[:1 << 8]
            del literal[:len(chunk)]
            put(0, 1), put(1, 2), put(len(chunk) - 1, 8)
            for v in chunk:
                put(v, 8)

    for a, b in zip(starts, ends):
        if b - a == 1:
            literal.append(int(values[a]))
            continue
        flush()
        while a < b:
            run = min(b - a, 1 << 16)
            put(1, 1), put(2, 2), put(run - 1, 16), put(int(values[a]), 8)
            a += run
    flush()
    bits += [0] * (-len(bits) % 8)
    return np.packbits(np.array(bits, dtype=np.uint8)).tolist()
