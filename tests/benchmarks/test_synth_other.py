"""The learning benchmark's second synthetic set: unlike mtdata synth, valid, and convertible like it."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Point, Polygon
from shapely.ops import unary_union

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from synth_other import BRICK_ID, PLANE_ID, PLANE_KEYPOINTS, make_coco, write_other_synth  # noqa: E402

from mtdata.check.dataset import check_dataset  # noqa: E402
from mtdata.convert.dataset import convert_coco  # noqa: E402
from mtdata.keypoints import derive_flip_idx  # noqa: E402


@pytest.fixture(scope="module")
def coco():
    return make_coco(30, 128, seed=4)


def _polygons(ann):
    return [Polygon(np.array(p).reshape(-1, 2)) for p in ann["segmentation"]]


def test_planes_have_sided_keypoints_bricks_none(coco):
    data, _ = coco
    cats = {c["id"]: c for c in data["categories"]}
    flip, unpaired = derive_flip_idx(cats[PLANE_ID]["keypoints"])
    assert cats[PLANE_ID]["keypoints"] == PLANE_KEYPOINTS and flip == [0, 2, 1, 4, 3] and not unpaired
    assert "keypoints" not in cats[BRICK_ID]
    classes = {a["category_id"] for a in data["annotations"]}
    assert classes == {PLANE_ID, BRICK_ID}


def test_objects_overlap_and_labels_are_the_visible_parts(coco):
    data, pixels = coco
    per_image = {}
    for a in data["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    counts = [len(v) for v in per_image.values()]
    assert min(counts) >= 2 and max(counts) <= 5 and len(per_image) == 30
    split_objects = sum(len(a["segmentation"]) > 1 for a in data["annotations"])
    assert split_objects > 0  # an occluder cut some object in two
    overlapping_boxes = 0
    for anns in per_image.values():
        shapes = [unary_union(_polygons(a)) for a in anns]
        for i, a in enumerate(shapes):  # visible parts never overlap one another
            for b in shapes[i + 1:]:
                assert a.intersection(b).area < 1.0
        for i, a in enumerate(anns):
            x1, y1, w1, h1 = a["bbox"]
            for b in anns[i + 1:]:
                x2, y2, w2, h2 = b["bbox"]
                overlapping_boxes += min(x1 + w1, x2 + w2) > max(x1, x2) and min(y1 + h1, y2 + h2) > max(y1, y2)
        for a, shape in zip(anns, shapes):
            assert a["area"] == pytest.approx(shape.area, rel=1e-3)  # coordinates are rounded to 0.01 px
    assert overlapping_boxes > 10


def test_keypoints_under_an_occluder_are_hidden(coco):
    data, _ = coco
    hidden = visible = 0
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        everything = unary_union([unary_union(_polygons(a)) for a in anns])
        for a in anns:
            if a["category_id"] != PLANE_ID:
                continue
            own = unary_union(_polygons(a)).buffer(1.0)
            for x, y, v in np.array(a["keypoints"]).reshape(-1, 3):
                assert v in (1, 2)
                if v == 2:  # a visible tip lies on the object's visible part
                    assert own.contains(Point(x, y))
                    visible += 1
                else:  # a hidden one lies under some other object
                    assert everything.buffer(1.0).contains(Point(x, y)) and not own.buffer(-1.5).contains(Point(x, y))
                    hidden += 1
    assert visible > 0 and hidden > 0


def test_sizes_span_a_wide_range(coco):
    data, _ = coco
    sides = np.array([max(a["bbox"][2], a["bbox"][3]) / 128 for a in data["annotations"]])
    assert sides.min() < 0.3 and sides.max() > 0.6


def test_same_seed_same_set():
    a, pa = make_coco(3, 64, seed=7)
    b, pb = make_coco(3, 64, seed=7)
    assert a == b and all(np.array_equal(x, y) for x, y in zip(pa, pb))


def test_converts_into_clean_multitask_segment_and_pose_datasets(tmp_path):
    files = write_other_synth(tmp_path / "coco", train=6, val=3, size=96, seed=2)
    assert cv2.imread(str(next((tmp_path / "coco" / "images" / "val").glob("*.png")))).shape == (96, 96, 3)
    for task in ("multitask", "segment", "pose"):
        convert_coco([files["train"], files["val"]], tmp_path / task, images_dir=tmp_path / "coco" / "images", task=task)
        result = check_dataset(tmp_path / task / "data.yaml", workers=1)
        errors = [f for f in result.findings if f.severity.value == "error"]
        assert not errors, (task, errors[:3])
    assert "brick" not in (tmp_path / "pose" / "data.yaml").read_text()
