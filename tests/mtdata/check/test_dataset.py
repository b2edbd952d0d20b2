"""``mtdata check``: one planted defect per rule is found at its file and line; clean data is clean."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from mtdata.check.data_yaml import check_data_dict
from mtdata.check.dataset import check_dataset
from mtdata.check.rules import RULES
from mtdata.cli import app
from mtdata.convert.dataset import convert_coco
from mtdata.errors import DatasetConfigError, Severity
from mtdata.formats.yolo.data_yaml import dump_yaml, parse_data_dict
from mtdata.formats.yolo.splits import label_path
from tests.mtdata.factories import SHARED_DATA, png_bomb

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics, imported by the agreement tests, must not reach the network
runner = CliRunner()
COCO_SAMPLE = SHARED_DATA / "coco-person"


def _convert(synth: Path, out: Path, task: str) -> Path:
    anns = [synth / "annotations" / f"instances_{s}.json" for s in ("train", "val")]
    convert_coco(anns, out, images_dir=synth / "images", task=task, copy=True)  # copies: tests overwrite images
    return out


@pytest.fixture(scope="module")
def clean(synth_dir, tmp_path_factory) -> dict[str, Path]:
    """Clean converted datasets by task; read-only: tests work on copies (see ``dataset``)."""
    root = tmp_path_factory.mktemp("check-clean")
    return {task: _convert(synth_dir, root / task, task) for task in ("multitask", "segment", "pose")}


@pytest.fixture
def dataset(clean, tmp_path):
    def copy(task: str = "multitask") -> Path:
        out = tmp_path / task
        shutil.copytree(clean[task], out, symlinks=True)
        data = yaml.safe_load((out / "data.yaml").read_text())
        data["path"] = "."  # the copy, not the fixture it came from
        (out / "data.yaml").write_text(dump_yaml(data))
        return out

    return copy


# --- planting helpers: each returns (file, 1-based line or None) where the finding must be ---


def _images(ds: Path, split: str = "train") -> list[Path]:
    return sorted((ds / "images" / split).glob("*.jpg"))


def _label(ds: Path, split: str = "train") -> Path:
    return Path(label_path(str(_images(ds, split)[0])))


def append_row(row: str):
    def plant(ds: Path):
        label = _label(ds)
        lines = label.read_text().splitlines() + [row]
        label.write_text("\n".join(lines) + "\n")
        return label, len(lines)

    return plant


def append_rows(*rows: str):
    def plant(ds: Path):
        label = _label(ds)
        lines = label.read_text().splitlines() + list(rows)
        label.write_text("\n".join(lines) + "\n")
        return label, len(lines)

    return plant


def repeat_first_row(ds: Path):
    label = _label(ds)
    lines = label.read_text().splitlines()
    lines.append(lines[0])
    label.write_text("\n".join(lines) + "\n")
    return label, len(lines)


def edit_yaml(change, key: str | None):
    def plant(ds: Path):
        path = ds / "data.yaml"
        data = yaml.safe_load(path.read_text())
        change(data, ds)
        text = dump_yaml(data)
        path.write_text(text)
        line = next((n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith(f"{key}:")), None) if key else None
        return path, line

    return plant


def write_image(data_of):
    def plant(ds: Path):
        image = _images(ds)[0]
        image.write_bytes(data_of(image))
        return image, None

    return plant


def _exif_rotated(image: Path) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    out = __import__("io").BytesIO()
    Image.open(image).save(out, "JPEG", exif=exif)
    return out.getvalue()


def drop_label(ds: Path):
    image = _images(ds)[-1]  # not the first image, whose label the other planters edit
    Path(label_path(str(image))).unlink()
    return image, None


def copy_image(split: str):
    def plant(ds: Path):
        image = _images(ds)[0]
        target = ds / "images" / split / "zzz_copy.jpg"
        shutil.copy(image, target)
        shutil.copy(label_path(str(image)), label_path(str(target)))
        return target, None

    return plant


def orphan_label(ds: Path):
    label = ds / "labels" / "train" / "orphan.txt"
    label.write_text("1 0.1 0.1 0.3 0.1 0.3 0.3\n")
    return label, None


def fifo_label(ds: Path):
    """A label file that is a FIFO: reading it would wait forever for a writer."""
    label = _label(ds)
    label.unlink()
    os.mkfifo(label)
    return label, None


def garbled_label(ds: Path):
    label = _label(ds)
    label.write_bytes(b"\xff\xfe\xfa not utf-8\n")
    return label, None


def empty_val_split(data: dict, ds: Path) -> None:
    (ds / "images" / "empty").mkdir()
    data["val"] = "images/empty"


SQUARE = "0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"


def figure(kpts: list[tuple[float, float, int]] | None = None, polygon: str = SQUARE) -> str:
    """A multitask row of class 0 (figure, 5 keypoints) with a square polygon."""
    kpts = kpts or [(0.2, 0.2, 2)] * 5
    return "0 " + " ".join(f"{x:g} {y:g} {v}" for x, y, v in kpts) + " " + polygon


# (rule, dataset task, plant function); the one rule not here, row_invalid, cannot be written in a
# file: it is the parser's fallback for a kind it does not know (see test_verify).
CASES = [
    ("yaml_missing_key", "multitask", edit_yaml(lambda d, ds: d.pop("names"), None)),
    ("yaml_missing_split", "multitask", edit_yaml(lambda d, ds: d.pop("val"), None)),
    ("yaml_bad_value", "multitask", edit_yaml(lambda d, ds: d.update(task="cats"), "task")),
    ("yaml_split_not_found", "multitask", edit_yaml(lambda d, ds: d.update(val="images/nowhere"), "val")),
    ("yaml_split_empty", "multitask", edit_yaml(empty_val_split, "val")),
    ("yaml_split_empty", "multitask", edit_yaml(lambda d, ds: d.update(val=[]), "val")),  # ultralytics reads [] as no images
    ("yaml_bad_kpt_shape", "multitask", edit_yaml(lambda d, ds: d.update(kpt_shape=[5, 4]), "kpt_shape")),
    ("yaml_bad_kpt_names", "multitask", edit_yaml(lambda d, ds: d["kpt_names"].update({5: d["kpt_names"][0]}), "kpt_names")),
    ("yaml_bad_flip_idx", "multitask", edit_yaml(lambda d, ds: d.update(flip_idx=[0, 2, 1, 4]), "flip_idx")),
    ("yaml_bad_flip_idx", "multitask", edit_yaml(lambda d, ds: d.update(flip_idx=[0, 2, 1, 4, 4]), "flip_idx")),
    ("yaml_bad_flip_idx", "multitask", edit_yaml(lambda d, ds: d.update(flip_idx=[1, 2, 0, 4, 3]), "flip_idx")),
    ("yaml_bad_skeleton", "multitask", edit_yaml(lambda d, ds: d.update(skeleton=[[0, 1], [0, 9]]), "skeleton")),
    ("image_unreadable", "multitask", write_image(lambda p: b"not an image at all")),
    ("image_corrupt", "multitask", write_image(lambda p: p.read_bytes()[: p.stat().st_size // 2])),
    ("image_zero_size", "multitask", write_image(lambda p: b"")),
    ("image_too_large", "multitask", write_image(lambda p: png_bomb())),  # 20,000 x 20,000: 1.2 GB decoded
    ("image_too_small", "multitask", write_image(lambda p: cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())),
    ("image_exif_rotated", "multitask", write_image(_exif_rotated)),
    ("image_without_label", "multitask", drop_label),
    ("image_duplicate", "multitask", copy_image("train")),
    ("image_duplicate_across_splits", "multitask", copy_image("val")),
    ("label_without_image", "multitask", orphan_label),
    ("label_unreadable", "multitask", garbled_label),
    ("label_unreadable", "multitask", fifo_label),
    ("row_non_numeric", "multitask", append_row("1 0.1 0.1 0.3 x 0.3 0.3")),
    ("row_non_numeric", "multitask", append_row("1 0.1_5 0.1 0.3 0.1 0.3 0.3")),  # Python's float takes it
    ("row_non_numeric", "multitask", append_row("1 \u0660.\u0661 0.1 0.3 0.1 0.3 0.3")),  # Arabic-Indic digits: float takes them
    ("row_non_numeric", "multitask", append_row(figure([(0.2, 0.2, 2)] * 4 + [(0.2, 0.2, "\u0662")]))),
    ("row_class_not_integer", "multitask", append_row(f"1.5 {SQUARE}")),
    ("row_class_out_of_range", "multitask", append_row(f"7 {SQUARE}")),
    ("row_not_finite", "multitask", append_row("1 0.1 inf 0.3 0.1 0.3 0.3")),
    ("row_wrong_count", "multitask", append_row("1 0.1 0.1 0.3 0.1 0.3")),
    ("row_wrong_count", "pose", append_row("0 0.5 0.5 0.2 0.2 0.5 0.5 2")),
    ("row_too_few_points", "multitask", append_row("1 0.1 0.1 0.3 0.1")),
    ("row_too_few_points", "segment", append_row("1 0.1 0.1 0.3 0.1")),
    ("row_duplicate", "multitask", repeat_first_row),
    ("coord_out_of_bounds", "multitask", append_row("1 0.1 0.1 1.3 0.1 0.3 0.3")),
    ("coord_clipped", "multitask", append_row("1 0.1 0.1 1.004 0.1 0.3 0.3")),
    ("coord_clipped", "pose", append_row("0 0.5 0.5 0.2 0.2" + " 0.5 0.5 2" * 4 + " -0.005 0.5 2")),
    ("zero_area", "multitask", append_row("1 0.1 0.1 0.2 0.2 0.3 0.3")),
    ("zero_area", "pose", append_row("0 0.5 0.5 0 0.2" + " 0.5 0.5 2" * 5)),
    ("polygon_self_intersecting", "multitask", append_row("1 0.1 0.1 0.5 0.3 0.5 0.1 0.1 0.4")),
    ("object_near_duplicate", "multitask", append_rows("1 0.5 0.5 0.7 0.5 0.7 0.7 0.5 0.7", "1 0.505 0.5 0.705 0.5 0.705 0.7 0.505 0.7")),
    ("object_tiny", "multitask", append_row("1 0.5 0.5 0.501 0.5 0.501 0.501 0.5 0.501")),
    ("kpt_bad_visibility", "multitask", append_row(figure([(0.2, 0.2, 2)] * 4 + [(0.2, 0.2, 3)]))),
    ("kpt_bad_visibility", "pose", append_row("0 0.5 0.5 0.2 0.2" + " 0.5 0.5 2" * 4 + " 0.5 0.5 7")),
    ("kpt_out_of_image", "multitask", append_row(figure([(0.2, 0.2, 2)] * 4 + [(1.5, 0.2, 1)]))),
    ("kpt_far_outside_box", "multitask", append_row(figure([(0.2, 0.2, 2)] * 4 + [(0.9, 0.9, 2)]))),
    ("kpt_unlabeled_nonzero", "multitask", append_row(figure([(0.2, 0.2, 2)] * 4 + [(0.25, 0.2, 0)]))),
    ("kpt_none_labeled", "multitask", append_row(figure([(0, 0, 0)] * 5))),
]


def test_every_rule_has_a_planted_case():
    assert {rule for rule, _, _ in CASES} == set(RULES) - {"row_invalid"}


@pytest.mark.parametrize("rule,task,plant", CASES, ids=[f"{r}-{t}-{i}" for i, (r, t, _) in enumerate(CASES)])
def test_planted_defect_is_found_at_its_file_and_line(dataset, rule, task, plant):
    ds = dataset(task)
    file, line = plant(ds)
    result = check_dataset(ds / "data.yaml", workers=1)
    hits = [f for f in result.findings if f.rule == rule]
    assert any(Path(f.file).resolve() == file.resolve() and f.line == line for f in hits), (file, line, result.findings)
    assert all(f.severity is RULES[rule].severity for f in hits)
    assert result.exit_code() == (2 if any(f.severity is Severity.ERROR for f in result.findings) else 0)


@pytest.mark.parametrize("task", ["multitask", "segment", "pose"])
def test_clean_converted_dataset_has_no_errors(clean, task):
    result = check_dataset(clean[task] / "data.yaml", workers=1)
    assert result.errors == [] and result.warnings == []
    s = result.summary
    assert s["images"] == 16 and s["label_files"] == 16 and s["rows"] > 0 and s["unusable_images"] == 0


def test_multipart_objects_joined_by_convert_are_not_self_intersecting(tmp_path):
    """Every disc in two parts: convert joins them with zero-width bridges, which touch but never cross."""
    from mtdata.synth import SynthSpec, make_coco

    coco, pixels = make_coco(SynthSpec(images=40, size=96, objects=(3, 5), multipart_ratio=1.0), seed=5)
    (tmp_path / "images").mkdir()
    for entry, canvas in zip(coco["images"], pixels):
        cv2.imwrite(str(tmp_path / "images" / entry["file_name"]), canvas)
    (tmp_path / "instances_train.json").write_text(json.dumps(coco))
    convert_coco([tmp_path / "instances_train.json"], tmp_path / "mt", images_dir=tmp_path / "images")
    result = check_dataset(tmp_path / "mt" / "data.yaml", workers=1)
    assert [f for f in result.findings if f.rule != "yaml_missing_split"] == []
    import shapely

    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mtdata.formats.yolo.rows import read_label_file

    layout = read_data_yaml(tmp_path / "mt" / "data.yaml").layout()
    rows = [r for p in (tmp_path / "mt" / "labels").rglob("*.txt") for r in read_label_file(p, layout).rows]
    assert sum(not shapely.Polygon(r.polygon_xyn).is_valid for r in rows) > 10  # the bridges are there


@pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason=f"COCO sample not found at {COCO_SAMPLE}")
def test_real_coco_sample_converted_has_no_errors(tmp_path):
    convert_coco([COCO_SAMPLE / "annotations" / "person_keypoints_val2017.json"], tmp_path / "mt", images_dir=COCO_SAMPLE / "images")
    result = check_dataset(tmp_path / "mt" / "data.yaml", workers=1)
    assert result.errors == []
    assert result.summary["rows"] == 14
    # persons without labeled keypoints, and no train split in a val-only sample: warnings, not errors
    assert {f.rule for f in result.warnings} <= {"kpt_none_labeled", "yaml_missing_split"}


def test_parallel_run_finds_the_same(dataset, monkeypatch):
    import mtdata.check.dataset as check_module

    ds = dataset()
    for plant in (append_row("1 0.1 0.1 0.3 x 0.3 0.3"), drop_label, copy_image("val"), orphan_label):
        plant(ds)
    serial = check_dataset(ds / "data.yaml", workers=1)
    monkeypatch.setattr(check_module, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(check_module, "_CHUNK", 3)
    parallel = check_dataset(ds / "data.yaml", workers=2)
    assert parallel.findings == serial.findings and parallel.summary == serial.summary
    assert {f.rule for f in serial.findings} >= {"row_non_numeric", "image_without_label", "image_duplicate_across_splits", "label_without_image"}


def test_split_option_checks_one_split_and_still_sees_leakage(dataset):
    ds = dataset()
    copy = copy_image("val")(ds)[0]
    append_row("1 0.1 0.1 0.3 x 0.3 0.3")(ds)  # in train: not reported with --split val
    result = check_dataset(ds / "data.yaml", split="val", workers=1)
    assert [(f.rule, f.file) for f in result.findings] == [("image_duplicate_across_splits", str(copy))]
    assert list(result.summary["splits"]) == ["val"]


# --- data.yaml: every problem at once, agreeing with the parser ---


def test_data_yaml_reports_every_problem_at_its_line(tmp_path):
    text = (
        "names: [figure, disc]\n"
        "nc: 3\n"
        "train: images/train\n"
        "kpt_shape: [3, 3]\n"
        "kpt_names: {figure: [a, b, c], cat: [a, b, c]}\n"
        "flip_idx: [0, 2]\n"
        "skeleton: [[0, 3]]\n"
        "kpt_sigmas: [0.1, 0.1]\n"
    )
    (tmp_path / "data.yaml").write_text(text)
    result = check_dataset(tmp_path / "data.yaml", workers=1)
    got = sorted((f.rule, f.line) for f in result.findings)
    assert got == sorted([
        ("yaml_bad_value", 2),  # nc
        ("yaml_split_not_found", 3),
        ("yaml_missing_split", None),  # val
        ("yaml_bad_kpt_names", 5),  # cat
        ("yaml_bad_flip_idx", 6),
        ("yaml_bad_skeleton", 7),
        ("yaml_bad_value", 8),  # kpt_sigmas
    ])


YAML_TABLE = [
    # (id, data.yaml mapping): parse_data_dict raises if and only if check finds a data.yaml error
    ("good multitask", {"names": ["a", "b"], "train": "i", "val": "i", "kpt_shape": [2, 3], "kpt_names": {0: ["l", "r"]}, "flip_idx": [1, 0]}),
    ("good segment", {"names": {0: "a"}, "train": "i", "val": "i"}),
    ("good pose, 2-D", {"names": ["a"], "train": "i", "val": "i", "kpt_shape": [4, 2]}),
    ("no names", {"train": "i", "val": "i"}),
    ("names a string", {"names": "a", "train": "i", "val": "i"}),
    ("names ids with a gap", {"names": {0: "a", 2: "b"}, "train": "i", "val": "i"}),
    ("names empty", {"names": [], "train": "i", "val": "i"}),
    ("unknown task", {"names": ["a"], "task": "classify", "train": "i", "val": "i"}),
    ("pose without kpt_shape", {"names": ["a"], "task": "pose", "train": "i", "val": "i"}),
    ("multitask without kpt_names", {"names": ["a"], "task": "multitask", "kpt_shape": [2, 3], "train": "i", "val": "i"}),
    ("multitask with 2-D keypoints", {"names": ["a"], "kpt_shape": [2, 2], "kpt_names": {0: ["l", "r"]}, "train": "i", "val": "i"}),
    ("kpt_shape of 3 values", {"names": ["a"], "kpt_shape": [2, 3, 1], "train": "i", "val": "i"}),
    ("kpt_names too short", {"names": ["a"], "kpt_shape": [2, 3], "kpt_names": {0: ["l"]}, "train": "i", "val": "i"}),
    ("kpt_names unknown class", {"names": ["a"], "kpt_shape": [2, 3], "kpt_names": {"b": ["l", "r"]}, "train": "i", "val": "i"}),
    ("flip_idx not involution", {"names": ["a"], "kpt_shape": [3, 3], "flip_idx": [1, 2, 0], "train": "i", "val": "i"}),
    ("flip_idx without kpt_shape", {"names": ["a"], "flip_idx": [0], "train": "i", "val": "i"}),
    ("skeleton not pairs", {"names": ["a"], "kpt_shape": [3, 3], "skeleton": [[0, 1, 2]], "train": "i", "val": "i"}),
    ("sigmas wrong length", {"names": ["a"], "kpt_shape": [3, 3], "kpt_sigmas": [0.1], "train": "i", "val": "i"}),
    ("split a number", {"names": ["a"], "train": 3, "val": "i"}),
]


@pytest.mark.parametrize("data", [c[1] for c in YAML_TABLE], ids=[c[0] for c in YAML_TABLE])
def test_data_yaml_rules_agree_with_the_parser(tmp_path, data):
    file = tmp_path / "data.yaml"
    checked = check_data_dict(data, file)
    errors = [f for f in checked.findings if f.severity is Severity.ERROR]
    try:
        parse_data_dict(data, file)
        parser_ok = True
    except DatasetConfigError:
        parser_ok = False
    assert parser_ok == (not errors), checked.findings
    assert checked.layout_ok == parser_ok or not parser_ok


# --- the command line ---


def cli(*args):
    result = runner.invoke(app, ["check", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_json_output_schema(dataset):
    ds = dataset()
    append_row("1 0.1 0.1 0.3 x 0.3 0.3")(ds)
    drop_label(ds)
    result = cli(ds / "data.yaml", "--format", "json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert set(payload) == {"findings", "summary"}
    for f in payload["findings"]:
        assert set(f) == {"rule", "severity", "file", "line", "message"}
        assert f["rule"] in RULES and f["severity"] == RULES[f["rule"]].severity.value
        assert isinstance(f["file"], str) and (f["line"] is None or (isinstance(f["line"], int) and f["line"] >= 1))
    s = payload["summary"]
    assert s["errors"] == 1 and s["warnings"] == 1 and s["rules"]["row_non_numeric"] == {"severity": "error", "count": 1}
    assert {"images", "label_files", "rows", "splits", "unusable_images", "info"} <= set(s)


def test_text_output_lines(dataset):
    ds = dataset()
    label, line = append_row("1 0.1 0.1 0.3 x 0.3 0.3")(ds)
    result = cli(ds / "data.yaml")
    assert re.search(rf"{re.escape(label.name)}:{line}  row_non_numeric  expected numbers, found 'x'", result.stdout)
    assert "findings by rule" in result.stdout and "1 errors" in result.stdout


def test_exit_codes(dataset, tmp_path):
    ds = dataset()
    assert cli(ds / "data.yaml").exit_code == 0
    assert cli(ds / "data.yaml", "--strict").exit_code == 0
    drop_label(ds)  # a warning
    assert cli(ds / "data.yaml").exit_code == 0
    assert cli(ds / "data.yaml", "--strict").exit_code == 1
    append_row("9 0.1 0.1 0.3 0.1 0.3 0.3")(ds)  # an error
    assert cli(ds / "data.yaml").exit_code == 2


@pytest.mark.parametrize("content,expected", [
    (None, "data.yaml not found"),
    ("names: [a\n", "not valid YAML at line"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_missing_or_invalid_data_yaml_is_one_line(tmp_path, content, expected):
    path = tmp_path / "data.yaml"
    if content is not None:
        path.write_text(content)
    result = cli(path)
    assert result.exit_code == 2
    assert expected in result.output and len(result.output.strip().splitlines()) == 1


def test_unknown_split_is_one_line(dataset):
    result = cli(dataset() / "data.yaml", "--split", "test")
    assert result.exit_code == 2 and "--split 'test' is not in data.yaml" in result.output


def test_rules_lists_every_rule():
    result = cli("--rules", "--format", "json")
    assert result.exit_code == 0
    assert [r["id"] for r in json.loads(result.stdout)] == list(RULES)
    text = cli("--rules")
    assert text.exit_code == 0 and all(rule in text.stdout for rule in RULES)


# --- --fix ---


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fix_writes_a_corrected_copy_and_logs_every_change(dataset, tmp_path):
    ds = dataset()
    label = _label(ds)
    original = label.read_text().splitlines()
    planted = [
        original[0],  # duplicate of line 1
        "1 0.1 0.1 1.004 0.1 0.3 0.3",  # clipped
        figure([(0.2, 0.2, 2)] * 4 + [(0.2, 0.2, 3)]),  # bad visibility: keypoint 4 zeroed
        figure([(0.6, 0.6, 2)] * 4 + [(0.65, 0.6, 0)], "0.5 0.5 0.7 0.5 0.7 0.7 0.5 0.7"),  # unlabeled non-zero: zeroed
        "1 0.1 0.1 0.5 0.3 0.5 0.1 0.1 0.4",  # bowtie: repaired
        "1 0.1 0.1 0.3 x 0.3 0.3",  # cannot be saved: dropped
        "1 0.1 0.1 0.2 0.2 0.3 0.3",  # zero area: dropped
    ]
    label.write_text("\n".join(original + planted) + "\n")
    orphan_label(ds)
    before = _digests(ds)
    out = tmp_path / "fixed"
    result = cli(ds / "data.yaml", "--fix", out)
    assert result.exit_code == 2  # the exit status is the source's
    assert _digests(ds) == before  # the source is never touched
    log = json.loads((out / "fix_log.json").read_text())
    relative = str(label.relative_to(ds))
    first = len(original) + 1
    got = sorted((c["line"], c["rule"]) for c in log["changes"] if c["file"] == relative)
    assert got == [
        (first, "row_duplicate"), (first + 1, "coord_clipped"), (first + 2, "kpt_bad_visibility"),
        (first + 3, "kpt_unlabeled_nonzero"), (first + 4, "polygon_self_intersecting"), (first + 5, "row_non_numeric"),
        (first + 6, "zero_area"),
    ]
    assert any(c["rule"] == "label_without_image" for c in log["changes"])
    fixed_lines = (out / relative).read_text().splitlines()
    assert fixed_lines[: len(original)] == original  # untouched rows are kept byte for byte
    assert len(fixed_lines) == len(original) + 4
    again = check_dataset(out / "data.yaml", workers=1)
    assert again.errors == [] and again.warnings == [], again.findings
    assert (out / "images" / "train").is_dir() and not (out / "labels" / "train" / "orphan.txt").exists()


def _tree(folder: Path, skip: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if skip != p and skip not in p.parents}


def test_fix_copies_only_images_and_labels_from_inside_the_dataset(dataset, tmp_path):
    """A ``notes.txt -> /etc/shadow`` beside the labels, or a label file linked to a file outside, never lands in OUT."""
    from mtdata.formats.yolo.data_yaml import IMAGE_SUFFIXES

    ds = dataset()
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT\n")
    secret_label = tmp_path / "secret_label.txt"
    secret_label.write_text("1 0.1 0.1 0.3 0.1 0.3 0.3\n1 0.2 0.1 0.3 0.1 0.3 0.3 SECRET-CONTENT\n")
    (ds / "notes.txt").symlink_to(secret)
    (ds / "labels" / "notes.txt").symlink_to(secret)
    (ds / "README.md").write_text("a regular file, not part of the dataset's splits\n")
    label = _label(ds, "val")
    label.unlink()
    label.symlink_to(secret_label)
    ids_before = (ds / "coco_ids.json").read_bytes()
    out = tmp_path / "fixed"
    before = _tree(tmp_path, out)
    result = cli(ds / "data.yaml", "--fix", out)
    assert result.exit_code in (0, 2) and "Traceback" not in result.output, result.output
    assert _tree(tmp_path, out) == before  # nothing written outside OUT
    for p in out.rglob("*"):
        if p.is_symlink():
            assert p.suffix.lower() in IMAGE_SUFFIXES, p  # only images are links
        elif p.is_file():
            assert b"SECRET" not in p.read_bytes(), p
    assert not (out / "notes.txt").exists() and not (out / "README.md").exists()
    assert not (out / label.relative_to(ds)).exists()
    assert (out / "coco_ids.json").read_bytes() == ids_before  # named by data.yaml: kept
    log = {c["file"]: c["action"] for c in json.loads((out / "fix_log.json").read_text())["changes"] if c["line"] is None}
    assert log["notes.txt"].startswith("left out") and log["README.md"].startswith("left out")
    assert "outside the dataset" in log[str(label.relative_to(ds))]


def test_fix_refuses_a_non_empty_or_nested_output(dataset, tmp_path):
    ds = dataset()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = cli(ds / "data.yaml", "--fix", tmp_path / "full")
    assert result.exit_code == 2 and "not empty" in result.output
    result = cli(ds / "data.yaml", "--fix", ds / "inside")
    assert result.exit_code == 2 and "overlaps" in result.output
    assert not (ds / "inside").exists()


# --- agreement with training ---


def _planted_for_training(ds: Path) -> None:
    images = _images(ds)
    images[0].write_bytes(b"garbage")
    images[1].write_bytes(images[1].read_bytes()[:300])
    images[2].write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    Path(label_path(str(images[3]))).write_bytes(b"\xff\xfe bad\n")
    for image, row in zip(images[4:9], ["9 0.1 0.1 0.3 0.1 0.3 0.3", "1 0.1 0.1 x 0.1 0.3 0.3", "1 0.1 0.1 1.5 0.1 0.3 0.3",
                                        "1.5 0.1 0.1 0.3 0.1 0.3 0.3", "1 -0.5 0.1 0.3 0.1 0.3 0.3"]):
        label = Path(label_path(str(image)))
        label.write_text(label.read_text() + row + "\n")


def _files_with_errors(result) -> set[str]:
    return {str(Path(f.file).resolve()) for f in result.errors}


def test_every_image_ultralytics_drops_is_an_error_here(dataset, monkeypatch):
    """ultralytics' own scan (verify_image_label) over segment labels: what it drops, check reports."""
    from ultralytics.data.utils import verify_image_label

    # its Image.open asks pip for pi-heif on data it cannot identify: never install anything here
    monkeypatch.setattr("ultralytics.utils.checks.AUTOINSTALL", False)

    ds = dataset("segment")
    _planted_for_training(ds)
    result = check_dataset(ds / "data.yaml", workers=1)
    flagged = _files_with_errors(result)
    dropped = []
    for image in _images(ds):
        label = label_path(str(image))
        out = verify_image_label((str(image), label, "", False, 2, 0, 0, False))
        if out[8]:  # nc: corrupt, the image is dropped
            dropped.append(image)
            assert {str(image.resolve()), str(Path(label).resolve())} & flagged, out[9]
    assert len(dropped) >= 6


