"""Every example runs, as a user would run it: the demo (the whole job) and the Python examples.

The demo is also the end-to-end proof that the model learns. Floors: on its 64-image, 128-px
synthetic set, 25 CPU epochs reach mAP50 of about 0.5 (box, mask) and 0.6 (pose) with seed 0;
an untrained model scores ~0, so 0.25 for each task shows boxes, masks and keypoints were learned
with margin for numeric drift.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLOOR = 0.25


def run_example(name: str, *args: str, env: dict | None = None) -> str:
    import os

    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=1200,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, f"{name} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_example("demo.py", str(out))


@pytest.mark.slow
def test_demo_runs_the_whole_job_and_learns(demo):
    out, stdout = demo
    assert "Demo finished" in stdout
    for path in ("multitask/data.yaml", "multitask/unmatched.json", "runs/fit/weights/best.pt", "runs/fit/results.png",
                 "runs/fit/weights/best.onnx", "runs/val/metrics.json"):
        assert (out / path).exists(), path
    metrics = json.loads((out / "runs" / "val" / "metrics.json").read_text())
    for task in ("box", "mask", "pose"):
        assert metrics[task]["map50"] > FLOOR, (task, metrics)
    header = (out / "runs" / "fit" / "results.csv").read_text().splitlines()[0]
    assert all(f"metrics/mAP50-95({t})" in header for t in "BMP")


@pytest.mark.slow
def test_demo_predictions_are_multitask_rows(demo):
    out, _ = demo
    pred = out / "runs" / "predict"
    assert len(list(pred.glob("*.jpg"))) == 16
    rows = [line.split() for f in (pred / "labels").glob("*.txt") for line in f.read_text().splitlines()]
    assert rows
    for row in rows:  # keypoints (5 x 3 values) only for class 0, figure; then an even polygon of >= 3 points
        values = len(row) - 1 - (15 if row[0] == "0" else 0)
        assert values >= 6 and values % 2 == 0


def test_data_from_python(tmp_path):
    stdout = run_example("data_from_python.py", str(tmp_path / "ex"))
    assert "0 errors" in stdout and (tmp_path / "ex" / "multitask" / "data.yaml").is_file()


@pytest.mark.slow
def test_train_and_fiftyone_from_python(tmp_path, fiftyone_db):
    run_example("data_from_python.py", str(tmp_path / "ex"))
    data = tmp_path / "ex" / "multitask" / "data.yaml"
    stdout = run_example("train_from_python.py", str(data), "2", str(tmp_path / "runs"))
    assert "box mAP50-95" in stdout and "objects" in stdout
    best = tmp_path / "runs" / "train" / "weights" / "best.pt"
    stdout = run_example("fiftyone_predictions.py", str(data), str(best), env={**fiftyone_db, "HOME": str(tmp_path)})
    assert "mt-example" in stdout and "samples" in stdout
