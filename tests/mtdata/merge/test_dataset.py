"""``mtdata merge``: the round trip that defines correctness, the COCO sample, the CLI, bad input."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.convert.dataset import convert_coco
from mtdata.errors import MtdataError
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import YoloRow, format_multitask_row, read_label_file
from mtdata.merge.dataset import merge_datasets
from tests.mtdata.factories import SHARED_DATA

runner = CliRunner()
K = 3
KPT_YAML = {"path": ".", "train": "images/train", "val": "images/val", "task": "pose", "names": {0: "person"},
            "kpt_shape": [K, 3], "flip_idx": [0, 2, 1], "kpt_names": {0: ["head", "left_hand", "right_hand"]}}
SEG_YAML = {"path": ".", "train": "images/train", "val": "images/val", "task": "segment", "names": {0: "person", 1: "thing"}}


def multitask_text(cls: int, polygon, keypoints=None) -> str:
    """A multitask row as the foundation formats it (absent keypoints as zeros)."""
    kpts = None if keypoints is None else np.array(keypoints, dtype=float).reshape(-1, 3)
    return format_multitask_row(YoloRow(cls, polygon_xyn=np.array(polygon, dtype=float).reshape(-1, 2), keypoints_xyn=kpts))


ABSENT = multitask_text(0, np.zeros((3, 2)), np.zeros((1, 3))).split()[1:4]  # one absent keypoint, as OUT writes it
ABSENT_K = " ".join(ABSENT * K)


def write_dataset(root: Path, config: dict, labels: dict[str, str], images: tuple[str, ...] = ()) -> Path:
    """A dataset folder: data.yaml, ``labels/<rel>.txt`` files (text given) and empty image files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for rel, text in labels.items():
        path = root / "labels" / f"{rel}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in images:
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 " + rel.encode())
    return root


