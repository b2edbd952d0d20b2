"""The real COCO sample in <repo>/../shared/data/coco-person converts and every row agrees with its source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import read_label_file
from mtdata.synth import COCO_PERSON_KEYPOINTS
from tests.mtdata.factories import SHARED_DATA

SAMPLE = SHARED_DATA / "coco-person"
ANNOTATIONS = SAMPLE / "annotations" / "person_keypoints_val2017.json"

pytestmark = pytest.mark.skipif(not ANNOTATIONS.is_file(), reason=f"COCO sample not found at {SAMPLE}")


def source_mask(ann: dict, h: int, w: int) -> np.ndarray:
    seg = ann["segmentation"]
    rles = mask_utils.frPyObjects(seg, h, w) if isinstance(seg, list) else [seg]
    return mask_utils.decode(mask_utils.merge(rles))


def row_mask(polygon_xyn: np.ndarray, h: int, w: int) -> np.ndarray:
    xy = (polygon_xyn * [w, h]).reshape(-1).tolist()
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([xy], h, w)))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "mt"
    report = out.parent / "report.json"
    result = CliRunner().invoke(app, ["convert", str(ANNOTATIONS), str(out), "--images", str(SAMPLE / "images"), "--report", str(report)])
    assert result.exit_code == 0, result.output
    return out, json.loads(report.read_text())


def test_data_yaml(converted):
    out, _ = converted
    config = read_data_yaml(out / "data.yaml")
    assert config.task == "multitask" and config.names == {0: "person"}
    assert config.kpt_shape == (17, 3) and config.kpt_names == {0: COCO_PERSON_KEYPOINTS}
    assert config.flip_idx == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert [15, 13] in config.skeleton and len(config.skeleton) == 19  # 0-based
    assert config.splits == {"val": ["images/val2017"]}


def test_every_row_agrees_with_its_source(converted):
    out, report = converted
    coco = json.loads(ANNOTATIONS.read_text())
    layout = read_data_yaml(out / "data.yaml").layout()
    ids = json.loads((out / "coco_ids.json").read_text())["splits"]["val2017"]["images"]
    assert sorted(ids.values()) == sorted(im["id"] for im in coco["images"])
    rows_seen = 0
    for image in coco["images"]:
        w, h = image["width"], image["height"]
        assert (out / "images" / "val2017" / image["file_name"]).resolve() == (SAMPLE / "images" / image["file_name"]).resolve()
        parsed = read_label_file(out / "labels" / "val2017" / f"{Path(image['file_name']).stem}.txt", layout)
        assert parsed.problems == []
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
        assert len(parsed.rows) == len(anns)
        for row, ann in zip(parsed.rows, anns):
            assert row.class_id == 0
            want = np.array(ann["keypoints"], dtype=float).reshape(17, 3) / [w, h, 1]
            want[want[:, 2] == 0, :2] = 0
            np.testing.assert_allclose(row.keypoints_xyn, want, rtol=0, atol=1e-6, err_msg=f"annotation {ann['id']}")
            truth, got = source_mask(ann, h, w), row_mask(row.polygon_xyn, h, w)
            iou = np.logical_and(truth, got).sum() / np.logical_or(truth, got).sum()
            assert iou >= 0.9, f"annotation {ann['id']}: IoU {iou:.3f}"
            rows_seen += 1
    assert rows_seen == report["rows"] == 14
    assert report["skipped_annotations"] == []
