"""mtdata export: a YOLO dataset -> COCO JSON that pycocotools loads, whose conversion gives the dataset back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.convert.dataset import convert_coco
from mtdata.export import build_coco, export_coco
from mtdata.formats.coco.write import annotation_entries, category_entries
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import read_label_file
from mtdata.formats.yolo.splits import split_pairs
from mtdata.records import ImageLabels
from tests.mtdata.factories import SHARED_DATA, square

runner = CliRunner()
SAMPLE = SHARED_DATA / "coco-person"
SAMPLE_ANNOTATIONS = SAMPLE / "annotations" / "person_keypoints_val2017.json"


# --- records -> COCO entries -------------------------------------------------------------


def test_annotation_entries_follow_coco_conventions():
    kpts = np.array([[[20, 15, 2], [30, 35, 1], [7, 9, 0]], [[0, 0, 0]] * 3], dtype=float)
    labels = ImageLabels(
        (100, 80), [0, 1], [[10, 10, 50, 40], [60, 5, 90, 25]],
        [square(10, 10, 30) + [[0, 0], [10, 0], [10, 0], [0, 0]], np.zeros((0, 2))], kpts,
    )
    first, second = annotation_entries(labels, image_id=42, category_ids={0: 3, 1: 7}, keypoint_classes={0}, first_id=5)
    assert first["id"] == 5 and second["id"] == 6 and first["image_id"] == 42 and first["iscrowd"] == 0
    assert first["category_id"] == 3 and second["category_id"] == 7
    assert first["bbox"] == [10.0, 10.0, 40.0, 30.0]  # x, y, width, height
    assert first["segmentation"] == [labels.polygons[0].reshape(-1).tolist()]
    assert first["area"] == 1200.0  # a 40 x 30 rectangle rasterized by pycocotools
    assert first["keypoints"] == [20.0, 15.0, 2, 30.0, 35.0, 1, 0.0, 0.0, 0]  # absent points are 0, 0, 0
    assert first["num_keypoints"] == 2
    # no mask: no polygon, and the OKS area of a box-only object (xtcocotools' 0.53 x box)
    assert second["segmentation"] == [] and second["area"] == pytest.approx(0.53 * 30 * 20)
    assert "keypoints" not in second and "num_keypoints" not in second  # class 1 has no keypoints


def test_categories_carry_keypoint_names_and_a_one_based_skeleton():
    cats = category_entries({0: "person", 1: "ball"}, {0: 9, 1: 2}, {0: ["a", "b", "c"]}, [[0, 1], [1, 2]])
    assert [c["id"] for c in cats] == [2, 9]  # sorted by id
    ball, person = cats
    assert "keypoints" not in ball
    assert person["keypoints"] == ["a", "b", "c"] and person["skeleton"] == [[1, 2], [2, 3]]


# --- datasets on disk --------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets(synth_dir, tmp_path_factory) -> dict[str, Path]:
    """task -> data.yaml of the synthetic COCO converted to that task (read-only)."""
    root = tmp_path_factory.mktemp("export")
    files = [synth_dir / "annotations" / "instances_train.json", synth_dir / "annotations" / "instances_val.json"]
    out = {}
    for task in ("multitask", "segment", "pose"):
        convert_coco(files, root / task, images_dir=synth_dir / "images", task=task)
        out[task] = root / task / "data.yaml"
    return out


def dataset_rows(data_yaml: Path, split: str) -> dict[str, list]:
    """image name -> parsed rows of its label file."""
    config = read_data_yaml(data_yaml)
    layout = config.layout()
    out = {}
    for image in (Path(p) for p, _ in split_pairs(config, split)):
        label = image.parent.parent.parent / "labels" / split / f"{image.stem}.txt"
        parsed = read_label_file(label, layout)
        assert not parsed.problems
        out[image.name] = parsed.rows
    return out


def assert_same_rows(a: dict[str, list], b: dict[str, list]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name]), name
        for ra, rb in zip(a[name], b[name]):
            assert ra.class_id == rb.class_id
            for key in ("polygon_xyn", "box_cxcywhn", "keypoints_xyn"):
                va, vb = getattr(ra, key), getattr(rb, key)
                assert (va is None) == (vb is None), (name, key)
                if va is not None:  # rows are written with 6 decimals
                    np.testing.assert_allclose(va, vb, atol=2e-6, err_msg=f"{name} {key}")


@pytest.mark.parametrize("task", ["multitask", "segment", "pose"])
def test_convert_of_export_gives_back_the_dataset(task, datasets, tmp_path):
    data_yaml = datasets[task]
    for split in ("train", "val"):
        result = runner.invoke(app, ["export", str(data_yaml), str(tmp_path / f"instances_{split}.json"), "--split", split])
        assert result.exit_code == 0, result.output
    back = tmp_path / "back"
    convert_coco([tmp_path / "instances_train.json", tmp_path / "instances_val.json"], back,  # the dataset's images are
                 images_dir=data_yaml.parent / "images", task=task, follow_links=True)  # links out of its folder
    for split in ("train", "val"):
        assert_same_rows(dataset_rows(data_yaml, split), dataset_rows(back / "data.yaml", split))
    original, again = yaml.safe_load(data_yaml.read_text()), yaml.safe_load((back / "data.yaml").read_text())
    for key in ("task", "names", "kpt_shape", "kpt_names", "flip_idx", "skeleton", "train", "val"):
        assert original.get(key) == again.get(key), key
    ids, ids_again = json.loads((data_yaml.parent / "coco_ids.json").read_text()), json.loads((back / "coco_ids.json").read_text())
    assert ids["categories"] == ids_again["categories"]
    assert {s: v["images"] for s, v in ids["splits"].items()} == {s: v["images"] for s, v in ids_again["splits"].items()}


def test_export_matches_its_source_coco_and_keeps_its_ids(datasets, synth_dir, tmp_path):
    out = tmp_path / "val.json"
    report = export_coco(datasets["multitask"], out)
    assert report.ids_from.startswith("source COCO")
    source = json.loads((synth_dir / "annotations" / "instances_val.json").read_text())
    coco = COCO(str(out))  # pycocotools loads it and indexes it
    assert sorted(coco.getImgIds()) == sorted(im["id"] for im in source["images"])
    assert sorted(coco.getCatIds()) == [3, 7]
    assert coco.cats[3]["keypoints"] == source["categories"][0]["keypoints"]
    assert coco.cats[3]["skeleton"] == source["categories"][0]["skeleton"]
    for image in source["images"]:
        exported = coco.imgs[image["id"]]
        assert (exported["file_name"], exported["width"], exported["height"]) == (image["file_name"], image["width"], image["height"])
        ours = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        theirs = [a for a in source["annotations"] if a["image_id"] == image["id"]]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):  # same order as the label rows, which follow the source
            h, w = image["height"], image["width"]
            assert a["category_id"] == b["category_id"] and a["iscrowd"] == 0
            np.testing.assert_allclose(a["bbox"], b["bbox"], atol=0.02)  # synth rounds x, y, w, h each
            rle_a, rle_b = (mask_utils.merge(mask_utils.frPyObjects(x["segmentation"], h, w)) for x in (a, b))
            assert mask_utils.iou([rle_a], [rle_b], [0])[0, 0] > 0.99
            assert a["area"] == pytest.approx(float(mask_utils.area(rle_a)))
            if b["category_id"] == 3:
                np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=0.01)
                assert a["num_keypoints"] == b["num_keypoints"]
            else:
                assert "keypoints" not in a


def test_without_coco_ids_the_ids_are_one_based(datasets, tmp_path):
    source = datasets["segment"]
    data = yaml.safe_load(source.read_text())
    data.pop("coco_ids")
    data["path"] = str(source.parent)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    coco, report = build_coco(read_data_yaml(tmp_path / "data.yaml"), "val")
    assert report.ids_from == "1-based"
    assert [c["id"] for c in coco["categories"]] == [1, 2]
    names = sorted(im["file_name"] for im in coco["images"])
    assert [im["id"] for im in coco["images"]] == list(range(1, len(names) + 1))
    assert [im["file_name"] for im in coco["images"]] == names  # ids follow the sorted paths
    assert all("keypoints" not in c for c in coco["categories"])  # a segment dataset has none


def write_tiny_dataset(root: Path, rows: str, task: str = "multitask") -> Path:
    """One 64 x 48 image with the given label text; returns data.yaml."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "val" / "a.png"), np.zeros((48, 64, 3), np.uint8))
    (root / "labels" / "val" / "a.txt").write_text(rows)
    data = {"path": str(root), "val": "images/val", "names": {0: "person", 1: "ball"}, "task": task}
    if task == "multitask":
        data.update(kpt_shape=[2, 3], kpt_names={0: ["head", "tail"]})
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def test_rows_the_trainer_drops_are_left_out_and_named(tmp_path):
    good = "0 0.5 0.5 2 0 0 0 0.1 0.1 0.5 0.1 0.5 0.5\n"
    data_yaml = write_tiny_dataset(tmp_path / "ds", good + "1 0.2 0.2 0.4 0.2\n" + good + "1 0.1 0.1 0.3 0.1 0.3 0.3\n")
    result = runner.invoke(app, ["export", str(data_yaml), str(tmp_path / "out.json"), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    left_out = report["rows_left_out"]
    assert len(left_out) == 2 and left_out[0].endswith("a.txt:2: a polygon needs at least 3 points, found 2")
    assert left_out[1].endswith("a.txt:3: repeats line 1")
    coco = json.loads((tmp_path / "out.json").read_text())
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2]
    person = coco["annotations"][0]
    assert person["keypoints"] == pytest.approx([32.0, 24.0, 2, 0.0, 0.0, 0]) and person["num_keypoints"] == 1
    assert coco["images"] == [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{data}", "{tmp}/out.json", "--split", "test"], "has no 'test' split"),
        (["{detect}", "{tmp}/out.json"], "export reads multitask, segment, pose datasets"),
        (["{data}", "{tmp}/exists.json"], "exists: pass --overwrite"),
        (["{data}", "{data}", "--overwrite"], "is one of the inputs"),
        (["{data}", "{tmp}"], "is a folder"),
        (["{tmp}/missing.yaml", "{tmp}/out.json"], "data.yaml not found"),
    ],
    ids=["no-such-split", "detect-dataset", "out-exists", "out-is-input", "out-is-folder", "no-data-yaml"],
)
def test_bad_requests_are_one_line_and_write_nothing(args, message, tmp_path):
    data_yaml = write_tiny_dataset(tmp_path / "ds", "1 0.1 0.1 0.3 0.1 0.3 0.3\n")
    detect = write_tiny_dataset(tmp_path / "det", "1 0.5 0.5 0.2 0.2\n", task="detect")
    (tmp_path / "exists.json").write_text("{}")
    before = data_yaml.read_text()
    args = [a.format(data=data_yaml, detect=detect, tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()
    assert (tmp_path / "exists.json").read_text() == "{}" and data_yaml.read_text() == before


# --- the real COCO sample ----------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE_ANNOTATIONS.is_file(), reason=f"COCO sample not found at {SAMPLE}")
def test_real_coco_sample_round_trips(tmp_path):
    convert_coco([SAMPLE_ANNOTATIONS], tmp_path / "mt", images_dir=SAMPLE / "images")
    out = tmp_path / "person_keypoints_val2017.json"
    result = runner.invoke(app, ["export", str(tmp_path / "mt" / "data.yaml"), str(out)])
    assert result.exit_code == 0, result.output
    source = json.loads(SAMPLE_ANNOTATIONS.read_text())
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == sorted(im["id"] for im in source["images"])
    assert coco.getCatIds() == [1] and coco.cats[1]["keypoints"] == source["categories"][0]["keypoints"]
    assert coco.cats[1]["skeleton"] == source["categories"][0]["skeleton"]
    kept = [a for a in source["annotations"] if not a["iscrowd"]]
    assert len(coco.anns) == len(kept)
    by_image = {}
    for a in kept:
        by_image.setdefault(a["image_id"], []).append(a)
    for image_id, theirs in by_image.items():
        image = coco.imgs[image_id]
        h, w = image["height"], image["width"]
        ours = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        for a, b in zip(ours, theirs):
            rle_a, rle_b = (mask_utils.merge(mask_utils.frPyObjects(x["segmentation"], h, w)) for x in (a, b))
            assert mask_utils.iou([rle_a], [rle_b], [0])[0, 0] > 0.97  # parts joined into one ring
            np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=0.01)
            assert a["num_keypoints"] == b["num_keypoints"]
    back = tmp_path / "back"
    convert_coco([out], back, images_dir=SAMPLE / "images")
    assert_same_rows(dataset_rows(tmp_path / "mt" / "data.yaml", "val2017"), dataset_rows(back / "data.yaml", "val2017"))


def test_export_needs_no_images_folder_copy(datasets, tmp_path):
    """A dataset moved with its data.yaml (``path`` no longer exists) still exports."""
    moved = tmp_path / "moved"
    shutil.copytree(datasets["pose"].parent, moved, symlinks=True)
    coco, report = build_coco(read_data_yaml(moved / "data.yaml"), "val")
    assert report.images == len(coco["images"]) > 0 and report.annotations == len(coco["annotations"]) > 0
    assert all(a["segmentation"] == [] and len(a["keypoints"]) == 15 for a in coco["annotations"])


# --- one validator, the source's precision, crowd and supercategory ----------------------------


BOW_TIE = "1 0.1 0.1 0.5 0.3 0.5 0.1 0.1 0.4"
COLLINEAR = "1 0.1 0.1 0.2 0.2 0.3 0.3"


def test_rows_check_calls_errors_are_not_exported(tmp_path):
    """Zero-area and self-crossing polygons: check reports them as errors, export leaves them out, at the same lines."""
    from mtdata.check.dataset import check_dataset

    good = "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n"
    data_yaml = write_tiny_dataset(tmp_path / "ds", good + COLLINEAR + "\n" + BOW_TIE + "\n")
    report = export_coco(data_yaml, tmp_path / "out.json")
    assert report.annotations == 1
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in report.rows_left_out] == ["2", "3"]
    errors = [(f.rule, f.line) for f in check_dataset(data_yaml, workers=1).errors]
    assert errors == [("zero_area", 2), ("polygon_self_intersecting", 3)]