def merge(*args) -> object:
    result = runner.invoke(app, ["merge", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def out_lines(out: Path, rel: str) -> list[str]:
    return (out / "labels" / f"{rel}.txt").read_text().splitlines()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_valid_multitask(out: Path) -> None:
    config = read_data_yaml(out / "data.yaml")
    assert config.task == "multitask"
    for path in (out / "labels").rglob("*.txt"):
        assert read_label_file(path, config.layout()).problems == []


def pose_row(cls: int, box_xyxy, kpts) -> str:
    x1, y1, x2, y2 = box_xyxy
    values = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *[v for p in kpts for v in p]]
    return f"{cls} " + " ".join(f"{v:.6g}" for v in values)


def seg_row(cls: int, polygon) -> str:
    return f"{cls} " + " ".join(f"{v:.6g}" for p in polygon for v in p)


# --- the round trip -----------------------------------------------------------------------


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


@st.composite
def scenes(draw):
    """Images of people (with K keypoints), twins (two people sharing one box) and things, in a 3x3 grid of cells.

    Objects of different cells never overlap, so the pairs are recoverable by IoU; twins only by
    their keypoints. Each person may be missing from either side (twins never are).
    """
    person_class = draw(st.sampled_from([0, 1]))  # SEG's id for person; KPT's is 0
    images = []
    for _ in range(draw(st.integers(1, 3))):
        objects = []
        for cell in draw(st.lists(st.integers(0, 8), unique=True, max_size=5)):
            kind = draw(st.sampled_from(["person", "person", "thing", "twins"]))
            w, h = draw(st.floats(0.15, 0.3)), draw(st.floats(0.15, 0.3))
            x1 = (cell % 3) / 3 + draw(st.floats(0.01, 0.323 - w))
            y1 = (cell // 3) / 3 + draw(st.floats(0.01, 0.323 - h))
            x2, y2 = x1 + w, y1 + h
            if kind == "thing":
                objects.append({"cls": 1 - person_class, "polygon": [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]})
                continue
            if kind == "twins":
                for corner in (0, 1):  # upper-left and lower-right halves of the box
                    polygon = [(x1, y1), (x2, y1), (x1, y2)] if corner == 0 else [(x2, y1), (x2, y2), (x1, y2)]
                    kpts = []
                    for _ in range(K):
                        a, b = draw(st.floats(0.05, 0.3)), draw(st.floats(0.05, 0.3))
                        a, b = (a, b) if corner == 0 else (1 - a, 1 - b)
                        kpts.append((x1 + a * w, y1 + b * h, 2))
                    objects.append({"cls": person_class, "polygon": polygon, "kpts": kpts, "in_kpt": True, "in_seg": True})
                continue
            kpts = []
            for _ in range(K):
                v = draw(st.sampled_from([0, 1, 2, 2]))
                kpts.append((0, 0, 0) if v == 0 else (x1 + draw(st.floats(0, 1)) * w, y1 + draw(st.floats(0, 1)) * h, v))
            extra = (x1 + draw(st.floats(0.1, 0.9)) * w, y1)  # a fifth point on the top edge
            objects.append({
                "cls": person_class, "polygon": [(x1, y1), extra, (x2, y1), (x2, y2), (x1, y2)], "kpts": kpts,
                "in_kpt": draw(st.booleans()), "in_seg": draw(st.sampled_from([True, True, False])),
            })
        for obj in objects:
            if "kpts" in obj:
                obj["jitter"] = [draw(st.floats(-0.005, 0.005)) for _ in range(4)]
        images.append({
            "objects": objects,
            "seg_order": draw(st.randoms(use_true_random=False)),
            "kpt_blank_lines": draw(st.lists(st.integers(0, 10), max_size=2)),
            "double_spaces": draw(st.booleans()),
        })
    return person_class, images


def split_scene(root: Path, person_class: int, images: list[dict]):
    """Write the scene as a pose dataset and a segment dataset; return the expected OUT rows and unmatched rows."""
    seg_names = {person_class: "person", 1 - person_class: "thing"}
    write_dataset(root / "kpt", {**KPT_YAML, "val": None}, {})
    write_dataset(root / "seg", {**SEG_YAML, "names": seg_names, "val": None}, {})
    expected, unmatched = {}, set()
    for i, image in enumerate(images):
        seg_rows, kpt_rows = [], []
        for obj in image["objects"]:
            poly_text = _fmt(v for p in obj["polygon"] for v in p)
            kpt_text = None
            if "kpts" in obj and obj["in_kpt"]:
                xs, ys = [p[0] for p in obj["polygon"]], [p[1] for p in obj["polygon"]]
                box = [min(xs), min(ys), max(xs), max(ys)]
                box = [min(1.0, max(0.0, b + j)) for b, j in zip(box, obj["jitter"])]
                row = pose_row(0, box, obj["kpts"])
                kpt_text = row.split(" ", 5)[5]
                kpt_rows.append((row, obj["in_seg"]))
            if obj.get("in_seg", True):
                if "kpts" in obj:
                    seg_rows.append((f"{obj['cls']} {poly_text}", f"{obj['cls']} {kpt_text or ABSENT_K} {poly_text}"))
                else:
                    seg_rows.append((f"{obj['cls']} {poly_text}", f"{obj['cls']} {poly_text}"))
        image["seg_order"].shuffle(seg_rows)
        image["seg_order"].shuffle(kpt_rows)
        lines = [row for row, _ in kpt_rows]
        for at in image["kpt_blank_lines"]:
            lines.insert(min(at, len(lines)), "")
        in_seg = iter([s for _, s in kpt_rows])
        for number, line in enumerate(lines, start=1):
            if line and not next(in_seg):
                unmatched.add((f"{i:03d}", number))
        seg_text = "".join((r.replace(" ", "  ") if image["double_spaces"] else r) + "\n" for r, _ in seg_rows)
        (root / "seg" / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "kpt" / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "seg" / "labels" / "train" / f"{i:03d}.txt").write_text(seg_text)
        (root / "kpt" / "labels" / "train" / f"{i:03d}.txt").write_text("".join(line + "\n" for line in lines))
        expected[f"{i:03d}"] = [out for _, out in seg_rows]
    return expected, unmatched


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_round_trip_recovers_the_original_pairs(scene):
    """Multitask -> pose + segment (jittered boxes, shuffled rows, dropped people, blank lines) -> merge -> the same rows."""
    person_class, images = scene
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected, unmatched = split_scene(root, person_class, images)
        report = merge_datasets(root / "kpt", root / "seg", root / "out")
        for stem, rows in expected.items():
            assert out_lines(root / "out", f"train/{stem}") == rows
        listed = json.loads((root / "out" / "unmatched.json").read_text())["kpt_rows"]
        assert {(r["image"], r["line"]) for r in listed} == unmatched
        assert all(r["reason"] in ("below_iou", "no_mask") for r in listed)
        both = sum(1 for image in images for o in image["objects"] if "kpts" in o and o["in_kpt"] and o["in_seg"])
        assert report.matched == both
        assert_valid_multitask(root / "out")
        config = read_data_yaml(root / "out" / "data.yaml")
        assert config.kpt_names == {person_class: ["head", "left_hand", "right_hand"]}
        assert config.names == {person_class: "person", 1 - person_class: "thing"}


# --- converted datasets: pose + segment merge back into the direct multitask conversion ----------

SAMPLE = SHARED_DATA / "coco-person"
SAMPLE_ANNOTATIONS = SAMPLE / "annotations" / "person_keypoints_val2017.json"
COMPARED_KEYS = ("names", "kpt_shape", "kpt_names", "flip_idx", "skeleton", "kpt_sigmas", "train", "val", "task")


def convert_three_ways(annotations: list[Path], images: Path, root: Path) -> None:
    for task in ("multitask", "pose", "segment"):
        convert_coco(annotations, root / task, images_dir=images, task=task)


def assert_merge_equals_multitask(root: Path) -> None:
    merged, direct = root / "merged", root / "multitask"
    labels = sorted(p.relative_to(direct) for p in (direct / "labels").rglob("*.txt"))
    assert labels and labels == sorted(p.relative_to(merged) for p in (merged / "labels").rglob("*.txt"))
    for rel in labels:
        assert (merged / rel).read_text() == (direct / rel).read_text(), rel
    want, got = yaml.safe_load((direct / "data.yaml").read_text()), yaml.safe_load((merged / "data.yaml").read_text())
    assert {k: got.get(k) for k in COMPARED_KEYS} == {k: want.get(k) for k in COMPARED_KEYS}
    images = sorted(p.relative_to(direct) for p in (direct / "images").rglob("*.jpg"))
    assert images == sorted(p.relative_to(merged) for p in (merged / "images").rglob("*.jpg"))
    for rel in images:  # linked to the same source images
        assert os.path.realpath(merged / rel) == os.path.realpath(direct / rel)


@pytest.mark.skipif(not SAMPLE_ANNOTATIONS.is_file(), reason=f"COCO sample not found at {SAMPLE}")
def test_coco_sample_pose_plus_segment_equals_multitask(tmp_path):
    convert_three_ways([SAMPLE_ANNOTATIONS], SAMPLE / "images", tmp_path)
    result = merge(tmp_path / "pose", tmp_path / "segment", tmp_path / "merged")
    assert result.exit_code == 0, result.output
    assert_merge_equals_multitask(tmp_path)
    # The sample's two people without keypoints are in the segment dataset only: they keep 0 0 0.
    assert "12 pairs" in result.output


def test_synthetic_pose_plus_segment_equals_multitask(synth_dir, tmp_path):
    annotations = sorted((synth_dir / "annotations").glob("instances_*.json"))
    convert_three_ways(annotations, synth_dir / "images", tmp_path)
    report = merge_datasets(tmp_path / "pose", tmp_path / "segment", tmp_path / "merged")
    assert_merge_equals_multitask(tmp_path)
    assert sum(report.kpt_unmatched.values()) == 0
    assert report.matched == report.seg_rows["figure"] == report.kpt_rows["figure"]


def test_many_images_in_worker_processes_match_one_process(tmp_path):
    """The process pool path (several chunks) writes exactly what one process writes."""
    kpt, seg = {}, {}
    for i in range(300):
        x = (i % 7) / 10
        kpt[f"train/{i:04d}"] = pose_row(0, (x, 0.1, x + 0.2, 0.5), [(x + 0.1, 0.2, 2), (0, 0, 0), (x + 0.05, 0.3, 1)]) + "\n"
        seg[f"train/{i:04d}"] = seg_row(0, [(x, 0.1), (x + 0.2, 0.1), (x + 0.21, 0.5), (x, 0.5)]) + "\n" + seg_row(1, [(0.9, 0.9), (1, 0.9), (1, 1)]) + "\n"
    write_dataset(tmp_path / "kpt", KPT_YAML, kpt)
    write_dataset(tmp_path / "seg", SEG_YAML, seg)
    one = merge_datasets(tmp_path / "kpt", tmp_path / "seg", tmp_path / "one", workers=1)
    two = merge_datasets(tmp_path / "kpt", tmp_path / "seg", tmp_path / "two", workers=2)
    assert tree_digest(tmp_path / "one" / "labels") == tree_digest(tmp_path / "two" / "labels")
    assert one.to_dict() | {"out": None, "unmatched_file": None} == two.to_dict() | {"out": None, "unmatched_file": None}
    assert two.matched == 300


def test_the_cycle_collector_pauses_during_a_merge_and_resumes(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", KPT_YAML, {"train/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n"})
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {"train/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5)]) + "\nbad row\n"})
    seen: list[bool] = []
    merge_datasets(kpt, seg, tmp_path / "out", progress=lambda done, total: seen.append(gc.isenabled()))
    assert seen and not any(seen)
    assert gc.isenabled()
    with pytest.raises(MtdataError, match="--strict"):
        merge_datasets(kpt, seg, tmp_path / "strict", strict=True)
    assert gc.isenabled()  # also after a failed merge
    gc.disable()
    try:
        merge_datasets(kpt, seg, tmp_path / "caller_paused_it")
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


# --- behaviour through the CLI ------------------------------------------------------------


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """A pose and a segment dataset: train/a in both (two people, one ball), train/b in SEG only, train/c in KPT only."""
    kpt = write_dataset(tmp_path / "kpt", KPT_YAML, {
        "train/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2), (0.15, 0.3, 2), (0, 0, 0)]) + "\n\n"
                   + pose_row(0, (0.6, 0.1, 0.8, 0.5), [(0.7, 0.2, 2), (0.65, 0.3, 1), (0.75, 0.3, 2)]) + "\n",
        "train/c": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n",
    }, images=("train/a.jpg", "train/c.png"))
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {
        "train/a": seg_row(1, [(0.4, 0.7), (0.5, 0.7), (0.5, 0.8)]) + "\n"
                   + seg_row(0, [(0.6, 0.1), (0.8, 0.1), (0.8, 0.5), (0.6, 0.5)]) + "\n"
                   + seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]) + "\n",
        "train/b": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5)]) + "\n",
    }, images=("train/b.jpg",))
    return kpt, seg


