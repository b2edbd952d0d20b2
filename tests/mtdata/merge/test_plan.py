"""``mtdata.merge.plan``: which label files and images of two datasets pair up."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mtdata.errors import InputError
from mtdata.formats.yolo.data_yaml import parse_data_dict
from mtdata.merge.plan import ImageJob, JobBatch, build_jobs, count_seg_labels


def dataset(root: Path, files: list[str], splits: bool = True, task: str = "segment") -> object:
    """A dataset config over empty files at ``files`` (paths relative to ``root``)."""
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    data = {"path": ".", "names": {0: "person"}, "task": task}
    if task == "pose":
        data["kpt_shape"] = [1, 3]
    if splits:
        data |= {"train": "images/train", "val": "images/val"}
    return parse_data_dict(data, root / "data.yaml", task=task)


def test_files_pair_by_split_and_relative_name(tmp_path):
    kpt = dataset(tmp_path / "kpt", ["labels/train/a.txt", "labels/train/sub/b.txt", "labels/val/c.txt", "labels/train/classes.txt"], task="pose")
    seg = dataset(tmp_path / "seg", [
        "labels/train/a.txt", "labels/train/sub/b.txt", "images/train/a.JPG", "images/train/sub/b.v2.png",
        "images/train/.hidden", "images/train/notes.md", "labels/val/d.txt",
    ])
    plan = build_jobs(kpt, seg, notes := [])
    jobs = {(job.split, job.name): job for job in plan.jobs}
    assert sorted(jobs) == [("train", "a"), ("train", "sub/b"), ("train", "sub/b.v2"), ("val", "c"), ("val", "d")]
    a = jobs["train", "a"]
    assert (a.in_kpt, a.in_seg, a.out_label, a.out_image) == (True, True, "labels/train/a.txt", "images/train/a.JPG")
    assert a.kpt_label == str(tmp_path / "kpt" / "labels" / "train" / "a.txt")
    assert jobs["train", "sub/b"].image is None  # its image is named b.v2
    assert (jobs["val", "c"].in_seg, jobs["val", "c"].out_label) == (False, None)  # KPT only: listed, not written
    assert jobs["train", "sub/b.v2"].out_image == "images/train/sub/b.v2.png"
    assert plan.parent_dirs() == ["images/train/sub", "labels/train/sub"]
    assert plan.image_counts()["train"] == {"written": 3, "both": 2, "seg_only": 1, "kpt_only": 0, "with_image": 2}
    assert notes == []


def test_two_files_with_one_label_name_are_refused(tmp_path):
    kpt = dataset(tmp_path / "kpt", ["labels/train/a.txt"], task="pose")
    seg = dataset(tmp_path / "seg", ["labels/train/a.txt", "images/train/a.jpg", "images/train/a.png"])
    with pytest.raises(InputError, match="share the label name a.txt"):
        build_jobs(kpt, seg, [])


@pytest.mark.parametrize("splits", [True, False], ids=["split keys", "split folders under labels/"])
def test_count_seg_labels_counts_the_split_folders(tmp_path, splits):
    seg = dataset(tmp_path, [f"labels/train/{i}.txt" for i in range(5)] + ["labels/val/x.txt", "labels/val/nested/y.txt"], splits=splits)
    assert count_seg_labels(seg) == 7  # 5 + x.txt + the folder "nested", not what is below it


def test_a_job_batch_holds_the_jobs_field_by_field_and_survives_pickling(tmp_path):
    kpt = dataset(tmp_path / "kpt", ["labels/train/a.txt", "labels/train/c.txt"], task="pose")
    seg = dataset(tmp_path / "seg", ["labels/train/a.txt", "labels/train/b.txt", "images/train/b.png"])
    jobs = build_jobs(kpt, seg, []).jobs
    batch = pickle.loads(pickle.dumps(JobBatch.of(jobs)))
    assert len(batch) == 3
    assert [ImageJob(*row) for row in zip(*(getattr(batch, f) for f in ImageJob._fields))] == jobs
    assert batch.name == ["a", "b", "c"] and batch.in_seg == [True, True, False] and batch.image == [None, str(tmp_path / "seg/images/train/b.png"), None]
    assert len(JobBatch.of([])) == 0
