"""``mtdata convert`` through its CLI: outputs agree with the source COCO, bad input, atomic output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtdata._runtime.forking import can_fork
from mtdata.cli import app
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import read_label_file
from mtdata.geometry import polygon_iou, polygon_signed_area
from tests.mtdata.factories import (
    coco_annotation,
    coco_dict,
    coco_image,
    person_category,
    person_keypoints,
    plain_category,
    write_json,
)

runner = CliRunner()


def convert(*args) -> object:
    result = runner.invoke(app, ["convert", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def dataset_rows(out: Path) -> tuple[object, dict[str, dict[str, list]]]:
    """(config, split -> label stem -> rows) of a converted dataset, checking that every row parses."""
    config = read_data_yaml(out / "data.yaml")
    layout = config.layout()
    splits = {}
    for folder in sorted((out / "labels").iterdir()):
        splits[folder.name] = {}
        for path in sorted(folder.glob("*.txt")):
            parsed = read_label_file(path, layout)
            assert parsed.problems == [], parsed.problems[:3]
            splits[folder.name][path.stem] = parsed.rows
    return config, splits


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(out: Path) -> list[str]:
    """Temporary folders the atomic writer may have left beside OUT."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# --- outputs agree with the source ------------------------------------------------------


def expected_objects(coco: dict, image_id: int) -> list[dict]:
    return [a for a in coco["annotations"] if a["image_id"] == image_id and not a["iscrowd"]]


def check_polygon(row_xyn: np.ndarray, ann: dict, w: int, h: int) -> None:
    source_parts = [np.array(p, dtype=float).reshape(-1, 2) for p in ann["segmentation"]]
    got = row_xyn * [w, h]
    area = sum(abs(polygon_signed_area(p)) for p in source_parts)
    assert abs(polygon_signed_area(got)) == pytest.approx(area, rel=1e-3)
    if len(source_parts) == 1:
        assert polygon_iou(got, source_parts[0], h, w) >= 0.98
        np.testing.assert_allclose(np.sort(got, axis=0), np.sort(source_parts[0], axis=0), atol=1e-6 * max(w, h))


@pytest.mark.parametrize("task", ["multitask", "segment", "pose"])
def test_outputs_agree_with_the_source(synth_dir, tmp_path, task):
    files = [synth_dir / "annotations" / "instances_train.json", synth_dir / "annotations" / "instances_val.json"]
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    result = convert(*files, out, "--images", synth_dir / "images", "--task", task, "--report", report)
    assert result.exit_code == 0, result.output
    config, splits = dataset_rows(out)
    assert set(splits) == {"train", "val"}
    assert config.splits == {"train": ["images/train"], "val": ["images/val"]}
    coco_ids = json.loads((out / "coco_ids.json").read_text())
    rows_total = 0
    for split, file in zip(("train", "val"), files):
        coco = json.loads(file.read_text())
        cats = sorted(c["id"] for c in coco["categories"])
        by_id = {im["id"]: im for im in coco["images"]}
        assert len(splits[split]) == len(coco["images"])
        assert sorted(coco_ids["splits"][split]["images"].values()) == sorted(by_id)
        for name, image_id in coco_ids["splits"][split]["images"].items():
            image = by_id[image_id]
            w, h = image["width"], image["height"]
            assert (out / "images" / split / name).resolve() == (synth_dir / "images" / split / image["file_name"]).resolve()
            rows = splits[split][Path(name).stem]
            objects = expected_objects(coco, image_id)
            if task == "pose":
                objects = [a for a in objects if "keypoints" in a and any(a["keypoints"][2::3])]
            assert len(rows) == len(objects)
            rows_total += len(rows)
            for row, ann in zip(rows, objects):
                if task == "pose":
                    assert row.class_id == 0  # names are the keypoint classes only
                    x, y, bw, bh = ann["bbox"]
                    np.testing.assert_allclose(row.box_cxcywhn, [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h], atol=1e-6)
                else:
                    assert row.class_id == cats.index(ann["category_id"])
                    check_polygon(row.polygon_xyn, ann, w, h)
                if task != "segment" and "keypoints" in ann:
                    want = np.array(ann["keypoints"], dtype=float).reshape(-1, 3) / [w, h, 1]
                    want[want[:, 2] == 0, :2] = 0
                    np.testing.assert_allclose(row.keypoints_xyn, want, atol=1e-6)
                else:
                    assert row.keypoints_xyn is None
    if task == "pose":
        assert config.names == {0: "figure"} and config.task == "pose"
    else:
        assert config.names == {0: "figure", 1: "disc"}
    if task == "segment":
        assert config.task == "segment" and config.kpt_shape is None
    else:
        assert config.kpt_shape == (5, 3)
        assert config.flip_idx == [0, 2, 1, 4, 3]
        assert config.skeleton == [[0, 1], [0, 2], [0, 3], [0, 4]]
        assert config.kpt_names[0] == ["head", "left_hand", "right_hand", "left_foot", "right_foot"]
    data = json.loads(report.read_text())
    assert data["rows"] == rows_total and data["task"] == task
    assert f"{rows_total}" in result.stdout


