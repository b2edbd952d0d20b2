"""The one split lister on nested and odd layouts, and every command reading the same label files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mtdata.formats.yolo.data_yaml import dump_yaml, parse_data_dict, read_data_yaml
from mtdata.formats.yolo.splits import folder_images, label_path, list_entry, split_entries, split_pairs


@pytest.mark.parametrize(
    "image, label",
    [
        pytest.param("/d/images/train/a.jpg", "/d/labels/train/a.txt", id="plain"),
        pytest.param("/d/images/train/images/x.jpg", "/d/images/train/labels/x.txt", id="nested-images-the-last-one"),
        pytest.param("/images/d/images/val/a.png", "/images/d/labels/val/a.txt", id="images-twice"),
        pytest.param("/d/train/a.jpg", "/d/train/a.txt", id="no-images-part-beside-the-image"),
        pytest.param("/d/images/a.b.JPG", "/d/labels/a.b.txt", id="dots-and-uppercase"),
        pytest.param("/d/myimages/train/a.jpg", "/d/myimages/train/a.txt", id="images-inside-a-name-is-not-a-part"),
        pytest.param("/d/images/train/sub/a.jpeg", "/d/labels/train/sub/a.txt", id="subfolder"),
    ],
)
def test_label_path_is_ultralytics_rule(image, label):
    assert label_path(image) == label


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_folder_images_on_an_odd_folder(tmp_path):
    _touch(tmp_path, "a.jpg", "B.JPG", "c.PnG", "sub/images/d.webp", "notes.txt", "README", "clip.mp4", "._a.jpg",
           ".hidden/e.jpg", "x.jpg.txt")
    (tmp_path / "folder.jpg").mkdir()  # a folder named like an image is walked, not listed
    _touch(tmp_path, "folder.jpg/f.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")  # listed: check reports it unreadable
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    _touch(outside, "g.jpg")
    os.symlink(outside, tmp_path / "linked")  # a symlinked folder is followed
    os.symlink(tmp_path, tmp_path / "sub" / "loop")  # ... and a loop is walked once
    names = [os.path.relpath(p, tmp_path) for p in folder_images(str(tmp_path))]
    assert names == ["B.JPG", "a.jpg", "broken.jpg", "c.PnG", "folder.jpg/f.jpg", "linked/g.jpg", "sub/images/d.webp"]


def test_a_split_list(tmp_path):
    _touch(tmp_path, "images/train/a.jpg", "images/train/b.jpg", "lists/images/c.jpg")
    listed = tmp_path / "lists" / "train.txt"
    listed.write_text("\ufeff./images/c.jpg\nimages/train/a.jpg\n\n  images/train/b.jpg  \nnotes.md\n"
                      f"{tmp_path}/images/train/a.jpg\nimages/train/missing.PNG\n")
    entry = list_entry(listed, tmp_path)
    assert entry.kind == "list"
    assert [os.path.relpath(p, tmp_path) for p in entry.images] == [
        "lists/images/c.jpg",  # ./ is relative to the list's folder (ultralytics)
        "images/train/a.jpg", "images/train/b.jpg",  # other relative lines: to the dataset root
        "images/train/a.jpg",  # absolute
        "images/train/missing.PNG",  # listed, missing: check reports it
    ]  # notes.md is not an image: left out, as ultralytics does
    assert [os.path.relpath(p, tmp_path) for p in entry.labels] == [
        "lists/labels/c.txt", "labels/train/a.txt", "labels/train/b.txt", "labels/train/a.txt", "labels/train/missing.txt"]


def test_split_entries_of_every_kind(tmp_path):
    _touch(tmp_path, "images/a/1.jpg", "images/b/2.jpg", "images/b/images/3.jpg")
    (tmp_path / "val.txt").write_text("images/a/1.jpg\n")
    config = parse_data_dict({"names": ["x"], "train": ["images/a", "images/b"], "val": "val.txt", "test": "images/none"},
                             tmp_path / "data.yaml")
    assert [(e.path.name, e.kind) for e in split_entries(config, "train")] == [("a", "folder"), ("b", "folder")]
    assert [e.kind for e in split_entries(config, "test")] == ["missing"]
    pairs = [(os.path.relpath(i, tmp_path), os.path.relpath(lb, tmp_path)) for i, lb in split_pairs(config, "train")]
    assert pairs == [("images/a/1.jpg", "labels/a/1.txt"), ("images/b/2.jpg", "labels/b/2.txt"),
                     ("images/b/images/3.jpg", "images/b/labels/3.txt")]
    assert [os.path.relpath(i, tmp_path) for i, _ in split_pairs(config, "val")] == ["images/a/1.jpg"]


# --- every command reads the label file the trainer reads ---

ROW = "0 0.1 0.1 0.4 0.1 0.4 0.4 0.1 0.4\n"


def _nested_dataset(root: Path) -> Path:
    """images/train/images/x.jpg with its label where ultralytics looks (images/train/labels/x.txt) and a
    decoy where the old view and merge looked (labels/train/images/x.txt)."""
    import cv2
    import numpy as np

    for value, split in ((64, "train"), (192, "val")):
        image = root / "images" / split / "images" / "x.jpg"
        image.parent.mkdir(parents=True)
        cv2.imwrite(str(image), np.full((64, 64, 3), value, np.uint8))
        (root / "images" / split / "labels").mkdir()
        (root / "images" / split / "labels" / "x.txt").write_text(ROW)
        (root / "labels" / split / "images").mkdir(parents=True)
        (root / "labels" / split / "images" / "x.txt").write_text("0 0.5 0.5\n")  # a 2-value row: unreadable as segment
    path = root / "data.yaml"
    path.write_text(dump_yaml({"path": str(root), "train": "images/train", "val": "images/val", "names": ["a"], "task": "segment"}))
    return path


def test_every_command_reads_the_trainers_label_file(tmp_path):
    from mtdata.check.dataset import check_dataset
    from mtdata.export import build_coco, split_images
    from mtdata.merge.plan import _index
    from mtdata.view.dataset import _split_images

    data = _nested_dataset(tmp_path)
    config = read_data_yaml(data)
    image = str(tmp_path / "images" / "val" / "images" / "x.jpg")
    label = str(tmp_path / "images" / "val" / "labels" / "x.txt")
    result = check_dataset(data, workers=1)
    assert ("val", image, label) in [tuple(p) for p in result.pairs]
    assert not [f for f in result.findings if f.file == label], result.findings
    decoy = str(tmp_path / "labels" / "val" / "images" / "x.txt")
    assert "label_without_image" in [f.rule for f in result.findings if f.file == decoy]  # the trainer never reads it
    assert _split_images(config, "val") == [(Path(image), Path(label))]
    assert [str(p) for p, _ in split_images(config, "val")] == [image]
    coco, _ = build_coco(config, "val")
    assert len(coco["annotations"]) == 1  # the trainer's row, not the decoy
    labels, images = _index(config.image_dirs("val"))
    assert images == {"images/x": image} and labels == {"images/x": label}
