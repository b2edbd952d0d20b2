"""Fixtures of the ``mtdata view`` tests: one synthetic dataset converted three ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtdata.cli import app


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """task -> data.yaml of one synthetic COCO set converted three ways (read-only)."""
    runner = CliRunner()

    def cli(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output

    root = tmp_path_factory.mktemp("view-data")
    coco = root / "coco"
    cli("synth", coco, "--images", 8, "--size", 128, "--seed", 2)
    annotations = [coco / "annotations" / "instances_train.json", coco / "annotations" / "instances_val.json"]
    out = {}
    for task in ("multitask", "segment", "pose"):
        cli("convert", *annotations, root / task, "--images", coco / "images", "--task", task)
        out[task] = root / task / "data.yaml"
    return out