def test_cli_merges_counts_and_links_images(pair, tmp_path):
    kpt, seg = pair
    before = tree_digest(kpt) | tree_digest(seg)
    out = tmp_path / "out"
    result = merge(kpt, seg, out, "--report", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    assert out_lines(out, "train/a") == [
        "1 0.4 0.7 0.5 0.7 0.5 0.8",
        "0 0.7 0.2 2 0.65 0.3 1 0.75 0.3 2 0.6 0.1 0.8 0.1 0.8 0.5 0.6 0.5",
        "0 0.2 0.2 2 0.15 0.3 2 0 0 0 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5",
    ]
    assert out_lines(out, "train/b") == [f"0 {ABSENT_K} 0.1 0.1 0.3 0.1 0.3 0.5"]
    assert not (out / "labels" / "train" / "c.txt").exists()  # SEG does not have c: not written
    # Images come from whichever side has them, SEG first; label-only images get none.
    assert os.path.realpath(out / "images" / "train" / "a.jpg") == str((kpt / "images" / "train" / "a.jpg").resolve())
    assert os.path.realpath(out / "images" / "train" / "b.jpg") == str((seg / "images" / "train" / "b.jpg").resolve())
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["a.jpg", "b.jpg"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["images"]["train"] == {"written": 2, "both": 1, "seg_only": 1, "kpt_only": 1, "with_image": 2}
    assert report["matched"] == 2 and report["seg_unmatched"] == {"person": 1}
    assert report["kpt_unmatched_by_reason"] == {"image_not_in_seg": 1}
    assert report["iou"]["histogram"][-1]["pairs"] == 2
    unmatched = json.loads((out / "unmatched.json").read_text())
    assert [(r["image"], r["line"], r["reason"]) for r in unmatched["kpt_rows"]] == [("c", 1, "image_not_in_seg")]
    assert unmatched["kpt_only_images"] == ["train/c"] and unmatched["seg_only_images"] == ["train/b"]
    assert "2 pairs" in result.output and "image_not_in_seg" in result.output
    assert tree_digest(kpt) | tree_digest(seg) == before  # inputs untouched
    assert_valid_multitask(out)


def test_copy_copies_images(pair, tmp_path):
    kpt, seg = pair
    assert merge(kpt, seg, tmp_path / "out", "--copy").exit_code == 0
    image = tmp_path / "out" / "images" / "train" / "a.jpg"
    assert not image.is_symlink() and image.read_bytes() == (kpt / "images" / "train" / "a.jpg").read_bytes()


def test_unmatched_reasons(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", {**KPT_YAML, "names": {0: "person", 1: "robot"}}, {
        "train/a": "\n".join([
            pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3),  # takes the mask
            pose_row(0, (0.1, 0.1, 0.31, 0.5), [(0.2, 0.2, 2)] * 3),  # same place: mask_taken
            pose_row(0, (0.6, 0.6, 0.7, 0.7), [(0.65, 0.65, 2)] * 3),  # nothing there: below_iou
            pose_row(1, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3),  # robots map to nothing
        ]) + "\n",
        "train/b": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n",  # b has things only: no_mask
    })
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {
        "train/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]) + "\n",
        "train/b": seg_row(1, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]) + "\n",
    })
    report = merge_datasets(kpt, seg, tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "unmatched.json").read_text())["kpt_rows"]
    assert [(r["image"], r["line"], r["class"], r["reason"]) for r in rows] == [
        ("a", 2, "person", "mask_taken"), ("a", 3, "person", "below_iou"), ("a", 4, "robot", "class_not_mapped"),
        ("b", 1, "person", "no_mask"),
    ]
    assert rows[0]["best_iou"] == pytest.approx(0.2 * 0.4 / (0.21 * 0.4), abs=1e-4)
    assert rows[1]["best_iou"] == 0.0 and rows[1]["box_xyxyn"] == [0.6, 0.6, 0.7, 0.7]
    assert any("robot" in note for note in report.notes)


