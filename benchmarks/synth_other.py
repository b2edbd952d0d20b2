"""A second synthetic multitask set, built unlike ``mtdata synth``, for the learning benchmark.

``mtdata synth`` draws 1-4 upright stars (5 keypoints at the tips) and ellipses, 0.2-0.44 of the
image across, never overlapping, on blurred noise. This set differs in every one of those:

- shapes: ``plane`` (class with keypoints nose, left/right wing tip, left/right tail tip, named in
  the plane's own frame so horizontal flips swap them) turned up to +-30 degrees, with random
  wing span and sweep; ``brick`` (no keypoints): a turned rectangle, aspect 1.3-3;
- sizes: lengths log-uniform in 0.3-0.75 of the image (small and large objects in one image);
- objects per image: 2-5;
- occlusion: objects overlap, later ones on top; each label is the visible part (shapely
  difference; one object can be split into several polygons), keypoints under an occluder are
  labeled hidden (visibility 1, as COCO labels them), and every object keeps 60% of itself visible;
- background: a random two-colour gradient with faint noise, not blurred uniform noise.

It writes COCO JSON (``annotations/instances_{train,val}.json``) and ``images/{train,val}/*.png``,
so ``mtdata convert`` makes the multitask, segment-only and pose-only datasets from it exactly as
from ``mtdata synth``.

Usage::

    .venv/bin/python benchmarks/synth_other.py OUT --train 200 --val 40 --size 160 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.ops import unary_union

PLANE_KEYPOINTS = ["nose", "left_wing", "right_wing", "left_tail", "right_tail"]
PLANE_SKELETON = [[1, 2], [1, 3], [1, 4], [1, 5]]  # 1-based, as COCO stores it
PLANE_ID, BRICK_ID = 1, 2
MIN_VISIBLE = 0.6  # share of an object's own area that must stay visible
MIN_PART_AREA = 3.0  # px^2: smaller visible slivers are dropped from the label (and not drawn apart)


def _plane(rng: np.random.Generator, length: float) -> tuple[np.ndarray, np.ndarray]:
    """A plane seen from above, nose towards -y, centred at 0: outline (P, 2) and keypoints (5, 2).

    The plane's left is image left when it points up (-y), as for a person seen from behind.
    """
    span = rng.uniform(0.8, 1.1)  # wing tip x, in units of length
    sweep = rng.uniform(0.0, 0.15)  # how far back the wing tips sit
    tail = rng.uniform(0.22, 0.3)
    body = rng.uniform(0.1, 0.13)
    right = np.array([
        (body, -0.34), (body, -0.12), (span / 2, 0.0 + sweep), (span / 2, 0.14 + sweep), (body, 0.1),
        (body * 0.8, 0.32), (tail, 0.42), (tail, 0.5), (0.0, 0.47),
    ])
    left = right[::-1][1:] * [-1, 1]  # mirror, without repeating the tail centre
    outline = np.concatenate([[(0.0, -0.5)], right, left]) * length
    keypoints = np.array([
        (0.0, -0.5), (-span / 2, 0.07 + sweep), (span / 2, 0.07 + sweep), (-tail, 0.46), (tail, 0.46),
    ]) * length
    return outline, keypoints


def _brick(rng: np.random.Generator, length: float) -> np.ndarray:
    """A rectangle centred at 0, long side along x: outline (4, 2)."""
    w, h = length / 2, length / (2 * rng.uniform(1.3, 3.0))
    return np.array([(-w, -h), (w, -h), (w, h), (-w, h)])


def _turned(xy: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return xy @ rot.T + centre


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8 BGR: a two-colour gradient in a random direction, with faint noise."""
    a, b = rng.integers(40, 215, size=(2, 3))
    t = np.deg2rad(rng.uniform(0, 360))
    yy, xx = np.mgrid[0:size, 0:size] / size
    ramp = (np.cos(t) * xx + np.sin(t) * yy)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = a[None, None] * (1 - ramp[..., None]) + b[None, None] * ramp[..., None]
    image = image + rng.normal(0, 3, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, canvas: np.ndarray, outline: list[np.ndarray]) -> tuple[int, ...]:
    """A random colour at least 80 (Euclidean, BGR) from the mean of what it covers, so every object is visible."""
    region = np.zeros(canvas.shape[:2], dtype=np.uint8)
    cv2.fillPoly(region, outline, 1, shift=4)
    under = canvas[region > 0].mean(0) if region.any() else canvas.reshape(-1, 3).mean(0)
    colour = rng.integers(0, 256, size=3)
    for _ in range(20):
        if np.linalg.norm(colour - under) >= 80:
            break
        colour = rng.integers(0, 256, size=3)
    return tuple(int(c) for c in colour)


def _parts(geometry) -> list[Polygon]:
    if geometry.is_empty:
        return []
    if isinstance(geometry, Polygon):
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon)]


def _ring(polygon: Polygon) -> np.ndarray:
    return np.asarray(polygon.exterior.coords)[:-1]