def test_every_image_or_row_the_trainer_drops_is_an_error_here(dataset):
    """mttrain's dataset scan (mttrain.data.scan_sample) on a planted multitask dataset."""
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mttrain.data import scan_sample

    ds = dataset()
    _planted_for_training(ds)
    config = read_data_yaml(ds / "data.yaml")
    layout = config.layout()
    result = check_dataset(ds / "data.yaml", workers=1)
    flagged = _files_with_errors(result)
    error_lines = {(str(Path(f.file).resolve()), f.line) for f in result.errors}
    dropped_images = dropped_rows = 0
    for image in _images(ds):
        label = Path(label_path(str(image)))
        sample = scan_sample(str(image), str(label), layout, config.num_keypoints)
        if sample[0] is None:
            dropped_images += 1
            assert {str(image.resolve()), str(label.resolve())} & flagged, sample[5]
            continue
        kept = len(sample[0]["cls"])
        lines = [n for n, ln in enumerate(label.read_text().splitlines(), 1) if ln.strip()]
        # every row left out is an error at a line of this file
        rows_with_errors = {n for f, n in error_lines if f == str(label.resolve()) and n is not None}
        assert len(lines) - kept <= len(rows_with_errors)
        dropped_rows += len(lines) - kept
    assert dropped_images >= 4 and dropped_rows >= 5
