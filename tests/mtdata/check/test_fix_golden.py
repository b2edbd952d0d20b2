"""``mtdata check --fix`` through the CLI on a seeded damaged synthetic dataset: every output byte against a golden file.

The golden (golden/fix_cli.json) holds, per layout, the exit code, the console output, fix_log.json and the text of
every label file in OUT, with the temporary folders written as ``<tmp>``. It was recorded from the code before fix.py
worked on an ObjectBatch; set ``MTDATA_WRITE_GOLDEN=1`` to record it again (only for a change meant to alter outputs).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.convert.dataset import convert_coco
from mtdata.formats.yolo.data_yaml import dump_yaml

GOLDEN = Path(__file__).parent / "golden" / "fix_cli.json"
SQUARE = "0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"
BOWTIE = "0.1 0.1 0.9 0.1 0.1 0.5 0.3 0.5"
runner = CliRunner()


def _kpts(*points: str) -> str:
    return " ".join(points)


# rows every other label file of a layout gets after its own: one or more per repair
PLANTED = {
    "multitask": [
        f"0 {_kpts('0.2 0.2 2', '0.3 0.3 7', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')} {SQUARE}",  # bad visibility
        f"0 {_kpts('0.2 0.2 2', '1.5 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')} {SQUARE}",  # labeled outside
        f"0 {_kpts('0.2 0.2 0', '0.3 0.3 2', '0.0 0.3 0', '0.3 0.2 2', '0.25 0.25 1')} {SQUARE}",  # unlabeled non-zero
        f"0 {_kpts('1.004 0.2 2', '0.3 0.3 2', '0 0 0', '0.3 0.2 2', '0.25 0.25 1')} {SQUARE}",  # keypoint clipped
        "1 -0.004 0.1 0.5 0.1 0.5 1.006 0.1 0.5",  # polygon clipped
        f"1 {BOWTIE}",  # self-intersecting
        "1 1.004 0.1 0.1 0.9 0.9 0.9 0.1 -0.003",  # self-intersecting and clipped
        "1 0.1 0.1 0.2 0.2 0.3 0.3",  # zero area
        f"1 {SQUARE}", f"1 {SQUARE}",  # duplicate
        "1 0.1 0.1 0.3 x 0.3 0.3", "7 0.1 0.1 0.3 0.1 0.3 0.3", "1 nan 0.1 0.3 0.1 0.3 0.3", "1 0.1 0.1 0.3",  # unparsable
        f"0 {_kpts('0.2 0.2 3', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')} 0.1 0.1 0.2 0.2 0.3 0.3",  # salvaged, then zero area
    ],
    "segment": [
        "1 -0.004 0.1 0.5 0.1 0.5 1.006 0.1 0.5", f"1 {BOWTIE}", "1 1.004 0.1 0.1 0.9 0.9 0.9 0.1 -0.003",
        "1 0.1 0.1 0.2 0.2 0.3 0.3", f"0 {SQUARE}", f"0 {SQUARE}", f"0 {BOWTIE}", f"0 {BOWTIE} ",  # repaired twins
        "0 -0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5", "0 0.0 0.1 0.5 0.1 0.5 0.5 0.1 0.5",  # -0.0 is not 0.0 to row_key
        "1 0.1 0.1 0.3 x 0.3 0.3", "1 0.1 0.1 0.3 0.1 0.3",
    ],
    "pose": [
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 7', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 2', '0.3 1.5 1', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 0', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 0', '0.25 0.25 1')}",
        f"0 0.5 0.5 1.004 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '1.003 0.25 1')}",
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",
        f"0 0.5 0.5 0.0 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",  # zero area
        f"0 0.5 0.5 0.4 0.4 {_kpts('0.2 0.2 2', '0.3 0.3 2')}",  # wrong count
        f"0 0.5 0.5 0.4 1.5 {_kpts('0.2 0.2 9', '0.3 0.3 2', '0.2 0.3 2', '0.3 0.2 2', '0.25 0.25 1')}",  # salvage fails
    ],
}


def _damage(rng: np.random.Generator, lines: list[str]) -> list[str]:
    """Seeded damage on converted rows: a value nudged out, a token broken, a row repeated, CRLF kept by splitlines."""
    out = []
    for line in lines:
        tokens = line.split()
        r = rng.random()
        if r < 0.15:
            tokens[int(rng.integers(1, len(tokens)))] = str(rng.choice(["1.004", "-0.005", "1.02", "-0.0"]))
        elif r < 0.2:
            tokens[int(rng.integers(0, len(tokens)))] = "abc"
        out.append(" ".join(tokens))
        if rng.random() < 0.1:
            out.append(out[-1])
    return out


def _damaged_dataset(synth: Path, root: Path, task: str) -> Path:
    ds = root / task
    anns = [synth / "annotations" / f"instances_{s}.json" for s in ("train", "val")]
    convert_coco(anns, ds, images_dir=synth / "images", task=task)
    data = yaml.safe_load((ds / "data.yaml").read_text())
    data["path"] = "."
    (ds / "data.yaml").write_text(dump_yaml(data))
    rng = np.random.default_rng(["multitask", "segment", "pose"].index(task))
    labels = sorted(ds.glob("labels/*/*.txt"))
    for i, label in enumerate(labels):
        lines = _damage(rng, label.read_text().splitlines()) + (PLANTED[task] if i % 2 == 0 else []) + [""]
        label.write_bytes(("\r\n" if i % 4 == 1 else "\n").join(lines).encode())
    shutil.copy(labels[0], labels[0].with_name("orphan.txt"))  # a label without an image
    return ds


def _outputs(ds: Path, out: Path, tmp: Path, *options: str) -> dict:
    result = runner.invoke(app, ["check", str(ds / "data.yaml"), "--fix", str(out), *options])
    assert "Traceback" not in result.output
    labels = {str(p.relative_to(out)): p.read_bytes().decode() for p in sorted(out.rglob("*.txt"))}
    return {
        "exit_code": result.exit_code,
        "output": result.output.replace(str(tmp), "<tmp>"),
        "fix_log": (out / "fix_log.json").read_text().replace(str(tmp), "<tmp>"),
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*")),
        "labels": labels,
    }


def test_fix_outputs_match_the_golden(synth_dir, tmp_path):
    got = {}
    for task in ("multitask", "segment", "pose"):
        ds = _damaged_dataset(synth_dir, tmp_path / "src", task)
        got[task] = _outputs(ds, tmp_path / "out" / task, tmp_path)
        got[f"{task}-json"] = _outputs(ds, tmp_path / "out" / f"{task}-json", tmp_path, "--format", "json")
    if os.environ.get("MTDATA_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    for key in golden:  # one layout at a time: a failure names it
        for part in golden[key]:
            assert got[key][part] == golden[key][part], (key, part)
    assert set(got) == set(golden)