def test_map_pairs_differently_named_classes(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", {**KPT_YAML, "names": {0: "human"}}, {
        "train/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n" + pose_row(0, (0.6, 0.1, 0.8, 0.5), [(0.7, 0.2, 2)] * 3) + "\n",
    })
    seg = write_dataset(tmp_path / "seg", {**SEG_YAML, "names": {0: "man", 1: "woman", 2: "dog"}}, {
        "train/a": seg_row(2, [(0.4, 0.7), (0.5, 0.7), (0.5, 0.8)]) + "\n"
                   + seg_row(1, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5)]) + "\n" + seg_row(0, [(0.6, 0.1), (0.8, 0.1), (0.8, 0.5)]) + "\n",
    })
    result = merge(kpt, seg, tmp_path / "out", "--map", "human=man", "--map", "0=woman")
    assert result.exit_code == 0, result.output
    lines = out_lines(tmp_path / "out", "train/a")
    assert lines[0] == "2 0.4 0.7 0.5 0.7 0.5 0.8"  # dog: no keypoints
    assert lines[1].startswith("1 0.2 0.2 2 ") and lines[2].startswith("0 0.7 0.2 2 ")
    config = read_data_yaml(tmp_path / "out" / "data.yaml")
    assert sorted(config.kpt_names) == [0, 1] and config.kpt_names[0] == ["head", "left_hand", "right_hand"]
    assert "human -> man + woman" in result.output