def _image_objects(rng: np.random.Generator, size: int) -> list[dict]:
    """Place 2-5 objects, later ones on top; returns each with its full outline, class and keypoints."""
    objects: list[dict] = []
    wanted = int(rng.integers(2, 6))
    for _ in range(wanted * 8):
        if len(objects) == wanted:
            break
        length = float(np.exp(rng.uniform(np.log(0.3), np.log(0.75)))) * size
        is_plane = rng.random() < 0.5
        if is_plane:
            outline, keypoints = _plane(rng, length)
        else:
            outline, keypoints = _brick(rng, length), None
        degrees = rng.uniform(-30, 30) if is_plane else rng.uniform(0, 180)
        local = _turned(outline, degrees, np.zeros(2))
        lo, hi = local.min(0), local.max(0)
        if np.any(hi - lo > size - 2):
            continue
        centre = np.array([rng.uniform(1 - lo[0], size - 1 - hi[0]), rng.uniform(1 - lo[1], size - 1 - hi[1])])
        shape = Polygon(_turned(outline, degrees, centre))
        if not shape.is_valid or shape.area < 8:
            continue
        # every object already placed keeps MIN_VISIBLE of itself, in polygons without holes
        trial = objects + [{"shape": shape}]
        if not all(_visible_ok(trial, i) for i in range(len(objects))):
            continue
        objects.append({
            "shape": shape, "plane": is_plane,
            "keypoints": None if keypoints is None else _turned(keypoints, degrees, centre),
        })
    return objects


def _visible(objects: list[dict], i: int):
    above = [o["shape"] for o in objects[i + 1:]]
    return objects[i]["shape"].difference(unary_union(above)) if above else objects[i]["shape"]


def _visible_ok(objects: list[dict], i: int) -> bool:
    visible = _visible(objects, i)
    parts = [p for p in _parts(visible) if p.area >= MIN_PART_AREA]
    if not parts or sum(p.area for p in parts) < MIN_VISIBLE * objects[i]["shape"].area:
        return False
    return all(not p.interiors for p in parts)  # COCO polygons cannot hold a hole


def make_coco(count: int, size: int, seed: int, first_image_id: int = 1) -> tuple[dict, list[np.ndarray]]:
    """A COCO dict of ``count`` images and the images as (H, W, 3) uint8 BGR arrays."""
    rng = np.random.default_rng(seed)
    categories = [
        {"id": PLANE_ID, "name": "plane", "supercategory": "shape", "keypoints": PLANE_KEYPOINTS, "skeleton": PLANE_SKELETON},
        {"id": BRICK_ID, "name": "brick", "supercategory": "shape"},
    ]
    images, annotations, pixels = [], [], []
    for index in range(count):
        image_id = first_image_id + index
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": size, "height": size})
        canvas = _background(rng, size)
        objects = _image_objects(rng, size)
        for obj in objects:  # bottom to top
            outline = [np.round(_ring(obj["shape"]) * 16).astype(np.int32)]
            colour = _contrasting_colour(rng, canvas, outline)
            cv2.fillPoly(canvas, outline, colour, cv2.LINE_AA, shift=4)
        for i, obj in enumerate(objects):
            parts = [p for p in _parts(_visible(objects, i)) if p.area >= MIN_PART_AREA]
            visible = MultiPolygon(parts) if len(parts) > 1 else parts[0]
            x1, y1, x2, y2 = visible.bounds
            ann = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": PLANE_ID if obj["plane"] else BRICK_ID,
                "iscrowd": 0, "segmentation": [[round(float(v), 2) for v in _ring(p).reshape(-1)] for p in parts],
                "area": round(float(visible.area), 2),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            }
            if obj["plane"]:
                cover = unary_union([o["shape"] for o in objects[i + 1:]]) if i + 1 < len(objects) else None
                kpts = []
                for x, y in obj["keypoints"]:
                    hidden = cover is not None and cover.contains(Point(x, y))
                    kpts += [round(float(x), 2), round(float(y), 2), 1 if hidden else 2]
                ann["keypoints"] = kpts
                ann["num_keypoints"] = 5
            annotations.append(ann)
        pixels.append(canvas)
    coco = {"info": {"description": "planes and bricks, overlapping (benchmarks/synth_other.py)"},
            "images": images, "annotations": annotations, "categories": categories}
    return coco, pixels


def write_other_synth(out: Path, train: int = 200, val: int = 40, size: int = 160, seed: int = 0) -> dict[str, Path]:
    """Write ``annotations/instances_{train,val}.json`` and ``images/{train,val}/*.png`` under ``out``.

    Returns:
        split -> annotation file.
    """
    out = Path(out)
    files, first_id = {}, 1
    for split, count, split_seed in (("train", train, seed), ("val", val, seed + 10_000)):
        coco, pixels = make_coco(count, size, split_seed, first_image_id=first_id)
        first_id += count
        image_dir = out / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        for entry, canvas in zip(coco["images"], pixels):
            cv2.imwrite(str(image_dir / entry["file_name"]), canvas)
        ann = out / "annotations" / f"instances_{split}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(coco))
        files[split] = ann
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = write_other_synth(args.out, args.train, args.val, args.size, args.seed)
    print(f"wrote {', '.join(str(f) for f in files.values())}")


if __name__ == "__main__":
    sys.exit(main())