def test_pixel_values_carry_no_float_noise(datasets, tmp_path):
    """0.552141 x 640 is 353.37024, not 353.37023999999997: values are rounded to the rows' precision."""
    import re

    out = tmp_path / "val.json"
    export_coco(datasets["multitask"], out)
    text = out.read_text()
    assert not re.search(r"\d\.\d{8,}", text)  # rows have 6 decimals: pixels need at most 7
    coco = json.loads(text)
    config = read_data_yaml(datasets["multitask"])
    image = coco["images"][0]
    label = config.root / "labels" / "val" / (Path(image["file_name"]).stem + ".txt")
    first_row = label.read_text().splitlines()[0].split()
    x = float(first_row[16 if first_row[0] == "0" else 1])  # the polygon's first x (class 0 carries 15 keypoint values first)
    ann = next(a for a in coco["annotations"] if a["image_id"] == image["id"])
    assert ann["segmentation"][0][0] == round(x * image["width"], 7)


def test_source_decimals():
    from mtdata.export import source_decimals

    assert source_decimals("0 0.5 0.25\n") == 3
    assert source_decimals("0 0.123456 0.5\n") == 7
    assert source_decimals("0 1e-05 0.5\n") == 15
    assert source_decimals("0 0.1234567890123456789 0.5\n") == 15