def test_two_dimensional_keypoints_and_an_ultralytics_yaml(tmp_path):
    """kpt_shape [K, 2] without task (ultralytics): (0, 0) is an absent point, anything else visible."""
    kpt = write_dataset(tmp_path / "kpt", {"path": ".", "train": "images/train", "names": ["person"], "kpt_shape": [K, 2],
                                           "kpt_names": {0: ["a", "b", "c"]}, "flip_idx": [0, 1, 2]}, {
        "train/a": "0 0.2 0.3 0.2 0.4 0.2 0.2 0 0 0.25 0.45\n",
    })
    seg = write_dataset(tmp_path / "seg", {"path": ".", "train": "images/train", "names": ["person"]}, {
        "train/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]) + "\n",
    })
    assert merge(kpt, seg, tmp_path / "out").exit_code == 0
    assert out_lines(tmp_path / "out", "train/a") == [f"0 0.2 0.2 2 {' '.join(ABSENT)} 0.25 0.45 2 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5"]
    assert read_data_yaml(tmp_path / "out" / "data.yaml").kpt_shape == (K, 3)


def test_split_folders_may_differ_and_labels_may_nest(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", {**KPT_YAML, "train": "images/train", "val": "images/val"}, {
        "val/street/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n",
    })
    seg = write_dataset(tmp_path / "seg", {**SEG_YAML, "train": "images/train2017", "val": "images/val2017", "extra_info": "kept"}, {
        "val2017/street/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]) + "\n",
    })
    report = merge_datasets(kpt, seg, tmp_path / "out")
    assert report.matched == 1
    assert out_lines(tmp_path / "out", "val2017/street/a")[0].startswith("0 0.2 0.2 2")
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert data["val"] == "images/val2017" and data["extra_info"] == "kept"


