"""No .pt runs code: every checkpoint is loaded with weights_only=True and an allow-list (issue 16.1, 16.14).

Hostile files come from ``hostile_weights``: each would run a command, write a file or delete one under
ultralytics' own ``torch.load(weights_only=False)``; here they are refused with one line naming what they ask
for, through every command and function that loads weights, and nothing they ask for happens.
"""

from __future__ import annotations

import datetime
import os
import random
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mttrain._ultralytics import load_checkpoint_file
from mttrain.errors import WeightsError
from tests.mttrain.hostile_weights import (
    FORBIDDEN_CALLS,
    HOSTILE,
    Payload,
    fuzz_cases,
    harmed,
    prepare_victims,
    save_global_call,
    small_checkpoint,
)

runner = CliRunner()


def one_line_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture()
def victims(tmp_path):
    prepare_victims(tmp_path)
    return tmp_path


def trojan(real: Path, path: Path, tmp: Path) -> Path:
    """A real checkpoint that also carries a payload: what a tampered download looks like."""
    ckpt = torch.load(real, weights_only=False)
    (ckpt.get("ema") or ckpt["model"]).evil = Payload(os.system, (f"touch {tmp / 'pwned'}",))
    torch.save(ckpt, path)
    return path


# -- what must still load ---------------------------------------------------------------------------------------------

def test_checkpoints_of_ours_and_of_ultralytics_load(trained_run, tmp_path):
    from ultralytics import YOLO

    from mttrain import MultiTaskYOLO

    expected = {trained_run["best"]: "MultiTaskModel", trained_run["resumable"]: "MultiTaskModel"}
    for name, kind in (("yolov8n-seg", "SegmentationModel"), ("yolov8n-pose", "PoseModel"), ("yolov8n", "DetectionModel")):
        YOLO(f"{name}.yaml").save(tmp_path / f"{name}.pt")  # built here: nothing is downloaded
        expected[tmp_path / f"{name}.pt"] = kind
    for path, kind in expected.items():
        ckpt = load_checkpoint_file(path)
        assert type(ckpt.get("ema") or ckpt.get("model")).__name__ == kind, path
    assert ckpt.get("ema") is None and "train_args" not in ckpt  # Model.save() checkpoints, as ultralytics writes
    assert load_checkpoint_file(trained_run["resumable"])["optimizer"] is not None
    assert MultiTaskYOLO(trained_run["best"]).model.kpt_names  # and through the API


def test_ultralytics_checkpoints_transfer_into_a_multitask_model(tmp_path):
    from ultralytics import YOLO

    from mttrain.nn.model import MultiTaskModel
    from mttrain.transfer import load_weights

    YOLO("yolov8n-seg.yaml").save(tmp_path / "seg.pt")
    target = MultiTaskModel("yolov8n-multitask.yaml", nc=80, data_kpt_shape=(5, 3), verbose=False)
    assert load_weights(target, tmp_path / "seg.pt", verbose=False) > 300


# -- what must not ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_is_refused_naming_what_it_asks_for(kind, victims):
    path = victims / f"{kind}.pt"
    expected, was_harmed = HOSTILE[kind](path, victims)
    with pytest.raises(WeightsError) as error:
        load_checkpoint_file(path)
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert not was_harmed(victims) and not harmed(victims)


@pytest.mark.parametrize("name, expected, args", FORBIDDEN_CALLS, ids=[c[0] for c in FORBIDDEN_CALLS])
def test_any_forbidden_global_is_refused_alone_or_inside_a_real_checkpoint(name, expected, args, victims, trained_run):
    ckpt = torch.load(trained_run["best"], weights_only=False)
    for path, inside in ((victims / "alone.pt", None), (victims / "inside.pt", ckpt)):
        save_global_call(path, name, args(victims), inside)
        with pytest.raises(WeightsError, match=f"asks for the global {expected}"):
            load_checkpoint_file(path)
    assert not harmed(victims)


ENTRY_POINTS = {
    "predict": lambda evil, ctx: ("mttrain", ["predict", str(evil), str(ctx["image"])]),
    "val": lambda evil, ctx: ("mttrain", ["val", str(evil), "--data", str(ctx["data"])]),
    "export": lambda evil, ctx: ("mttrain", ["export", str(evil)]),
    "fit --weights": lambda evil, ctx: ("mttrain", ["fit", str(ctx["data"]), "--weights", str(evil), "--project",
                                                    str(ctx["tmp"] / "runs"), "--epochs", "1"]),
    "fit --model": lambda evil, ctx: ("mttrain", ["fit", str(ctx["data"]), "--model", str(evil), "--project",
                                                  str(ctx["tmp"] / "runs"), "--epochs", "1"]),
    "fit --resume": lambda evil, ctx: ("mttrain", ["fit", str(ctx["data"]), "--resume", "--project",
                                                   str(ctx["tmp"] / "resume-runs"), "--name", "train"]),
    "view --predictions": lambda evil, ctx: ("mtdata", ["view", str(ctx["data"]), "--predictions", str(evil),
                                                        "--no-launch", "--no-check"]),
}