def test_subprocess_run_and_error(synth_dir, tmp_path):
    """The installed entry point, as a user runs it: success, then a user error without a traceback."""
    train = synth_dir / "annotations" / "instances_train.json"
    out = tmp_path / "mt"
    done = subprocess.run([sys.executable, "-m", "mtdata", "convert", str(train), str(out), "--images", str(synth_dir / "images")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "multitask" in done.stdout and (out / "data.yaml").is_file()
    assert len(list((out / "labels" / "train").glob("*.txt"))) == 12
    again = subprocess.run([sys.executable, "-m", "mtdata", "convert", str(train), str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "not empty" in again.stderr and "Traceback" not in again.stderr


# --- file-level problems: exit 2, one line, nothing written -----------------------------


def write_bad(tmp_path: Path, kind: str) -> tuple[list[Path], list[str], str]:
    """(annotation files, extra CLI args, text the error must show) for one file-level problem."""
    ann = tmp_path / "in" / "instances_train.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    good = coco_dict(annotations=[coco_annotation(1, keypoints=person_keypoints())])
    if kind == "missing":
        return [ann], [], "not found"
    if kind == "truncated":
        ann.write_text(json.dumps(good)[:40])
        return [ann], [], "not valid JSON"
    if kind == "not-an-object":
        ann.write_text("[]")
        return [ann], [], "JSON object"
    for key in ("images", "annotations", "categories"):
        if kind == f"no-{key}":
            write_json(ann, {k: v for k, v in good.items() if k != key})
            return [ann], [], f"'{key}'"
    if kind == "undeclared-category":
        write_json(ann, coco_dict(annotations=[coco_annotation(77, category_id=12)]))
        return [ann], [], "category_id 12"
    write_json(ann, good)
    if kind == "images-not-a-folder":
        (tmp_path / "file.jpg").write_text("x")
        return [ann], ["--images", str(tmp_path / "file.jpg")], "--images"
    if kind == "unknown-class":
        return [ann], ["--classes", "person,cat"], "cat"
    if kind == "categories-differ":
        other = write_json(tmp_path / "in" / "instances_val.json", coco_dict(categories=[person_category(1)]))
        return [ann, other], [], "categories differ"
    if kind == "pose-without-keypoints":
        write_json(ann, coco_dict(categories=[plain_category(1)], annotations=[coco_annotation(1)]))
        return [ann], ["--task", "pose"], "keypoints"
    if kind == "duplicate-file-names":
        write_json(ann, coco_dict(images=[coco_image(1, file_name="a.jpg"), coco_image(2, file_name="sub/a.jpg")]))
        return [ann], [], "'a'"
    raise AssertionError(kind)


FILE_LEVEL = [
    "missing", "truncated", "not-an-object", "no-images", "no-annotations", "no-categories", "undeclared-category",
    "images-not-a-folder", "unknown-class", "categories-differ", "pose-without-keypoints", "duplicate-file-names",
]


@pytest.mark.parametrize("kind", FILE_LEVEL)
def test_file_level_problems_exit_2_with_one_line(tmp_path, kind):
    files, extra, text = write_bad(tmp_path, kind)
    out = tmp_path / "out"
    result = convert(*files, out, *extra)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert text in lines[0]
    assert any(f"{path}:" in lines[0] for path in [*files, tmp_path / "file.jpg"])  # names the file
    assert not out.exists() and leftovers(out) == []


def test_out_not_empty_needs_overwrite(synth_dir, tmp_path):
    train = synth_dir / "annotations" / "instances_train.json"
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = convert(train, out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "mine" and leftovers(out) == []
    result = convert(train, out, "--overwrite")
    assert result.exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "data.yaml").is_file() and leftovers(out) == []


def test_out_inside_an_input_is_refused(synth_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    result = convert(synth_dir / "annotations" / "instances_train.json", images / "out", "--images", images)
    assert result.exit_code == 2 and "overlaps" in result.stderr


# --- annotation-level problems: skipped and named, or --strict ---------------------------


def bad_annotation_file(tmp_path: Path) -> Path:
    anns = [
        coco_annotation(1, keypoints=person_keypoints()),
        coco_annotation(2, image_id=99),  # unknown image
        coco_annotation(3, bbox=[10, 10, 0, 5]),  # zero width
        coco_annotation(4, keypoints=person_keypoints(k=4)),  # 12 values for 5 keypoints
        coco_annotation(5, polygon=[10, 10, 20, 10, 20]),  # odd
        coco_annotation(6, polygon=[10, 10, 20, 10]),  # 2 points
        coco_annotation(7, category_id=5, segmentation={"size": [10, 10], "counts": "PP"}, bbox=[1, 1, 2, 2]),  # RLE size
        coco_annotation(8, polygon=[10, 10, float("nan"), 10, 20, 20]),  # NaN
        coco_annotation(9, category_id=5),
    ]
    return write_json(tmp_path / "in" / "instances_train.json", coco_dict(annotations=anns))


BAD_IDS = {2: "unknown_image", 3: "bad_bbox", 4: "bad_keypoints", 5: "bad_polygon", 6: "bad_polygon", 7: "bad_rle", 8: "not_finite"}


def test_annotation_level_problems_are_skipped_and_named(tmp_path):
    ann = bad_annotation_file(tmp_path)
    before = tree_digest(ann.parent)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = convert(ann, out, "--report", report)
    assert result.exit_code == 0, result.output
    _, splits = dataset_rows(out)
    assert [r.class_id for r in splits["train"]["img1"]] == [0, 1]  # annotations 1 and 9
    for ann_id in BAD_IDS:
        assert f"annotation {ann_id}" in result.stdout
    data = json.loads(report.read_text())
    assert {s["annotation_id"]: s["reason"] for s in data["skipped_annotations"]} == BAD_IDS
    assert data["skipped_by_reason"]["bad_polygon"] == 2
    assert tree_digest(ann.parent) == before  # inputs untouched


def test_strict_fails_and_writes_nothing(tmp_path):
    ann = bad_annotation_file(tmp_path)
    out = tmp_path / "out"
    result = convert(ann, out, "--strict")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--strict" in lines[0] and "7 invalid annotations" in lines[0]
    assert not out.exists() and leftovers(out) == []


def test_strict_passes_on_clean_input(synth_dir, tmp_path):
    result = convert(synth_dir / "annotations" / "instances_val.json", tmp_path / "out", "--strict", "--images", synth_dir / "images")
    assert result.exit_code == 0, result.output


# --- options ----------------------------------------------------------------------------


def crowd_file(tmp_path: Path) -> Path:
    rle = {"size": [80, 100], "counts": [100, 20, 60, 20, 60, 20, 7720]}
    anns = [coco_annotation(1, keypoints=person_keypoints()), coco_annotation(2, segmentation=rle, bbox=[1, 20, 3, 20], iscrowd=1),
            coco_annotation(3, category_id=5, polygon=[60, 10, 90, 10, 90, 60])]
    return write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))


@pytest.mark.parametrize("crowd, rows, skipped", [("skip", [0, 1], {"crowd": 1}), ("include", [0, 0, 1], {})])
def test_crowd(tmp_path, crowd, rows, skipped):
    report = tmp_path / "report.json"
    result = convert(crowd_file(tmp_path), tmp_path / "out", "--crowd", crowd, "--report", report)
    assert result.exit_code == 0, result.output
    _, splits = dataset_rows(tmp_path / "out")
    assert [r.class_id for r in splits["val"]["img1"]] == rows
    data = json.loads(report.read_text())
    assert data["skipped_by_reason"] == skipped
    if crowd == "skip":
        assert "crowd" in result.stdout


def test_crowd_rejects_other_values(tmp_path):
    result = convert(crowd_file(tmp_path), tmp_path / "out", "--crowd", "maybe")
    assert result.exit_code == 2 and "--crowd" in result.stderr


def test_classes_keeps_and_renumbers(synth_dir, tmp_path):
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_val.json", out, "--classes", "disc")
    assert result.exit_code == 0, result.output
    config, splits = dataset_rows(out)
    assert config.names == {0: "disc"} and config.task == "segment"  # no keypoint class left
    assert "segment dataset" in result.stdout
    rows = [r for rows in splits["val"].values() for r in rows]
    assert rows and all(r.class_id == 0 and r.keypoints_xyn is None for r in rows)
    coco = json.loads((synth_dir / "annotations" / "instances_val.json").read_text())
    assert len(rows) == sum(a["category_id"] == 7 for a in coco["annotations"])


def test_split_names(synth_dir, tmp_path):
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_train.json", out, "--split", "val2017")
    assert result.exit_code == 0, result.output
    config, splits = dataset_rows(out)
    assert set(splits) == {"val2017"} and config.splits == {"val": ["images/val2017"]}
    result = convert(synth_dir / "annotations" / "instances_train.json", synth_dir / "annotations" / "instances_val.json",
                     tmp_path / "out2", "--split", "x")
    assert result.exit_code == 2 and "--split" in result.stderr


def test_split_named_from_person_keypoints_stem(tmp_path):
    ann = write_json(tmp_path / "in" / "person_keypoints_train2017.json", coco_dict(annotations=[coco_annotation(1)]))
    result = convert(ann, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "labels" / "train2017" / "img1.txt").is_file()
    assert read_data_yaml(tmp_path / "out" / "data.yaml").splits == {"train": ["images/train2017"]}


def annotated_images(tmp_path: Path, file_names: list[str]) -> Path:
    images = [coco_image(i + 1, file_name=name) for i, name in enumerate(file_names)]
    anns = [coco_annotation(i + 1, image_id=i + 1) for i in range(len(file_names))]
    return write_json(tmp_path / "ann" / "instances_val.json", coco_dict(images=images, annotations=anns))


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param({"a.jpg": "a.jpg", "b.jpg": "b.jpg"}, id="under-DIR"),
        pytest.param({"a.jpg": "val/a.jpg", "b.jpg": "val/b.jpg"}, id="under-DIR-split"),
        pytest.param({"a.jpg": "deep/er/a.jpg", "b.jpg": "other/b.jpg"}, id="anywhere-below"),
        pytest.param({"x/a.jpg": "x/a.jpg", "b.jpg": "val/b.jpg"}, id="file-name-with-folder"),
    ],
)
@pytest.mark.parametrize("copy", [False, True], ids=["symlink", "copy"])
def test_images_are_found(tmp_path, layout, copy):
    root = tmp_path / "pictures"
    for i, disk in enumerate(layout.values()):
        (root / disk).parent.mkdir(parents=True, exist_ok=True)
        (root / disk).write_bytes(b"image %d" % i)
    ann = annotated_images(tmp_path, list(layout))
    out = tmp_path / "out"
    result = convert(ann, out, "--images", root, *(["--copy"] if copy else []))
    assert result.exit_code == 0, result.output
    for i, (name, disk) in enumerate(layout.items()):
        placed = out / "images" / "val" / Path(name).name
        assert placed.is_symlink() != copy
        assert placed.read_bytes() == b"image %d" % i
        assert (out / "labels" / "val" / f"{Path(name).stem}.txt").is_file()
    assert tree_digest(root) == {d: hashlib.sha256(b"image %d" % i).hexdigest() for i, d in enumerate(layout.values())}


def test_images_not_found_are_reported(tmp_path):
    root = tmp_path / "pictures"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"x")
    ann = annotated_images(tmp_path, ["a.jpg", "missing.jpg"])
    result = convert(ann, tmp_path / "out", "--images", root)
    assert result.exit_code == 0 and "1 images not found" in result.stdout
    assert not (tmp_path / "out" / "labels" / "val" / "missing.txt").exists()
    result = convert(ann, tmp_path / "out2", "--images", root, "--strict")
    assert result.exit_code == 2 and "missing.jpg" in result.stderr and not (tmp_path / "out2").exists()