def test_an_images_folder_inside_a_split_is_paired_as_ultralytics_does(tmp_path):
    """images/val/images/a.jpg: its label is images/val/labels/a.txt (the last 'images' becomes 'labels'),
    not labels/val/images/a.txt; OUT puts the merged label where the trainer looks for OUT's image."""
    polygon = [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]
    kpt = write_dataset(tmp_path / "kpt", KPT_YAML, {}, images=("val/images/a.jpg",))
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {"val/images/a": seg_row(1, polygon) + "\n"}, images=("val/images/a.jpg",))
    for root, text in ((kpt, pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3)), (seg, seg_row(0, polygon))):
        (root / "images" / "val" / "labels").mkdir()
        (root / "images" / "val" / "labels" / "a.txt").write_text(text + "\n")  # the decoy in seg: labels/val/images/a.txt
    report = merge_datasets(kpt, seg, tmp_path / "out")
    assert report.matched == 1
    out = tmp_path / "out"
    assert (out / "images" / "val" / "images" / "a.jpg").exists()
    merged = (out / "images" / "val" / "labels" / "a.txt").read_text().splitlines()
    assert len(merged) == 1 and merged[0].startswith("0 0.2 0.2 2")  # the trainer's row of each side, not the decoy's class 1
    assert not (out / "labels" / "val" / "images" / "a.txt").exists()