@pytest.mark.parametrize("variant", ["payload", "trojan"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_command_that_loads_weights_refuses_in_one_line(entry, variant, victims, tiny_data, trained_run):
    from mtdata.cli import app as mtdata_app
    from mttrain.cli import app as mttrain_app

    evil = victims / "best.pt"
    if variant == "payload":
        HOSTILE["os_system"](evil, victims)
    else:
        trojan(trained_run["best"], evil, victims)
    last = victims / "resume-runs" / "train" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(evil.read_bytes())
    ctx = {"data": tiny_data, "tmp": victims, "image": next((tiny_data.parent / "images" / "val").iterdir())}
    tool, args = ENTRY_POINTS[entry](evil, ctx)
    result = runner.invoke(mttrain_app if tool == "mttrain" else mtdata_app, args)
    assert result.exit_code == 2, result.output
    assert "asks for the global posix.system" in one_line_error(result.output)
    assert not harmed(victims)


def test_every_python_function_that_loads_weights_refuses(victims, tiny_data, tiny_model):
    from mtdata.cli.view import load_model
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mttrain import MultiTaskYOLO
    from mttrain.export import export_weights
    from mttrain.transfer import load_weights, read_checkpoint_model

    evil = victims / "best.pt"
    HOSTILE["builtins_eval"](evil, victims)
    calls = [lambda: MultiTaskYOLO(evil), lambda: read_checkpoint_model(evil), lambda: export_weights(evil),
             lambda: load_weights(tiny_model, evil), lambda: load_model(evil, read_data_yaml(tiny_data)),
             lambda: MultiTaskYOLO(evil).train(resume=True)]
    for call in calls:
        with pytest.raises(WeightsError, match="asks for the global builtins.eval"):
            call()
    assert not harmed(victims)


def test_trust_weights_restores_full_unpickling(victims, trained_run, tiny_data):
    """--trust-weights is ultralytics' own loading: anything the file holds, code included, runs."""
    from mttrain import MultiTaskYOLO
    from mttrain.cli import app

    extra = victims / "extra.pt"
    ckpt = torch.load(trained_run["best"], weights_only=False)
    ckpt["made_on"] = datetime.date(2026, 1, 1)  # harmless, but off the allow-list
    torch.save(ckpt, extra)
    image = next((tiny_data.parent / "images" / "val").iterdir())
    refused = runner.invoke(app, ["predict", str(extra), str(image), "--project", str(victims / "p")])
    assert refused.exit_code == 2 and "datetime.date" in one_line_error(refused.output)
    trusted = runner.invoke(app, ["predict", str(extra), str(image), "--project", str(victims / "p"), "--trust-weights"])
    assert trusted.exit_code == 0, trusted.output
    assert MultiTaskYOLO(extra, trust_weights=True).model.kpt_names
    assert "DANGEROUS" in runner.invoke(app, ["predict", "--help"]).output

    evil = trojan(trained_run["best"], victims / "trojan.pt", victims)
    assert runner.invoke(app, ["export", str(evil), "--trust-weights"]).exit_code == 0
    assert (victims / "pwned").exists()  # what --help warns about


@pytest.mark.slow
def test_trust_reaches_child_processes_and_no_other_file(tmp_path, monkeypatch):
    """ultralytics' DDP launcher runs each GPU's trainer in a new Python that reloads the weights: the trust the
    user gave goes with it (through the environment), for that file only."""
    import subprocess
    import sys

    from mttrain.checkpoint_guard import TRUSTED_ENV, trust_weights_file

    monkeypatch.delenv(TRUSTED_ENV, raising=False)
    extra, other = tmp_path / "extra.pt", tmp_path / "other.pt"
    for path in (extra, other):
        ckpt = torch.load(small_checkpoint(tmp_path / "real.pt"), weights_only=False)
        ckpt["made_on"] = datetime.date(2026, 1, 1)  # harmless, but off the allow-list
        torch.save(ckpt, path)
    trust_weights_file(tmp_path / "." / "extra.pt")  # any spelling of the path
    trust_weights_file(extra)  # twice: listed once
    assert os.environ[TRUSTED_ENV].split(os.pathsep).count(os.path.realpath(extra)) == 1
    child = ("import sys; from mttrain.checkpoint_guard import load_checkpoint_file; from mttrain.errors import WeightsError\n"
             "for path in sys.argv[1:]:\n"
             "    try: print(path, type(load_checkpoint_file(path)['made_on']).__name__)\n"
             "    except WeightsError as e: print(path, 'refused', 'datetime.date' in str(e))\n")
    done = subprocess.run([sys.executable, "-c", child, str(extra), str(other)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"{extra} date", f"{other} refused True"]


def test_a_resumed_run_loads_and_continues(trained_run, tiny_data, tmp_path):
    """An interrupted run's last.pt (optimizer, epoch) resumes through the safe loader."""
    from mttrain.cli import app

    run = tmp_path / "runs" / "train"
    (run / "weights").mkdir(parents=True)
    ckpt = torch.load(trained_run["resumable"], weights_only=False)
    ckpt["train_args"].update(epochs=2, project=str(tmp_path / "runs"), save_dir=str(run), data=str(tiny_data))
    torch.save(ckpt, run / "weights" / "last.pt")
    result = runner.invoke(app, ["fit", str(tiny_data), "--resume", "--project", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert load_checkpoint_file(run / "weights" / "best.pt")["model"] is not None


# -- fuzz: random, truncated, text and damaged files --------------------------------------------------------------

def test_fuzzed_weights_files_are_one_clear_error_or_a_model(tmp_path):
    """Seeded and time-bounded: every file either loads as a model or is one WeightsError line."""
    real = small_checkpoint(tmp_path / "real.pt").read_bytes()
    rng, cases, outcomes, deadline = random.Random(16), 0, {}, time.monotonic() + 6
    for kind, data in fuzz_cases(rng, real):
        path = tmp_path / "fuzz.pt"
        path.write_bytes(data)
        try:
            ckpt = load_checkpoint_file(path)
            assert isinstance(ckpt, dict)
            outcome = "loaded"
        except WeightsError as e:
            assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
            outcome = "refused"
        outcomes[kind, outcome] = outcomes.get((kind, outcome), 0) + 1
        cases += 1
        if time.monotonic() > deadline and cases >= 40:
            break
    assert sum(v for (k, o), v in outcomes.items() if o == "refused") >= cases // 2, outcomes


@pytest.mark.parametrize("corrupt, expected", [
    (lambda layer: layer._buffers.__setitem__(type(layer), None), "has a name that is a type, not a string"),
    (lambda layer: layer._buffers.__setitem__("b", 1.5), "is a float, not a Tensor"),
    (lambda layer: layer._modules.__setitem__("m", "text"), "is a str, not a Module"),
    (lambda layer: setattr(layer, "_parameters", [1]), "_parameters is a list, not a dict"),
], ids=["buffer-name-not-text", "buffer-not-tensor", "child-not-module", "parameters-not-dict"])
def test_a_module_tree_unlike_torchs_is_one_error(corrupt, expected, tmp_path):
    """The unpickler fills a module's member dicts from the file; torch's walks then raise a TypeError deep inside
    (found by the fuzzer in CI: a buffer named by a type)."""
    ckpt = torch.load(small_checkpoint(tmp_path / "real.pt"), weights_only=False)
    corrupt(ckpt["model"].model[0])
    torch.save(ckpt, tmp_path / "odd.pt")
    with pytest.raises(WeightsError) as raised:
        load_checkpoint_file(tmp_path / "odd.pt")
    assert expected in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_fuzzed_weights_files_through_the_command_line(tmp_path, tiny_data):
    from mttrain.cli import app

    real = small_checkpoint(tmp_path / "real.pt").read_bytes()
    image = next((tiny_data.parent / "images" / "val").iterdir())
    cases = fuzz_cases(random.Random(14), real)
    seen = 0
    for kind, data in cases:
        if kind not in ("random", "text", "truncated", "random_pickle"):
            continue
        (tmp_path / "bad.pt").write_bytes(data)
        command = [["predict", str(tmp_path / "bad.pt"), str(image)], ["val", str(tmp_path / "bad.pt")],
                   ["export", str(tmp_path / "bad.pt")],
                   ["fit", str(tiny_data), "--weights", str(tmp_path / "bad.pt"), "--project", str(tmp_path / "runs")],
                   ][seen % 4]
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (kind, result.output)
        one_line_error(result.output)
        seen += 1
        if seen == 16:
            break


def test_a_segment_or_pose_checkpoint_is_not_run_as_a_multitask_model(tmp_path, tiny_data):
    from ultralytics import YOLO

    from mttrain.cli import app

    YOLO("yolov8n-seg.yaml").save(tmp_path / "seg.pt")
    image = next((tiny_data.parent / "images" / "val").iterdir())
    result = runner.invoke(app, ["predict", str(tmp_path / "seg.pt"), str(image)])
    assert result.exit_code == 2
    assert "not a multitask model (a segment checkpoint)" in one_line_error(result.output)
    assert "--weights" in result.output  # what it is good for
