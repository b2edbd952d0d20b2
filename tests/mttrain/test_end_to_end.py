"""The whole job through the real command lines: synth -> convert -> fit -> val -> predict.

Floors: on this 64-image, 128-px synthetic set, 25 CPU epochs reach mAP50 of about 0.5 (box,
mask) and 0.65 (pose) with seed 0; an untrained model scores ~0. A floor of 0.25 for each
task proves the model learned boxes, masks and keypoints, with margin for numeric drift.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FLOOR = 0.25
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path) -> str:
    out = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.slow
def test_fit_val_predict_learns_all_three_tasks(tmp_path):
    run("mtdata", "synth", "coco", "--images", "64", "--size", "128", "--seed", "1", cwd=tmp_path)
    run("mtdata", "convert", "coco/annotations/instances_train.json", "coco/annotations/instances_val.json", "mt",
        "--images", "coco/images", cwd=tmp_path)
    run("mttrain", "fit", "mt/data.yaml", "--epochs", "25", "--imgsz", "128", "--batch", "8", "--workers", "0",
        "--project", "runs", "--name", "fit", "seed=0", "deterministic=True", "warmup_epochs=1", "close_mosaic=5", cwd=tmp_path)
    run_dir = tmp_path / "runs" / "fit"
    for name in ("weights/best.pt", "weights/last.pt", "results.csv", "args.yaml", "results.png", "train_batch0.jpg"):
        assert (run_dir / name).is_file(), name
    header = (run_dir / "results.csv").read_text().splitlines()[0]
    for task in "BMP":
        assert f"metrics/mAP50({task})" in header and f"metrics/mAP50-95({task})" in header

    out = run("mttrain", "val", "runs/fit/weights/best.pt", "--data", "mt/data.yaml", "--imgsz", "128",
              "--project", "runs", "--name", "val", cwd=tmp_path)
    metrics = json.loads((tmp_path / "runs" / "val" / "metrics.json").read_text())
    for task in ("box", "mask", "pose"):
        assert metrics[task]["map50"] > FLOOR, (task, metrics)
    assert "Pose" in out

    run("mttrain", "predict", "runs/fit/weights/best.pt", "coco/images/val", "--imgsz", "128", "--save-txt",
        "--project", "runs", "--name", "pred", cwd=tmp_path)
    pred = tmp_path / "runs" / "pred"
    assert len(list(pred.glob("*.jpg"))) == 16
    rows = [line.split() for f in (pred / "labels").glob("*.txt") for line in f.read_text().splitlines()]
    assert rows, "no predicted rows written"
    for row in rows:  # every row is a valid multitask row: keypoints only for class 0 (figure)
        values = len(row) - 1
        assert values >= 6 and (values - (15 if row[0] == "0" else 0)) % 2 == 0
