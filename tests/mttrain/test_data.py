"""The multitask dataset: masks and keypoints of the same objects, parsed by mtdata, augmented together."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mttrain._ultralytics import DEFAULT_CFG
from mttrain.data import build_multitask_dataset, load_multitask_data


def dataset_for(data_yaml: Path, mode: str = "val", **hyp):
    cfg = DEFAULT_CFG.__class__(**{**vars(DEFAULT_CFG), "imgsz": 96, **hyp})
    data = load_multitask_data(data_yaml)
    split = data["train"] if mode == "train" else data["val"]
    return build_multitask_dataset(cfg, split, 4, data, mode=mode, stride=32)


def test_labels_carry_polygons_and_keypoints_by_class(tiny_data):
    ds = dataset_for(tiny_data)
    label = next(lb for lb in ds.labels if (lb["cls"][:, 0] == 0).any() and (lb["cls"][:, 0] == 1).any())
    figure = label["cls"][:, 0] == 0
    assert len(label["segments"]) == len(label["cls"])
    assert (label["keypoints"][figure][..., 2] > 0).any()
    assert (label["keypoints"][~figure] == 0).all()  # discs carry no keypoints


def test_a_batch_item_has_masks_and_keypoints(tiny_data):
    ds = dataset_for(tiny_data)
    item = ds[0]
    assert {"masks", "keypoints", "bboxes", "cls"} <= set(item)
    assert item["keypoints"].shape[1:] == (5, 3)
    assert item["masks"].shape[-2:] == (96 // 4, 96 // 4)


def test_augmented_flip_swaps_left_and_right(tiny_data):
    """Horizontal flips use flip_idx: after a flip the 'left hand' is still left of the 'right hand' in the image."""
    ds = dataset_for(tiny_data, mode="train", fliplr=1.0, mosaic=0.0, degrees=0.0, translate=0.0, scale=0.0, hsv_h=0, hsv_s=0, hsv_v=0)
    checked = 0
    for i in range(len(ds)):
        item = ds[i]
        kpts = item["keypoints"].numpy()
        for obj, cls in zip(kpts, item["cls"].numpy()[:, 0]):
            if cls == 0 and obj[1, 2] > 0 and obj[2, 2] > 0:
                assert obj[1, 0] < obj[2, 0]  # left_hand (1) stays on the image's left of right_hand (2)
                checked += 1
    assert checked > 3


def test_bad_rows_are_dropped_not_the_image(tmp_path, tiny_data):
    root = tmp_path / "ds"
    shutil.copytree(tiny_data.parent, root, symlinks=True)
    data_yaml = root / "data.yaml"
    data_yaml.write_text(data_yaml.read_text().replace(str(tiny_data.parent), str(root)))
    label = sorted((root / "labels" / "val").glob("*.txt"))[0]
    good = [line for line in label.read_text().splitlines() if line.strip()]
    label.write_text("\n".join([*good, "0 0.5 0.5 oops", "7 0.1 0.1 0.2 0.1 0.2 0.2"]) + "\n")
    ds = dataset_for(data_yaml)
    kept = next(lb for lb in ds.labels if Path(lb["im_file"]).stem == label.stem)
    assert len(kept["cls"]) == len(good)


def test_a_segment_dataset_is_refused_with_one_line(tmp_path):
    from mtdata.errors import DatasetConfigError

    (tmp_path / "data.yaml").write_text("names: [a]\ntrain: images/train\nval: images/val\n")
    with pytest.raises(DatasetConfigError, match="multitask"):
        load_multitask_data(tmp_path / "data.yaml")


def test_polygon_boxes_are_normalized_xywh(tiny_data):
    ds = dataset_for(tiny_data)
    for label in ds.labels:
        for box, segment in zip(label["bboxes"], label["segments"]):
            lo, hi = segment.min(0), segment.max(0)
            np.testing.assert_allclose(box, [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[0] - lo[0], hi[1] - lo[1]], atol=1e-6)


@pytest.mark.parametrize("k", [4, 6, 3])
def test_a_kpt_shape_the_rows_do_not_fit_is_one_error_before_training(tmp_path, tiny_data, k):
    """kpt_shape [4, 3] on rows of 5 keypoints: every keypoint-class row would be dropped. One line, no scan.

    K = 3 is the case where the count still fits (15 = 9 + 3 points): a silently wrong layout
    that only the visibility values betray (kpt_bad_visibility), so it is not this refusal.
    """
    import yaml

    from mtdata.errors import DatasetConfigError

    root = tmp_path / "ds"
    shutil.copytree(tiny_data.parent, root, symlinks=True)
    for cache in (root / "labels").glob("*.cache"):  # other tests scanned the fixture
        cache.unlink()
    data = yaml.safe_load((root / "data.yaml").read_text())
    data.update(path=str(root), kpt_shape=[k, 3], flip_idx=None, skeleton=None,
                kpt_names={0: [f"p{i}" for i in range(k)]})
    (root / "data.yaml").write_text(yaml.safe_dump({key: v for key, v in data.items() if v is not None}))
    if k == 3:
        ds = dataset_for(root / "data.yaml")  # rows parse with K = 3 only by accident; not refused here
        assert ds.labels
        return
    with pytest.raises(DatasetConfigError) as e:
        dataset_for(root / "data.yaml")
    message = str(e.value)
    assert f"kpt_shape [{k}, 3] fits none of the" in message and "\n" not in message
    assert not (root / "labels" / "val.cache").exists()  # nothing was scanned or cached


def test_check_keypoint_rows_returns_at_the_first_row_that_fits(tiny_data):
    from mttrain.data import check_keypoint_rows

    config = load_multitask_data(tiny_data)["mt_config"]
    labels = sorted(str(p) for p in (tiny_data.parent / "labels").rglob("*.txt"))
    check_keypoint_rows(labels, config.layout(), tiny_data)  # the right kpt_shape: nothing raised


def _odd_layout(root: Path) -> list[str]:
    """Nested and odd image folders; returns the split entries as data.yaml would name them (absolute)."""
    names = ["images/train/a.jpg", "images/train/B.JPG", "images/train/images/c.png", "images/train/sub/d.jpeg",
             "images/train/notes.txt", "images/train/._e.jpg", "other/images/f.jpg", "lists/images/g.jpg"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "images" / "train" / "linked").symlink_to(root / "other")
    (root / "lists" / "val.txt").write_text(f"./images/g.jpg\n{root}/images/train/a.jpg\nnotes.md\n")
    return [str(root / "images" / "train"), str(root / "lists" / "val.txt")]


def test_the_trainer_lists_as_ultralytics_and_as_mtdata(tmp_path):
    """MultiTaskDataset.get_img_files is mtdata's one lister, and lists what ultralytics' own would on these
    layouts; the label files are ultralytics' img2label_paths of them, which mtdata's label_path repeats."""
    from types import SimpleNamespace

    from ultralytics.data.base import BaseDataset
    from ultralytics.data.utils import img2label_paths

    from mtdata.formats.yolo.data_yaml import parse_data_dict
    from mtdata.formats.yolo.splits import label_path, split_pairs
    from mttrain.data import MultiTaskDataset

    entries = _odd_layout(tmp_path)
    config = parse_data_dict({"path": str(tmp_path), "names": ["a"], "train": entries}, tmp_path / "data.yaml")
    fake = SimpleNamespace(data={"mt_config": config}, prefix="", fraction=1.0)
    ours = MultiTaskDataset.get_img_files(fake, entries)
    assert ours == BaseDataset.get_img_files(fake, entries)
    assert [os.path.relpath(p, tmp_path) for p in ours] == [
        "images/train/B.JPG", "images/train/a.jpg", "images/train/a.jpg", "images/train/images/c.png",
        "images/train/linked/images/f.jpg", "images/train/sub/d.jpeg", "lists/images/g.jpg"]
    assert [label_path(p) for p in ours] == img2label_paths(ours)
    assert sorted(set(ours)) == [image for image, _ in split_pairs(config, "train")]