def test_without_images_writes_labels_and_data_yaml_with_a_note(synth_dir, tmp_path):
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_val.json", out)
    assert result.exit_code == 0
    assert "no --images" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["coco_ids.json", "data.yaml", "labels"]
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 4


def test_images_without_objects_get_empty_label_files(tmp_path):
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(images=[coco_image(1), coco_image(2)],
                                                                       annotations=[coco_annotation(1)]))
    result = convert(ann, tmp_path / "out")
    assert result.exit_code == 0
    assert (tmp_path / "out" / "labels" / "val" / "img2.txt").read_text() == ""


def test_keypoint_class_without_labeled_keypoints(tmp_path):
    """multitask: the row is kept with 0 0 0 triples; pose: left out and counted."""
    anns = [coco_annotation(1, keypoints=person_keypoints()), coco_annotation(2, keypoints=person_keypoints(0, 0, 0, 0, 0)),
            coco_annotation(3)]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    assert convert(ann, tmp_path / "mt").exit_code == 0
    _, splits = dataset_rows(tmp_path / "mt")
    rows = splits["val"]["img1"]
    assert len(rows) == 3 and not rows[1].keypoints_xyn.any() and not rows[2].keypoints_xyn.any()
    report = tmp_path / "r.json"
    assert convert(ann, tmp_path / "pose", "--task", "pose", "--report", report).exit_code == 0
    _, splits = dataset_rows(tmp_path / "pose")
    assert len(splits["val"]["img1"]) == 1
    assert json.loads(report.read_text())["skipped_by_reason"] == {"no_keypoints": 2}


