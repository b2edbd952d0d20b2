"""Synthetic COCO data: what the demo, tests and benchmarks rely on."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.formats.coco.read import read_coco
from mtdata.geometry import decode_rle, polygon_signed_area
from mtdata.keypoints import derive_flip_idx
from mtdata.synth import DISC_ID, FIGURE_ID, SynthSpec, make_coco, write_synth


def test_categories_are_non_contiguous_with_sided_keypoints():
    coco, _ = make_coco(SynthSpec(images=2), draw=False)
    cats = {c["id"]: c for c in coco["categories"]}
    assert sorted(cats) == [FIGURE_ID, DISC_ID] and FIGURE_ID + 1 != DISC_ID
    flip, unpaired = derive_flip_idx(cats[FIGURE_ID]["keypoints"])
    assert flip != list(range(len(flip))) and unpaired == []
    assert "keypoints" not in cats[DISC_ID]


def test_annotations_are_consistent():
    spec = SynthSpec(images=20, size=128, objects=(2, 4))
    coco, pixels = make_coco(spec, seed=5)
    assert len(coco["images"]) == 20 and len(pixels) == 20
    assert all(p.shape == (128, 128, 3) and p.dtype == np.uint8 for p in pixels)
    image_ids = {im["id"] for im in coco["images"]}
    ann_ids = [a["id"] for a in coco["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)
    per_image = {i: 0 for i in image_ids}
    for ann in coco["annotations"]:
        assert ann["image_id"] in image_ids
        per_image[ann["image_id"]] += 1
        polygon = np.array(ann["segmentation"][0]).reshape(-1, 2)
        assert len(polygon) >= 3 and polygon.min() >= 0 and polygon.max() <= 128
        x, _, w, h = ann["bbox"]
        assert w > 0 and h > 0
        if ann["category_id"] == FIGURE_ID:
            kpts = np.array(ann["keypoints"]).reshape(-1, 3)
            assert len(kpts) == 5
            labeled = kpts[:, 2] > 0
            assert ann["num_keypoints"] == labeled.sum()
            inside = (kpts[labeled, 0] >= x - 0.02) & (kpts[labeled, 0] <= x + w + 0.02)
            assert inside.all()
    assert min(per_image.values()) >= 1 and max(per_image.values()) <= 4


def test_same_seed_same_data_other_seed_other_data():
    a, _ = make_coco(SynthSpec(images=3), seed=1, draw=False)
    b, _ = make_coco(SynthSpec(images=3), seed=1, draw=False)
    c, _ = make_coco(SynthSpec(images=3), seed=2, draw=False)
    assert a == b and a != c


def test_objects_are_drawn_where_annotated():
    coco, pixels = make_coco(SynthSpec(images=4, size=96), seed=2)
    for image, canvas in zip(coco["images"], pixels):
        for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            mask = np.zeros((96, 96), np.uint8)
            for part in ann["segmentation"]:
                cv2.fillPoly(mask, [np.round(np.array(part).reshape(-1, 2)).astype(np.int32)], 1)
            inside = canvas[mask > 0].astype(float).std(axis=0).mean()
            assert mask.sum() > 20 and inside < 30  # a flat colour, unlike the noisy background


def test_benchmark_options():
    spec = SynthSpec(images=60, size=640, objects=(5, 7), person_keypoints=True, multipart_ratio=0.5, crowd_ratio=0.2,
                     star_points=32)
    coco, pixels = make_coco(spec, seed=0, draw=False)
    assert pixels is None
    anns = coco["annotations"]
    persons = [a for a in anns if a["category_id"] == FIGURE_ID and not a["iscrowd"]]
    assert coco["categories"][0]["name"] == "person" and len(coco["categories"][0]["keypoints"]) == 17
    assert all(len(a["keypoints"]) == 51 for a in persons)
    assert all(len(a["segmentation"][0]) == 64 for a in persons)  # 32 points
    for a in persons[:10]:  # the tips (first 5 keypoints) stay corners of the densified outline
        outline = {tuple(np.round(p, 1)) for p in np.array(a["segmentation"][0]).reshape(-1, 2)}
        tips = np.array(a["keypoints"]).reshape(-1, 3)[:5]
        assert all(tuple(np.round(t[:2], 1)) in outline for t in tips if t[2] > 0)
        assert polygon_signed_area(np.array(a["segmentation"][0]).reshape(-1, 2)) != 0
    assert any(len(a["segmentation"]) == 2 for a in anns if a["category_id"] == DISC_ID)
    crowd = [a for a in anns if a["iscrowd"]]
    assert crowd and all(decode_rle(a["segmentation"], 640, 640).sum() > 0 for a in crowd)
    assert 5 * 60 * 0.9 <= len(anns) - len(crowd) <= 7 * 60


def test_write_synth(tmp_path):
    files = write_synth(tmp_path, images=8, size=64, seed=1)
    assert set(files) == {"train", "val"}
    train, val = read_coco(files["train"]), read_coco(files["val"])
    assert len(train.images) == 8 and len(val.images) == 4
    assert not set(train.images) & set(val.images)  # image ids unique across splits
    for split, coco in (("train", train), ("val", val)):
        for image in coco.images.values():
            pixels = cv2.imread(str(tmp_path / "images" / split / image.file_name))
            assert pixels.shape == (64, 64, 3)


def test_write_synth_val_count(tmp_path):
    files = write_synth(tmp_path, images=8, size=48, seed=1, val=6)
    assert len(read_coco(files["train"]).images) == 8 and len(read_coco(files["val"]).images) == 6


def test_synth_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "coco"
    result = runner.invoke(app, ["synth", str(out), "--images", "4", "--size", "48", "--seed", "3"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert len(data["images"]) == 4
    result = runner.invoke(app, ["synth", str(out), "--images", "4"])
    assert result.exit_code == 2 and "not empty" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--size", "100000"], ["--images", "10000000"], ["--size", "8"]])
def test_synth_options_are_bounded_before_anything_is_drawn(tmp_path, args):
    """A negative seed was a numpy traceback; a huge size allocated size x size x 3 bytes per image."""
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()
