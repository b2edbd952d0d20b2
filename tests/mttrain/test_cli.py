"""mttrain's command line: user errors are one line and exit 2; KEY=VALUE reaches ultralytics."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mttrain.cli import app, parse_overrides

runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "missing.yaml", "--epochs", "1"], "data.yaml not found"),
        (["fit", "{data}", "--weights", "nope.pt"], "nope.pt not found"),
        (["fit", "{data}", "epoch=3"], "did you mean epochs"),
        (["val", "nope.pt"], "weights file not found"),
        (["predict", "nope.pt", "x.jpg"], "x.jpg"),
    ],
    ids=["missing-data", "missing-weights", "unknown-key", "val-missing-model", "predict-missing-source"],
)
def test_user_errors_are_one_line_exit_2(args, message, tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{data}", str(tiny_data)) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_non_empty_run_folder_is_refused(tiny_data, tmp_path):
    (tmp_path / "runs" / "train").mkdir(parents=True)
    (tmp_path / "runs" / "train" / "results.csv").write_text("x")
    result = runner.invoke(app, ["fit", str(tiny_data), "--project", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "--exist-ok" in result.output


def test_overrides_are_typed():
    assert parse_overrides(["epochs=3", "imgsz=160", "cos_lr=true", "lr0=0.02"]) == {"epochs": 3, "imgsz": 160, "cos_lr": True, "lr0": 0.02}


def test_help_does_not_import_torch():
    code = "import sys; from mttrain.cli import app; assert 'torch' not in sys.modules and 'ultralytics' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- errors come fast: before torch and ultralytics load, and without ultralytics' dump of arguments -------------

def other_task_datasets(out: Path) -> dict[str, Path]:
    """A pose and a segment dataset (mtdata convert --task pose / segment), as a user may have them."""
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth

    coco = out / "coco"
    write_synth(coco, images=4, size=64, seed=1)
    found = {}
    for task in ("pose", "segment"):
        convert_coco([coco / "annotations" / "instances_train.json"], out / task, images_dir=coco / "images", task=task)
        found[task] = out / task / "data.yaml"
    return found


def test_fit_on_a_pose_or_segment_dataset_says_what_works(tmp_path):
    for task, data in other_task_datasets(tmp_path).items():
        result = runner.invoke(app, ["fit", str(data), "--epochs", "1"])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"a {task} dataset" in lines[0], result.output
        assert "mtdata merge" in lines[0] and "mtdata convert --task multitask" in lines[0]
        assert "set 'task: multitask'" not in lines[0]  # the advice that made every row invalid


USER_ERRORS = [
    (["fit", "missing.yaml"], "data.yaml not found"),
    (["fit", "{pose}"], "a pose dataset"),
    (["fit", "{valonly}"], "no 'train' split to train on (splits: val)"),
    (["fit", "{data}", "--weights", "nope.pt"], "nope.pt not found"),
    (["fit", "{data}", "--model", "nope.pt"], "nope.pt not found"),
    (["fit", "{data}", "--resume", "--project", "nowhere"], "not found"),
    (["fit", "{data}", "epoch=3"], "did you mean epochs"),
    (["fit", "{data}", "lr0=abc"], "'lr0=abc' is of invalid type str"),
    (["fit", "{data}", "epochs=0"], "'epochs' must be >= 1"),
    (["fit", "{data}", "mosaic=2"], "'mosaic=2' is out of range"),
    (["fit", "{data}", "cos_lr=maybe"], "'cos_lr' takes True or False"),
    (["fit", "{data}", "--epochs", "1", "epochs=2"], "epochs is given twice (--epochs and epochs=2)"),
    (["fit", "{data}", "data={data}"], "data is given twice"),
    (["fit", "{data}", "--weights", "{data}", "pretrained=x.pt"], "pretrained is given twice (--weights"),
    (["fit", "{data}", "task=pose"], "task= is set by mttrain"),
    (["fit", "{data}", "epochs"], "expected KEY=VALUE"),
    (["val", "nope.pt"], "weights file not found"),
    (["val", "nope.pt", "rect=maybe"], "'rect' takes True or False"),
    (["val", "{pt}", "--imgsz", "64", "imgsz=96"], "imgsz is given twice (--imgsz and imgsz=96)"),
    (["val", "{pt}", "--data", "{pose}"], "a pose dataset"),
    (["predict", "nope.pt", "x.jpg"], "x.jpg"),
    (["predict", "nope.pt", "{data}"], "weights file not found"),
    (["predict", "{pt}", "{data}", "--conf", "0.3", "conf=0.2"], "conf is given twice (--conf and conf=0.2)"),
    (["predict", "{pt}", "{data}", "source=x"], "source is given twice (the SOURCE argument"),
    (["predict", "{pt}", "{data}", "iou=high"], "'iou=high' is of invalid type str"),
    (["export", "nope.pt"], "weights file not found"),
    (["export", "{pt}", "--format", "onnx", "format=torchscript"], "format is given twice (--format"),
    (["export", "{pt}", "nms=True"], "nms=True (NMS inside the graph) is not supported"),
    (["export", "{pt}", "max_det=5"], "mttrain export does not take max_det="),
    (["export", "{pt}", "opset=x"], "'opset=x' is of invalid type str"),
]


def test_user_errors_come_in_one_line_before_torch_loads(tmp_path, tiny_data):
    """Each error above in a fresh interpreter: one line, exit 2, and neither torch nor ultralytics imported."""
    import json

    pose = other_task_datasets(tmp_path)["pose"]
    (tmp_path / "best.pt").write_bytes(b"not read before the argument errors")
    valonly = tmp_path / "valonly.yaml"  # as a dataset converted from a val annotation file only is
    valonly.write_text("".join(line for line in tiny_data.read_text().splitlines(True) if not line.startswith("train:")))
    places = {"{data}": tiny_data, "{pose}": pose, "{pt}": tmp_path / "best.pt", "{valonly}": valonly}
    cases = []
    for args, _ in USER_ERRORS:
        for key, value in places.items():
            args = [a.replace(key, str(value)) for a in args]
        cases.append(args)
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from mttrain.cli import app\n"
        "out = []\n"
        f"for args in json.loads({json.dumps(json.dumps(cases))}):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    out.append([r.exit_code, r.output, sorted(m for m in ('torch', 'ultralytics') if m in sys.modules)])\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for (args, message), (code_, output, heavy) in zip(USER_ERRORS, json.loads(run.stdout)):
        lines = output.strip().splitlines()
        assert code_ == 2 and len(lines) == 1 and message in lines[0], (args, output)
        assert heavy == [], (args, heavy)


def test_val_predict_and_export_take_ultralytics_arguments(trained_run, tiny_data, tmp_path):
    best = str(trained_run["best"])
    val = runner.invoke(app, ["val", best, "--data", str(tiny_data), "--imgsz", "64", "--project", str(tmp_path),
                              "plots=True", "rect=False", "conf=0.01"])
    assert val.exit_code == 0, val.output
    assert list((tmp_path / "val").glob("val_batch0_*.jpg")), "plots=True reached the validator"
    images = str(tiny_data.parent / "images" / "val")
    predict = runner.invoke(app, ["predict", best, images, "--imgsz", "64", "--project", str(tmp_path), "--save-txt",
                                  "--conf", "0.00001", "max_det=1", "save=False"])
    assert predict.exit_code == 0, predict.output
    labels = list((tmp_path / "predict" / "labels").iterdir())
    assert labels and all(len(f.read_text().splitlines()) <= 1 for f in labels), "max_det=1 reached the predictor"
    assert not list((tmp_path / "predict").glob("*.jpg")), "save=False reached the predictor"
    shutil.copy(best, tmp_path / "best.pt")
    export = runner.invoke(app, ["export", str(tmp_path / "best.pt"), "format=torchscript", "imgsz=96", "dynamic=True"])
    assert export.exit_code == 0, export.output
    from mttrain.export import read_metadata

    meta = read_metadata(tmp_path / "best.torchscript")
    assert meta["imgsz"] == [96, 96] and meta["args"]["dynamic"] is True


def test_python_api_argument_errors_are_one_line(trained_run):
    from mttrain import MultiTaskYOLO
    from mttrain.errors import ArgumentError

    model = MultiTaskYOLO(trained_run["best"])
    for kwargs, message in ((dict(lr0="abc"), "'lr0=abc' is of invalid type str"), (dict(epoch=3), "did you mean epochs"),
                            (dict(conf=3.0), "'conf=3.0' is an invalid value")):
        with pytest.raises(ArgumentError, match=message):
            model.val(**kwargs)


@pytest.mark.slow
def test_fit_trains_a_yolo26_multitask_model(trained_run26):
    import torch

    from mttrain.nn.head import MultiTask26

    assert "rle_loss" in trained_run26["output"] or (trained_run26["project"] / "train" / "results.csv").is_file()
    header = (trained_run26["project"] / "train" / "results.csv").read_text().splitlines()[0]
    for name in ("l1_loss", "pose_loss", "rle_loss", "sem_loss", "metrics/mAP50-95(M)", "metrics/mAP50-95(P)"):
        assert name in header, name
    ckpt = torch.load(trained_run26["best"], weights_only=False)
    head = ckpt["model"].model[-1]
    assert isinstance(head, MultiTask26) and ckpt["model"].kpt_names == {0: ["head", "left_hand", "right_hand",
                                                                             "left_foot", "right_foot"]}
    assert head.one2one_cv5 is not None  # both branches kept in the checkpoint: nms=False can choose


@pytest.mark.slow
@pytest.mark.parametrize("nms", ["nms=False", None], ids=["one2one-no-nms", "one2many-nms"])
def test_yolo26_val_and_predict_commands_choose_the_branch_with_nms(nms, trained_run26, tiny_data, tmp_path):
    best = str(trained_run26["best"])
    extra = [nms] if nms else []
    val = runner.invoke(app, ["val", best, "--data", str(tiny_data), "--imgsz", "64", "--project", str(tmp_path),
                              "conf=0.001", *extra])
    assert val.exit_code == 0, val.output
    assert (tmp_path / "val" / "metrics.json").is_file()
    images = str(tiny_data.parent / "images" / "val")
    predict = runner.invoke(app, ["predict", best, images, "--imgsz", "64", "--project", str(tmp_path), "--save-txt",
                                  "--conf", "0.0001", "save=False", *extra])
    assert predict.exit_code == 0, predict.output
    assert list((tmp_path / "predict" / "labels").iterdir())
