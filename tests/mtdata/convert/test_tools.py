"""``mtdata convert`` of Labelme and Label Studio files through the CLI: the same label files as COCO input,
detection of the format, reports, --strict, --keypoints, embedded images and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mtdata.cli import app
from tests.mtdata.tool_files import KEYPOINTS, random_coco, write_labelme, write_labelstudio

runner = CliRunner()
FIXED = ["--keypoints", "person=" + ",".join(KEYPOINTS), "--classes", "person,ball"]  # COCO's order: its ids


def convert(*args) -> object:
    result = runner.invoke(app, ["convert", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def labels(out: Path) -> dict[str, str]:
    return {f"{p.parent.name}/{p.name}": p.read_text() for p in sorted((out / "labels").rglob("*.txt"))}


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (100, 200, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def dataset(tmp_path):
    """A COCO split with its images, and the labels of converting it."""
    coco = random_coco(7, images=8)
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(coco["images"]):
        (images / image["file_name"]).write_bytes(jpeg(i))
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "train.json").write_text(json.dumps(coco))
    result = convert(tmp_path / "coco" / "train.json", tmp_path / "from_coco", "--images", images)
    assert result.exit_code == 0, result.output
    return coco, images, labels(tmp_path / "from_coco")


WRITERS = {
    "labelme-groups": lambda coco, root: write_labelme(coco, root / "train", image_path="../images/{}") and root / "train",
    "labelme-containment": lambda coco, root: write_labelme(coco, root / "train", group_ids=False, class_prefix=True,
                                                            image_path="../images/{}") and root / "train",
    "labelstudio-json": lambda coco, root: write_labelstudio(coco, root / "train.json"),
    "labelstudio-min": lambda coco, root: write_labelstudio(coco, root / "train.json", variant="min"),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("task", ["multitask", "pose"])
def test_the_tools_files_convert_to_the_labels_of_their_coco(tmp_path, dataset, writer, task):
    coco, images, expected = dataset
    if task == "pose":
        assert convert(tmp_path / "coco" / "train.json", tmp_path / "coco_pose", "--images", images, "--task", "pose").exit_code == 0
        expected = labels(tmp_path / "coco_pose")
    source = WRITERS[writer](coco, tmp_path)
    result = convert(source, tmp_path / "out", "--images", images, "--task", task, *FIXED, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert labels(tmp_path / "out") == expected
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["unmatched_keypoints"] == [] and report["images_not_found"] == []
    assert sorted(p.name for p in (tmp_path / "out" / "images" / "train").iterdir()) == sorted(im["file_name"] for im in coco["images"])


def test_labelme_images_beside_the_files_or_embedded(tmp_path, dataset):
    coco, images, expected = dataset
    names = [im["file_name"] for im in coco["images"]]
    folder = tmp_path / "train"
    embedded = {name: (images / name).read_bytes() for name in names[:3]}
    write_labelme(coco, folder, embed=embedded)  # imagePath img1.jpg beside the file: only the others are there
    for name in names[3:]:
        (folder / name).write_bytes((images / name).read_bytes())
    result = convert(folder, tmp_path / "out", *FIXED)
    assert result.exit_code == 0, result.output
    assert labels(tmp_path / "out") == expected
    out_images = tmp_path / "out" / "images" / "train"
    for name in names[:3]:  # written out: files of OUT, not links
        assert not (out_images / name).is_symlink() and (out_images / name).read_bytes() == embedded[name]
    assert all((out_images / name).resolve() == (folder / name).resolve() for name in names[3:])


def test_detection_and_its_errors(tmp_path):
    (tmp_path / "notes.json").write_text(json.dumps({"title": "nothing we read"}))
    result = convert(tmp_path / "notes.json", tmp_path / "out")
    assert result.exit_code == 2 and "cannot tell the format" in result.output and "pass --from" in result.output
    coco = random_coco(1, images=2)
    write_labelme(coco, tmp_path / "lm")
    write_labelstudio(coco, tmp_path / "ls.json")
    result = convert(tmp_path / "lm", tmp_path / "ls.json", tmp_path / "out")
    assert result.exit_code == 2 and "convert one format at a time" in result.output
    result = convert(tmp_path / "ls.json", tmp_path / "out", "--from", "labelme")
    assert result.exit_code == 2 and "not a Labelme file" in " ".join(result.output.split())
    result = convert(tmp_path / "lm", tmp_path / "out", "--from", "yolo")
    assert result.exit_code == 2 and "--from must be one of coco, labelme, labelstudio" in result.output
    assert not (tmp_path / "out").exists()


def test_bad_shapes_are_named_and_strict_fails(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    shapes = [{"label": "cat", "points": [[1, 1], [50, 1], [50, 50]], "shape_type": "polygon"},
              {"label": "cat", "points": [[1, 1], [5, 5]], "shape_type": "polygon"},
              {"label": "cat", "points": [[60, 60], [95, 60], [95, 95]], "shape_type": "polygon"},
              {"label": "nose", "points": [[90, 80]], "shape_type": "point"},
              {"label": "ear", "points": [[5, 95]], "shape_type": "point"}]
    (folder / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "a.jpg", "imageWidth": 100, "imageHeight": 100}))
    (folder / "a.jpg").write_bytes(jpeg(0))
    result = convert(folder, tmp_path / "out", "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "a.json shapes[1] 'cat': polygon needs at least 3 points, found 2" in text
    assert "keypoint joined no object a.json 'ear' at (5, 95): inside no shape" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["reason"] for s in report["skipped_annotations"]] == ["bad_polygon"]
    assert report["unmatched_keypoints"] == [{"file": "a.json", "label": "ear", "x": 5.0, "y": 95.0, "why": "inside no shape"}]
    first, second = labels(tmp_path / "out")["train/a.txt"].splitlines()  # every object one row
    assert first.startswith("0 0.000000 0.000000 0 0.010000 0.010000") and second.startswith("0 0.900000 0.800000 2 0.600000")
    result = convert(folder, tmp_path / "strict", "--strict")
    assert result.exit_code == 2 and "a.json shapes[1] 'cat'" in " ".join(result.output.split())
    assert not (tmp_path / "strict").exists()


def test_an_image_not_found_is_listed_and_fails_strict(tmp_path):
    coco = random_coco(2, images=2)
    write_labelme(coco, tmp_path / "train", image_path="../images/{}")
    result = convert(tmp_path / "train", tmp_path / "out", "--report", tmp_path / "r.json")
    assert result.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["images_not_found"] == ["img1.jpg", "img2.jpg"]
    assert "imagePath leads out of the Labelme folder (e.g. '../images/img1.jpg')" in " ".join(result.output.split())
    result = convert(tmp_path / "train", tmp_path / "strict", "--strict")
    assert result.exit_code == 2 and "image 'img1.jpg' not found" in result.output


def test_label_studio_uploads_are_found_by_name(tmp_path, dataset):
    coco, images, expected = dataset
    export = write_labelstudio(coco, tmp_path / "project-1-at-2026.json", ref="/data/upload/1/0a1b2c3d-{}")
    result = convert(export, tmp_path / "out", "--images", images, "--split", "train", *FIXED)
    assert result.exit_code == 0, result.output
    assert {k.replace("0a1b2c3d-", ""): v for k, v in labels(tmp_path / "out").items()} == expected
    assert convert(export, tmp_path / "labels_only", "--split", "train", *FIXED).exit_code == 0  # no --images: labels only
    assert {k.replace("0a1b2c3d-", ""): v for k, v in labels(tmp_path / "labels_only").items()} == expected


def test_keypoint_order_from_a_yaml_file(tmp_path, dataset):
    coco, images, _ = dataset
    source = WRITERS["labelme-groups"](coco, tmp_path)
    (tmp_path / "k.yaml").write_text("person: [right_eye, left_eye, nose]\n")
    result = convert(source, tmp_path / "out", "--images", images, "--keypoints", tmp_path / "k.yaml")
    assert result.exit_code == 0, result.output
    data = (tmp_path / "out" / "data.yaml").read_text()
    assert "- right_eye\n  - left_eye\n  - nose" in data and "flip_idx: [1, 0, 2]" in data
    for bad, says in [("person=", "CLASS=name"), ("person=a,a", "names a keypoint twice"), (tmp_path / "nope.yaml", "neither")]:
        result = convert(source, tmp_path / "bad", "--keypoints", bad)
        assert result.exit_code == 2 and says in result.output, result.output


def _labelme(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


FILE_LEVEL = {  # what the files hold -> (the source to give, the file the line names, what it says)
    "labelme-not-json": (lambda d: _labelme(d, "a.json", '{"shapes": [') and d, "a.json", "not valid JSON"),
    "labelme-no-size": (lambda d: _labelme(d, "a.json", {"shapes": [], "imagePath": "a.jpg"}) and d, "a.json",
                        "imageWidth and imageHeight must be integers"),
    "labelme-no-image": (lambda d: _labelme(d, "a.json", {"shapes": [], "imagePath": "", "imageWidth": 4, "imageHeight": 4}) and d,
                         "a.json", "names no image"),
    "labelme-stray-json": (lambda d: _labelme(d, "b.json", {"shapes": []}) and _labelme(d, "a.json", {
        "shapes": [], "imagePath": "a.jpg", "imageWidth": 4, "imageHeight": 4}) and d, "b.json", "not a Labelme file"),
    "labelme-no-object": (lambda d: _labelme(d, "a.json", {"shapes": [{"label": "nose", "points": [[1, 1]], "shape_type": "point"}],
                                                           "imagePath": "a.jpg", "imageWidth": 4, "imageHeight": 4}) and d,
                          "train", "no usable object"),
    "labelme-empty-folder": (lambda d: d.mkdir() or d, "train", "holds no .json file"),
    "labelstudio-no-image": (lambda d: _labelme(d, "p.json", [{"data": {"n": 1}, "annotations": []}]), "p.json", "names no image"),
    "labelme-embedded-not-an-image": (lambda d: _labelme(d, "a.json", {"shapes": [{"label": "c", "points": [[0, 0], [3, 0], [3, 3]]}],
                                                                  "imagePath": "a.png", "imageData": "bm90IGFuIGltYWdl",
                                                                  "imageWidth": 4, "imageHeight": 4}) and d,
                                 "a.json", "imageData does not hold an image"),
}


@pytest.mark.parametrize("kind", list(FILE_LEVEL))
def test_file_level_problems_of_tool_files_exit_2_with_one_line(tmp_path, kind):
    make, named, says = FILE_LEVEL[kind]
    source = make(tmp_path / "train")
    result = convert(source, tmp_path / "out")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], result.stderr
    assert named in lines[0]
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_out_inside_the_labelme_folder_is_refused(tmp_path):
    write_labelme(random_coco(1, images=2), tmp_path / "train")
    result = convert(tmp_path / "train", tmp_path / "train" / "out")
    assert result.exit_code == 2 and "overlaps the input" in result.stderr and not (tmp_path / "train" / "out").exists()


def test_a_second_annotator_is_named_in_a_note(tmp_path):
    export = write_labelstudio(random_coco(4, images=3), tmp_path / "train.json")
    tasks = json.loads(export.read_text())
    tasks[1]["annotations"].append({"id": 99, "result": []})
    export.write_text(json.dumps(tasks))
    result = convert(export, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 tasks hold several annotations (first: train.json[1])" in " ".join(result.output.split())


@pytest.mark.parametrize("fmt", [None, "labelme", "labelstudio"])
def test_a_source_that_is_a_symlink_loop_is_named(tmp_path, fmt):
    (tmp_path / "train").symlink_to("train")
    result = convert(tmp_path / "train", tmp_path / "out", *(["--from", fmt] if fmt else []))
    assert result.exit_code == 2 and "train: is a symlink loop" in result.stderr, result.stderr
