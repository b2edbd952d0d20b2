"""The migration table from the ultralytics multitask fork to mttrain: every row, run.

The fork documents ``yolo multitask train|val|predict`` and ``yolo export`` with ``KEY=VALUE`` arguments, and
``YOLO(...)`` with ``metrics.box.*`` / ``metrics.seg.*``. mttrain takes the same grammar (``mttrain train`` is
``fit``; ``model=``, ``source=`` and ``data=`` are keys as well as arguments) and the same attributes, plus
``metrics.pose.*``. Each CLI row below is the fork's command with ``yolo multitask`` (or ``yolo``) replaced by
``mttrain``, at tiny sizes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mttrain.cli import app

runner = CliRunner()

# (fork's command, ours); {data}, {best}, {images}, {out} are filled in by the test.
CLI_ROWS = {
    "val": ("yolo multitask val model=best.pt", "val model={best} project={out}"),
    "predict": ("yolo multitask predict model=best.pt source=images/",
                "predict model={best} source={images} imgsz=64 project={out}"),
    "export": ("yolo export model=best.pt format=onnx", "export model={best} format=onnx"),
    "predict-export": ("yolo predict model=best.onnx source=images/",
                       "predict model={onnx} source={images} project={out} name=onnx"),
}


@pytest.fixture()
def run_files(trained_run, tiny_data, tmp_path):
    """A writable copy of a trained best.pt, its dataset's val images and an output folder."""
    best = Path(shutil.copy(trained_run["best"], tmp_path / "best.pt"))
    images = tiny_data.parent / "images" / "val"
    return {"best": best, "onnx": best.with_suffix(".onnx"), "images": images, "data": tiny_data,
            "out": tmp_path / "runs"}


def invoke(command: str, files: dict) -> str:
    result = runner.invoke(app, command.format(**files).split())
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_rows_run(run_files):
    """val, predict, export and predict-on-the-export, in the fork's grammar, in that order (each uses the last)."""
    files = run_files
    invoke(CLI_ROWS["val"][1], files)
    assert (files["out"] / "val" / "metrics.json").is_file()  # the dataset came from the .pt's training arguments
    output = invoke(CLI_ROWS["predict"][1], files)
    assert "images" in output and any((files["out"] / "predict").iterdir())
    invoke(CLI_ROWS["export"][1], files)
    assert files["onnx"].is_file()
    output = invoke(CLI_ROWS["predict-export"][1], files)
    assert any((files["out"] / "onnx").iterdir())


@pytest.mark.slow
def test_train_row_runs(tiny_data, tmp_path):
    """yolo multitask train data=... model=... epochs=... imgsz=...  ->  mttrain train data=... model=... ..."""
    output = invoke("train data={data} model=yolov8n-multitask.yaml epochs=1 imgsz=64 batch=8 workers=0 "
                    "plots=False project={out} name=fork", {"data": tiny_data, "out": tmp_path})
    assert (tmp_path / "fork" / "weights" / "best.pt").is_file()
    assert f"run folder: {tmp_path / 'fork'}" in output.replace("\n", "") and "Pose" in output  # keys name the run


@pytest.mark.parametrize(
    "args, message",
    [
        ("predict {best} model={best} source={images}", "model is given twice (the MODEL argument and model="),
        ("predict model={best} model={best} source={images}", "model= is given twice"),
        ("predict {best} {images} source={images}", "source is given twice"),
        ("val {best} model={best}", "model is given twice"),
        ("export {best} model={best}", "model is given twice"),
        ("train {data} data={data}", "data is given twice"),
        ("fit data={data} --model yolov8n-multitask.yaml model=yolo11n-multitask.yaml", "model is given twice (--model"),
        ("predict model={best}", "missing SOURCE"),
        ("val", "missing MODEL"),
        ("train epochs=1", "missing DATA"),
        ("export format=onnx", "missing MODEL"),
        ("export model={best} source=x", "mttrain export does not take source="),
    ],
    ids=["predict-model-twice", "predict-model-key-twice", "predict-source-twice", "val-model-twice",
         "export-model-twice", "train-data-twice", "fit-model-option-and-key", "predict-no-source", "val-no-model",
         "train-no-data", "export-no-model", "export-source"],
)
def test_keys_given_twice_or_missing_are_one_line_exit_2(args, message, run_files):
    result = runner.invoke(app, args.format(**run_files).split())
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_python_rows_run(run_files):
    """YOLO("yolov8n-multitask.yaml") -> MultiTaskYOLO(...); YOLO("best.pt").val() -> metrics.box/seg (+ pose);
    model("image.jpg") -> Results with boxes, masks, keypoints; model.export(format="onnx") -> the path."""
    from mttrain import MultiTaskYOLO

    assert MultiTaskYOLO("yolov8n-multitask.yaml").task == "multitask"
    model = MultiTaskYOLO(run_files["best"])
    metrics = model.val(project=str(run_files["out"]), plots=False)  # no data=: remembered from training
    nc = len(model.names)
    for metric in (metrics.box, metrics.seg, metrics.pose):  # the fork's docs name box and seg; pose is ours
        for name in ("map", "map50", "map75", "mp", "mr"):
            assert 0.0 <= float(getattr(metric, name)) <= 1.0, name
        assert len(metric.maps) == nc
    assert len(metrics.maps) == nc and 0.0 <= metrics.fitness
    assert {"metrics/mAP50-95(B)", "metrics/mAP50-95(M)", "metrics/mAP50-95(P)"} <= set(metrics.results_dict)
    image = next(run_files["images"].glob("*.jpg"))
    (result,) = model(str(image), imgsz=64, conf=0.001, verbose=False, project=str(run_files["out"]))
    assert result.boxes is not None and result.masks is not None and result.keypoints is not None
    assert result.keypoints.data.shape[1:] == (5, 3)
    assert model.export(format="onnx") == run_files["onnx"]
    (exported,) = MultiTaskYOLO(run_files["onnx"])(np.asarray(result.orig_img), verbose=False,
                                                   project=str(run_files["out"]))
    assert exported.keypoints is not None