def test_malformed_rows_are_named_and_strict_makes_them_fatal(pair, tmp_path):
    kpt, seg = pair
    path = seg / "labels" / "train" / "a.txt"
    path.write_text(path.read_text() + "0 0.1 0.2 oops 0.4 0.5 0.6\n0 1.2 0.1 0.3 0.1 0.3 0.5\n")
    result = merge(kpt, seg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"{path}:4:" in result.output and "'oops'" in result.output and f"{path}:5:" in result.output
    assert len(out_lines(tmp_path / "out", "train/a")) == 3  # the good rows, still paired
    assert sum(line.count(" 2 ") > 0 for line in out_lines(tmp_path / "out", "train/a")) == 2
    strict = merge(kpt, seg, tmp_path / "strict", "--strict")
    assert strict.exit_code == 2 and "--strict: 2 malformed label rows" in strict.output and f"{path}:4" in strict.output
    assert not (tmp_path / "strict").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".strict")]


def test_rows_the_parser_clips_are_written_clipped(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", KPT_YAML, {"train/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 1.004, 2)] * 3) + "\n"})
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {"train/a": "0 -0.005 0.1 0.3 0.1 0.3 0.5 0.1 0.500000001\n"})
    assert merge(kpt, seg, tmp_path / "out").exit_code == 0
    keypoints = multitask_text(0, np.zeros((3, 2)), [(0.2, 1.0, 2)] * 3).split()[1:1 + 3 * K]
    polygon = multitask_text(0, [(0, 0.1), (0.3, 0.1), (0.3, 0.5), (0.1, 0.5)]).split()[1:]
    assert out_lines(tmp_path / "out", "train/a") == [" ".join(["0", *keypoints, *polygon])]


# --- bad input ------------------------------------------------------------------------------

# (id, how to break the inputs, extra CLI args (OUT is {out}, the inputs {kpt} and {seg}), expected in the message)
BAD_INPUT = [
    ("kpt missing", lambda kpt, seg: None, ["{tmp}/nowhere", "{seg}", "{out}"], "KPT dataset not found"),
    ("kpt without data.yaml", lambda kpt, seg: (kpt / "data.yaml").unlink(), [], "KPT dataset has no data.yaml"),
    ("seg without data.yaml", lambda kpt, seg: (seg / "data.yaml").unlink(), [], "SEG dataset has no data.yaml"),
    ("kpt without kpt_shape", lambda kpt, seg: (kpt / "data.yaml").write_text("names: [person]\ntrain: images/train\n"), [],
     "KPT needs 'kpt_shape"),
    ("kpt yaml unreadable", lambda kpt, seg: (kpt / "data.yaml").write_text("names: [person\n"), [], "not valid YAML"),
    ("swapped", lambda kpt, seg: None, ["{seg}", "{kpt}", "{out}"], "KPT must be a pose dataset, but data.yaml says task: segment"),
    ("seg is a pose dataset", lambda kpt, seg: (seg / "data.yaml").write_text((kpt / "data.yaml").read_text().replace("task: pose\n", "")),
     [], "SEG has 'kpt_shape'"),
    ("map names an unknown KPT class", lambda kpt, seg: None, ["--map", "ghost=person"], "KPT class 'ghost'"),
    ("map names an unknown SEG class", lambda kpt, seg: None, ["--map", "person=ghost"], "SEG class 'ghost'"),
    ("map without =", lambda kpt, seg: None, ["--map", "person"], "--map expects KPTCLASS=SEGCLASS"),
    ("two KPT classes on one SEG class",
     lambda kpt, seg: (kpt / "data.yaml").write_text((kpt / "data.yaml").read_text().replace("0: person", "0: person\n  1: robot")),
     ["--map", "robot=person"], "from two KPT classes"),
    ("no class in common", lambda kpt, seg: (seg / "data.yaml").write_text("names: [car]\ntrain: images/train\n"), [],
     "no KPT class has the name of a SEG class"),
    ("seg has no labels", lambda kpt, seg: [p.unlink() for p in (seg / "labels" / "train").iterdir()] and
     [p.unlink() for p in (seg / "images" / "train").iterdir()], [], "SEG has no label files or images"),
    ("out is kpt", lambda kpt, seg: None, ["{kpt}", "{seg}", "{kpt}"], "overlaps the input"),
    ("out inside seg", lambda kpt, seg: None, ["{kpt}", "{seg}", "{seg}/merged"], "overlaps the input"),
    ("out not empty", lambda kpt, seg: None, ["{kpt}", "{seg}", "{tmp}/full"], "not empty: pass --overwrite"),
    ("iou zero", lambda kpt, seg: None, ["--iou", "0"], "--iou"),
    ("unreadable label file", lambda kpt, seg: (seg / "labels" / "train" / "a.txt").write_bytes(b"\xff\xfe\x00 bad"), [],
     "cannot read this label file"),
    ("label file is a FIFO", lambda kpt, seg: _replace(seg / "labels" / "train" / "a.txt", os.mkfifo), [],
     "not a regular file"),
    ("label file links to /dev/zero", lambda kpt, seg: _replace(kpt / "labels" / "train" / "a.txt", lambda p: p.symlink_to("/dev/zero")), [],
     "not a regular file"),
    ("alias bomb in KPT's data.yaml", lambda kpt, seg: (kpt / "data.yaml").write_text(_ALIAS_BOMB + (kpt / "data.yaml").read_text()), [],
     "expands to more than"),
]


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


