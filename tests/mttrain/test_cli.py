"""mttrain's command line: user errors are one line and exit 2; KEY=VALUE reaches ultralytics."""

import subprocess
import sys

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