def test_identity_flip_idx_gets_a_note(tmp_path):
    cats = [person_category(1, keypoints=["a", "b", "c"])]
    ann = write_json(tmp_path / "in" / "instances_val.json",
                     coco_dict(categories=cats, annotations=[coco_annotation(1, keypoints=person_keypoints(k=3))]))
    result = convert(ann, tmp_path / "out")
    assert result.exit_code == 0 and "flip_idx" in result.stdout
    assert read_data_yaml(tmp_path / "out" / "data.yaml").flip_idx == [0, 1, 2]


# --- interrupted runs -------------------------------------------------------------------


def interrupt_after(monkeypatch, calls: int) -> None:
    import mtdata.convert.files as files_module

    real = files_module.write_existing  # interrupted half-way through writing label files
    seen = {"n": 0}

    def flaky(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(files_module, "write_existing", flaky)


def test_interrupted_run_leaves_no_half_dataset(synth_dir, tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 5)
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_train.json", out, "--images", synth_dir / "images")
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not out.exists() and leftovers(out) == []


def test_interrupted_overwrite_keeps_the_old_dataset(synth_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert convert(synth_dir / "annotations" / "instances_val.json", out).exit_code == 0
    before = tree_digest(out)
    interrupt_after(monkeypatch, 5)
    result = convert(synth_dir / "annotations" / "instances_train.json", out, "--overwrite")
    assert result.exit_code == 130
    assert tree_digest(out) == before and leftovers(out) == []


# --- a split converted by two processes ----------------------------------------------------


@pytest.fixture
def two_processes(monkeypatch):
    """Make every split big enough for a forked worker to convert its second half (really: 4096 images)."""
    if not can_fork():
        pytest.skip("the second process runs on Linux with two cores or more")
    monkeypatch.setattr("mtdata.convert.labels.PARALLEL_MIN_IMAGES", 2)


def bad_and_good_annotations(tmp_path: Path) -> Path:
    """Eight images; skips of every kind spread over both halves, one image missing from disk."""
    images = [coco_image(i, file_name=f"img{i}.jpg") for i in range(1, 9)]
    anns = [coco_annotation(i, image_id=i, keypoints=person_keypoints(2, 1, 0)) for i in range(1, 9)]
    anns += [coco_annotation(20, image_id=7, iscrowd=1), coco_annotation(21, image_id=2, bbox=[1, 1, 0, 3]),
             coco_annotation(22, image_id=99), coco_annotation(23, image_id=6, segmentation=[[1, 2, 3]]),
             coco_annotation(24, category_id=5, image_id=8), coco_annotation(25, category_id=5, image_id=1, segmentation=[])]
    path = write_json(tmp_path / "in" / "instances_val.json", coco_dict(images=images, annotations=anns))
    for i in range(1, 8):  # img8.jpg is missing
        (tmp_path / "in" / f"img{i}.jpg").write_bytes(b"")
    return path


def test_a_split_on_two_processes_reports_progress_while_it_writes(tmp_path, two_processes):
    from mtdata.convert.dataset import convert_coco

    images = [coco_image(i, file_name=f"img{i}.jpg") for i in range(1, 1201)]
    anns = [coco_annotation(i, image_id=i, keypoints=person_keypoints(2, 1, 0)) for i in range(1, 1201)]
    ann = write_json(tmp_path / "instances_val.json", coco_dict(images=images, annotations=anns))
    calls = []
    convert_coco([ann], tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    # this process's half reports every 256 images (an estimate of the whole: twice its count), then the exact end
    assert calls[:2] == [(512, 1200), (1024, 1200)]
    assert calls[-1] == (1200, 1200)


def test_two_processes_write_and_report_what_one_writes(tmp_path, monkeypatch, two_processes):
    ann = bad_and_good_annotations(tmp_path)
    runs = {}
    for name, minimum in (("two", 2), ("one", 10**9)):
        monkeypatch.setattr("mtdata.convert.labels.PARALLEL_MIN_IMAGES", minimum)
        out = tmp_path / name
        result = convert(ann, out, "--images", tmp_path / "in", "--report", tmp_path / f"{name}.json")
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / f"{name}.json").read_text())
        report.pop("out")
        files = tree_digest(out)
        files.pop("data.yaml"), files.pop("coco_ids.json")  # name their own folder
        runs[name] = (report, files)
    assert runs["two"] == runs["one"]
    report, files = runs["one"]
    assert [s["annotation_id"] for s in report["skipped_annotations"]] == [20, 21, 22, 23, 25]  # file order, both halves (25: no_mask)
    assert report["images_not_found"] == ["img8.jpg"] and len([f for f in files if f.startswith("labels/")]) == 7


def test_a_failing_child_is_one_line_and_leaves_nothing(synth_dir, tmp_path, monkeypatch, two_processes):
    import mtdata.convert.files as files_module

    real, parent = files_module.write_existing, os.getpid()

    def full_disk(path, data):  # the child, writing the second half, finds the disk full
        if os.getpid() != parent:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(files_module, "write_existing", full_disk)
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_train.json", out)
    assert result.exit_code == 2
    assert "cannot write this label file: No space left on device" in result.output and ".txt" in result.output
    assert not out.exists() and leftovers(out) == []


def test_interrupt_while_a_child_converts_leaves_nothing(synth_dir, tmp_path, monkeypatch, two_processes):
    interrupt_after(monkeypatch, 2)  # the parent's third file; the child is killed
    out = tmp_path / "out"
    result = convert(synth_dir / "annotations" / "instances_train.json", out, "--images", synth_dir / "images")
    assert result.exit_code == 130
    assert not out.exists() and leftovers(out) == []