def _crowd_dataset(tmp_path: Path) -> tuple[Path, dict]:
    from mtdata.synth import SynthSpec, make_coco

    coco, pixels = make_coco(SynthSpec(images=6, size=96, crowd_ratio=0.7), seed=2)
    for category in coco["categories"]:
        category["supercategory"] = f"shape of {category['name']}"
    (tmp_path / "images").mkdir()
    for entry, canvas in zip(coco["images"], pixels):
        cv2.imwrite(str(tmp_path / "images" / entry["file_name"]), canvas)
    (tmp_path / "instances_val.json").write_text(json.dumps(coco))
    convert_coco([tmp_path / "instances_val.json"], tmp_path / "ds", images_dir=tmp_path / "images", crowd="include")
    return tmp_path / "ds" / "data.yaml", coco


def test_crowd_objects_and_supercategories_come_back(tmp_path):
    data_yaml, source = _crowd_dataset(tmp_path)
    report = export_coco(data_yaml, tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text())
    assert {c["id"]: c["supercategory"] for c in back["categories"]} == {c["id"]: c["supercategory"] for c in source["categories"]}
    for image in source["images"]:
        theirs = [a["iscrowd"] for a in source["annotations"] if a["image_id"] == image["id"]]
        ours = [a["iscrowd"] for a in back["annotations"] if a["image_id"] == image["id"]]
        assert ours == theirs, image["file_name"]  # rows follow the source's annotation order
    assert sum(a["iscrowd"] for a in back["annotations"]) > 0 and not report.crowd_changed


