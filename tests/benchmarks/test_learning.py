"""The learning benchmark's tables and its refusal to reuse a set made with other sizes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from learning import model_yaml, prepare, tables  # noqa: E402


def _run(arch: str | None, model: str, seed: int, mask: float | None, pose: float | None) -> dict:
    coco = {task: {"map50_95": v} for task, v in (("mask", mask), ("pose", pose)) if v is not None}
    out = {"set": "planes", "model": model, "seed": seed, "coco": coco}
    if arch:  # runs written before --arch have no "arch": they are yolov8n
        out["arch"] = arch
    return out


def test_tables_per_architecture_and_between_them():
    runs = [
        _run(None, "multitask", 0, 0.10, 0.30), _run(None, "multitask", 1, 0.12, 0.32),
        _run("yolov8n", "seg", 0, 0.11, None), _run("yolov8n", "pose", 0, None, 0.30),
        _run("yolo26n", "multitask", 0, 0.05, 0.15), _run("yolo26n", "seg", 0, 0.10, None),
        _run("yolo26n", "pose", 0, None, 0.30),
    ]
    text = tables(runs)
    assert "set planes, yolov8n" in text and "set planes, yolo26n" in text
    assert "0.500x MISS" in text  # yolo26n: 0.05 / 0.10 and 0.15 / 0.30
    assert "1.000x PASS" in text  # yolov8n mask: mean(0.10, 0.12) / 0.11
    assert "1.033x PASS" in text  # yolov8n pose: mean(0.30, 0.32) / 0.30
    # between architectures: only the seeds both ran (seed 0)
    assert "mask: yolo26n-multitask 0.050 / yolov8n-multitask 0.100 = 0.500x (seeds 0)" in text
    assert "pose: yolo26n-multitask 0.150 / yolov8n-multitask 0.300 = 0.500x (seeds 0)" in text


def test_model_yaml_names():
    assert model_yaml("yolo26n", "multitask") == "yolo26n-multitask.yaml"
    assert model_yaml("yolov8n", "seg") == "yolov8n-seg.yaml"


def test_prepare_refuses_a_set_of_other_sizes(tmp_path):
    (tmp_path / "planes").mkdir()
    (tmp_path / "planes" / "spec.json").write_text(json.dumps({"train": 200, "val": 40, "size": 160}))
    with pytest.raises(SystemExit, match="not .*\"val\": 400"):
        prepare(tmp_path, "planes")
    (tmp_path / "synth" / "coco" / "annotations").mkdir(parents=True)
    with pytest.raises(SystemExit, match="unknown sizes"):
        prepare(tmp_path, "synth")