_ALIAS_BOMB = "b0: &b0 [x, x, x, x, x, x, x, x, x]\n" + "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 9)) + "bomb: *b8\n"


@pytest.mark.parametrize("name, damage, args, message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_fails_with_one_line(pair, tmp_path, name, damage, args, message):
    kpt, seg = pair
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    damage(kpt, seg)
    before = tree_digest(kpt) | tree_digest(seg)
    names = {"kpt": kpt, "seg": seg, "out": tmp_path / "out", "tmp": tmp_path}
    positional = [a.format(**names) for a in args] if args and not args[0].startswith("--") else [str(kpt), str(seg), str(tmp_path / "out"), *args]
    result = merge(*positional)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    if "Usage" not in result.output:
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert tree_digest(kpt) | tree_digest(seg) == before
    assert not (tmp_path / "out").exists() and not (seg / "merged").exists()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_overwrite_replaces_a_previous_output(pair, tmp_path):
    kpt, seg = pair
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    assert merge(kpt, seg, tmp_path / "out", "--overwrite").exit_code == 0
    assert not (tmp_path / "out" / "old.txt").exists() and (tmp_path / "out" / "data.yaml").is_file()


def test_flip_idx_is_derived_from_names_when_kpt_has_none(tmp_path):
    config = {k: v for k, v in KPT_YAML.items() if k != "flip_idx"}
    kpt = write_dataset(tmp_path / "kpt", config, {"train/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n"})
    seg = write_dataset(tmp_path / "seg", SEG_YAML, {"train/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5)]) + "\n"})
    report = merge_datasets(kpt, seg, tmp_path / "out")
    assert read_data_yaml(tmp_path / "out" / "data.yaml").flip_idx == [0, 2, 1]  # head, left_hand, right_hand
    assert any("derived [0, 2, 1]" in note for note in report.notes)


def test_splits_are_found_from_label_folders_when_data_yaml_lists_none(tmp_path):
    kpt = write_dataset(tmp_path / "kpt", {"names": ["person"], "kpt_shape": [K, 3]}, {
        "train2017/a": pose_row(0, (0.1, 0.1, 0.3, 0.5), [(0.2, 0.2, 2)] * 3) + "\n", "misc/b": "",
    })
    seg = write_dataset(tmp_path / "seg", {"names": ["person"]}, {"train2017/a": seg_row(0, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.5)]) + "\n"})
    report = merge_datasets(kpt, seg, tmp_path / "out")
    assert report.matched == 1 and any("labels/misc" in note for note in report.notes)
    assert yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["train"] == "images/train2017"
