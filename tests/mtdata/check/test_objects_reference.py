"""mtdata.check.objects: the columnar rules give the findings of a plain per-row reference, byte for byte.

The reference below reads each file's rows one at a time (boxes from ``box_cxcywhn`` or the
polygon's extent, every pair of earlier rows for near-duplicates, ``row_key`` for exact repeats),
in the arithmetic order the rules use, so that every printed number must agree to the digit.
Files hold at most 30 rows: below the candidate cap, where the near-duplicate search is complete.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import shapely

from mtdata.check.objects import FileRows, object_findings_batch, was_clipped
from mtdata.check.polygons import polygon_defects
from mtdata.check.rules import finding
from mtdata.check.verify import row_key, verify_label_texts
from mtdata.formats.yolo.rows import LabelLayout, YoloRow, parse_label_text

LAYOUTS = {
    "detect": LabelLayout("detect", num_classes=3),
    "segment": LabelLayout("segment", num_classes=3),
    "pose": LabelLayout("pose", num_classes=2, num_keypoints=4, keypoint_dims=3),
    "pose-2d": LabelLayout("pose", num_classes=2, num_keypoints=3, keypoint_dims=2),
    "multitask": LabelLayout("multitask", num_classes=3, num_keypoints=4, keypoint_classes=frozenset({0, 2})),
}
KPT_NAMES = {0: ["nose", "eye", "hand", "foot"], 1: ["only", "two"]}  # class 1's list is not K long: numbers only
RESOLUTIONS = [None, (640, 480), (100, 3000), (33, 20)]


# --- random label files --------------------------------------------------------------------


def _number(rng, v: float) -> str:
    if v == 0 and rng.random() < 0.3:
        return "-0.0"  # equal to 0.0, but another row to row_key: not an exact repeat
    return f"{v:.6f}" if rng.random() < 0.8 else f"{v:.3f}"


def _fresh_object(rng, layout: LabelLayout) -> dict:
    w, h = np.exp(rng.uniform(np.log(0.0005), np.log(0.4), size=2))
    x, y = rng.uniform(-0.006, 1.006 - w), rng.uniform(-0.006, 1.006 - h)  # a little outside now and then: clipped
    if rng.random() < 0.1:
        x = 0.0  # on the edge exactly: looked at again, not clipped
    k = layout.num_keypoints
    kpts = np.zeros((k, 3))
    kind = rng.random()
    for j in range(k):
        v = int(rng.integers(0, 3)) if kind > 0.15 else 0  # 15%: none labeled
        px, py = x + rng.uniform(0, w), y + rng.uniform(0, h)
        if v and rng.random() < 0.1:  # far outside its box (within the image)
            px = float(np.clip(x + w * rng.choice([-2.0, 3.0]), -0.005, 1.005))
        if v == 0 and rng.random() < 0.6:
            px = py = 0.0  # an absent point written as zeros; the others keep stray coordinates
        kpts[j] = px, py, v
    return {"cls": int(rng.integers(0, layout.num_classes)), "x": x, "y": y, "w": w, "h": h,
            "shape": str(rng.choice(["box", "box", "box", "box", "bowtie", "flat", "many"])), "kpts": kpts}


def _jittered(rng, obj: dict) -> dict:
    s = float(rng.choice([0.0, 0.0005, 0.003, 0.02]))
    out = dict(obj, kpts=obj["kpts"].copy())
    out["x"], out["y"] = obj["x"] + rng.normal(0, s * obj["w"]), obj["y"] + rng.normal(0, s * obj["h"])
    out["kpts"][:, :2] += rng.normal(0, s * 0.01, size=(len(obj["kpts"]), 2)) * (obj["kpts"][:, 2:] > 0)
    return out


def _polygon(obj: dict) -> list[float]:
    x, y, w, h = obj["x"], obj["y"], obj["w"], obj["h"]
    if obj["shape"] == "bowtie":  # crosses itself
        pts = [(x, y), (x + w, y + h), (x + w, y), (x, y + h)]
    elif obj["shape"] == "flat":  # collinear: no area
        pts = [(x, y), (x + w / 2, y + h / 2), (x + w, y + h)]
    elif obj["shape"] == "many":
        t = np.linspace(0, 2 * np.pi, 9)[:-1]
        pts = list(zip(x + w / 2 * (1 + np.cos(t)), y + h / 2 * (1 + np.sin(t))))
    else:
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    return [float(v) for p in pts for v in p]


def _row_text(rng, obj: dict, layout: LabelLayout) -> str:
    numbers = lambda values: [_number(rng, float(v)) for v in values]
    box = numbers([obj["x"] + obj["w"] / 2, obj["y"] + obj["h"] / 2, obj["w"], obj["h"]])
    kpts = obj["kpts"]
    if layout.task == "detect":
        return " ".join([str(obj["cls"]), *box])
    if layout.task == "segment" or (layout.task == "multitask" and obj["cls"] not in layout.keypoint_classes):
        return " ".join([str(obj["cls"]), *numbers(_polygon(obj))])
    if layout.task == "pose":
        values = [t for p in kpts for t in numbers(p[:2]) + ([str(int(p[2]))] if layout.keypoint_dims == 3 else [])]
        return " ".join([str(obj["cls"]), *box, *values])
    values = [t for p in kpts for t in [*numbers(p[:2]), str(int(p[2]))]]
    return " ".join([str(obj["cls"]), *values, *numbers(_polygon(obj))])


def _label_text(rng, layout: LabelLayout) -> str:
    objects, lines = [], []
    for _ in range(int(rng.integers(0, 31))):
        kind = rng.random()
        if objects and kind < 0.1:
            lines.append(lines[int(rng.integers(0, len(lines)))])  # an exact repeat: row_duplicate, not near
            continue
        obj = _jittered(rng, objects[int(rng.integers(0, len(objects)))]) if objects and kind < 0.4 else _fresh_object(rng, layout)
        objects.append(obj)
        lines.append(_row_text(rng, obj, layout))
    return "\n".join(lines) + "\n"


# --- the per-row reference ----------------------------------------------------------------------


def _box_xyxyn(row: YoloRow) -> tuple[float, float, float, float]:
    if row.box_cxcywhn is not None:
        cx, cy, w, h = row.box_cxcywhn.tolist()
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    xs, ys = row.polygon_xyn[:, 0].tolist(), row.polygon_xyn[:, 1].tolist()
    return min(xs), min(ys), max(xs), max(ys)


def _box_iou(a, b) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _named(indices: list[int], names: list[str]) -> str:
    return ", ".join(f"{j} ({names[j]})" if names else str(j) for j in indices)


def _keypoint_findings(row: YoloRow, box, wh: tuple[float, float], kpt_names: dict) -> list[tuple[str, str]]:
    k = len(row.keypoints_xyn)
    names = kpt_names.get(row.class_id) or []
    label = names if len(names) == k else []
    bx = [box[0] * wh[0], box[1] * wh[1], box[2] * wh[0], box[3] * wh[1]]
    margin = 0.5 * max(bx[2] - bx[0], bx[3] - bx[1])
    stray, far = [], []
    for j, (x, y, v) in enumerate(row.keypoints_xyn.tolist()):
        if v == 0 and (x != 0 or y != 0):
            stray.append(j)
        px, py = x * wh[0], y * wh[1]
        if v == 2 and max(bx[0] - px, px - bx[2], bx[1] - py, py - bx[3], 0.0) > margin:
            far.append(j)
    out = []
    if not any(v > 0 for v in row.keypoints_xyn[:, 2].tolist()):
        out.append(("kpt_none_labeled", f"class {row.class_id} has keypoints but none of the {k} is labeled"))
    if stray:
        out.append(("kpt_unlabeled_nonzero", f"keypoints {_named(stray, label)} have visibility 0 but non-zero coordinates"))
    if far:
        out.append(("kpt_far_outside_box", f"visible keypoints {_named(far, label)} lie more than 0.5 box sizes outside the object's box"))
    return out


def _near_duplicate(rows: list[YoloRow], boxes: list, shapes: list, j: int) -> tuple[int, float] | None:
    """The earliest row of j's class that it overlaps with IoU >= 0.9 (polygons' IoU when both have one)."""
    for i in range(j):
        a, b = boxes[i], boxes[j]
        if rows[i].class_id != rows[j].class_id or (a[2] - a[0]) * (a[3] - a[1]) <= 0 or (b[2] - b[0]) * (b[3] - b[1]) <= 0:
            continue
        score = _box_iou(a, b)
        if score < 0.9 or row_key(rows[i]) == row_key(rows[j]):
            continue
        if shapes[i] is not None and shapes[j] is not None:
            overlap = shapely.intersection(shapes[i], shapes[j]).area
            union = shapes[i].area + shapes[j].area - overlap
            score = overlap / union if union > 0 else 0.0
        if score >= 0.9:
            return i, score
    return None


def _reference(f: FileRows, layout: LabelLayout, kpt_names: dict) -> list:
    rows, lines = f.parsed.rows, f.parsed.lines
    wh = tuple(float(v) for v in (f.resolution_wh or (1, 1)))
    found: list[tuple[int, str, str]] = []
    for i, row in enumerate(rows):
        if was_clipped(f.text_lines[lines[i] - 1], row, layout):
            found.append((i, "coord_clipped", "coordinates slightly outside [0, 1] (within 0.01) are clipped on load"))
    shapes = f.shapes
    if shapes is None:
        shapes = []
        for i, row in enumerate(rows):
            defect, shape = None, None
            if row.polygon_xyn is not None:
                (defect,), (shape,) = polygon_defects([row.polygon_xyn])
            shapes.append(shape)
            if defect is not None:
                found.append((i, *defect))
    boxes = [_box_xyxyn(row) for row in rows]
    scale = 640 / max(wh)
    for i, box in enumerate(boxes):
        w, h = (box[2] - box[0]) * (wh[0] * scale), (box[3] - box[1]) * (wh[1] * scale)
        if w < 2 or h < 2:
            found.append((i, "object_tiny", f"the object is {w:.2g}x{h:.2g} pixels at 640 pixels on the long side"))
    for j in range(len(rows)):
        hit = _near_duplicate(rows, boxes, shapes, j)
        if hit is not None:
            found.append((j, "object_near_duplicate", f"overlaps line {lines[hit[0]]} (same class {rows[j].class_id}) with IoU {hit[1]:.3f}"))
    for i, row in enumerate(rows):
        if row.keypoints_xyn is not None and len(row.keypoints_xyn):
            found += [(i, rule, message) for rule, message in _keypoint_findings(row, boxes[i], wh, kpt_names)]
    out = [finding(rule, f.file, lines[i], message) for i, rule, message in found]
    return sorted(out, key=lambda x: x.line or 0)


# --- the comparison -------------------------------------------------------------------------------


def _files(name: str, verified: bool, seed: int) -> tuple[list[FileRows], LabelLayout]:
    layout = LAYOUTS[name]
    rng = np.random.default_rng(seed)
    texts = [(_label_text(rng, layout), f"labels/{name}/{n}.txt") for n in range(160)]
    resolutions = [RESOLUTIONS[int(rng.integers(0, len(RESOLUTIONS)))] for _ in texts]
    if verified:  # as mtdata check runs: the trainer's rows, their shapes judged already
        checked = verify_label_texts(texts, layout)
        return [FileRows(p, t.splitlines(), r, file, s) for (t, file), r, (p, _, s) in zip(texts, resolutions, checked)], layout
    return [FileRows(parse_label_text(t, layout, file), t.splitlines(), r, file) for (t, file), r in zip(texts, resolutions)], layout


@pytest.mark.parametrize("verified", [True, False], ids=["shapes-from-verify", "shapes-judged-here"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_findings_are_the_per_row_references(name, verified):
    files, layout = _files(name, verified, seed=sorted(LAYOUTS).index(name))
    assert sum(len(f.parsed.rows) for f in files) > 1500
    got = object_findings_batch(files, layout, KPT_NAMES)
    assert got == [_reference(f, layout, KPT_NAMES) for f in files]


def test_the_random_files_plant_every_rule():
    """Every object rule fires on the random files, so the comparison above compares something."""
    counts: Counter = Counter()
    for name in LAYOUTS:
        files, layout = _files(name, False, seed=sorted(LAYOUTS).index(name))
        counts.update(f.rule for found in object_findings_batch(files, layout, KPT_NAMES) for f in found)
    rules = ["coord_clipped", "zero_area", "polygon_self_intersecting", "object_tiny", "object_near_duplicate",
             "kpt_none_labeled", "kpt_unlabeled_nonzero", "kpt_far_outside_box"]
    assert all(counts[rule] > 0 for rule in rules), counts