def test_crowd_rows_of_a_changed_label_file_are_not_guessed(tmp_path):
    data_yaml, source = _crowd_dataset(tmp_path)
    ids = json.loads((data_yaml.parent / "coco_ids.json").read_text())
    name = next(iter(ids["splits"]["val"]["crowd"]))
    label = data_yaml.parent / "labels" / "val" / (Path(name).stem + ".txt")
    label.write_text("".join(label.read_text().splitlines(keepends=True)[::-1]))  # rows reordered: lines moved
    report = export_coco(data_yaml, tmp_path / "back.json")
    assert report.crowd_changed == 1 and any("changed since mtdata convert" in n for n in report.notes)


def test_an_image_over_the_size_limit_is_left_out_and_named(tmp_path):
    from tests.mtdata.factories import png_bomb

    data_yaml = write_tiny_dataset(tmp_path / "ds", "1 0.1 0.1 0.3 0.1 0.3 0.3\n")
    (tmp_path / "ds" / "images" / "val" / "bomb.png").write_bytes(png_bomb())
    result = runner.invoke(app, ["export", str(data_yaml), str(tmp_path / "out.json")])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "bomb.png" in result.output and "over the limit" in result.output
    assert len(json.loads((tmp_path / "out.json").read_text())["images"]) == 1
