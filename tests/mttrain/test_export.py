"""ONNX, TorchScript and OpenVINO exports: named outputs, metadata, clear errors, and the same answers as the .pt.

Fast tests export the untrained ``tiny_model`` at 64 px. The slow ones train a small model once
(64 synthetic images, 96 px, 25 epochs: it then finds ~3 objects and ~9 visible keypoints per
image at conf 0.25) and compare what .pt, .onnx, .torchscript and the OpenVINO folder predict and score.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mttrain.cli import app
from mttrain.export import (
    OUTPUT_NAMES,
    ExportError,
    ExportOptions,
    check_export,
    check_input_size,
    export_model,
    export_weights,
    read_metadata,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")  # still the TorchScript format
runner = CliRunner()
FORMATS = ("onnx", "torchscript", "openvino")
CONF = 0.25
MARGIN = 0.03  # detections this close to CONF may fall on either side between runtimes; they are not compared
KPT_NAMES = {0: ["head", "left_hand", "right_hand", "left_foot", "right_foot"]}


def labelled(model):
    """A copy of the tiny model with everything an export's metadata carries."""
    model = copy.deepcopy(model)
    model.names = {0: "figure", 1: "disc"}
    model.kpt_names = dict(KPT_NAMES)
    model.flip_idx = [0, 2, 1, 4, 3]
    model.skeleton = [[0, 1], [0, 2], [0, 3], [0, 4]]
    model.kpt_sigmas = [0.026, 0.079, 0.079, 0.089, 0.089]
    return model


def save_pt(model, path: Path) -> Path:
    torch.save({"model": model}, path)
    return path


def run_export(file: Path, images: torch.Tensor) -> list[np.ndarray]:
    """The raw (detections, protos) of an export, run by its own runtime (OpenVINO in FP32, as mttrain runs it)."""
    if file.is_dir():
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(next(file.glob("*.xml")))), "CPU",
                                      {"INFERENCE_PRECISION_HINT": ov.Type.f32})
        return list(compiled(images.numpy()).values())
    if file.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        return session.run(None, {"images": images.numpy()})
    return [t.numpy() for t in torch.jit.load(str(file))(images)]


def reference(model, images: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        (y, protos), _ = copy.deepcopy(model).eval()(images)
    return [y.numpy(), protos.numpy()]


@pytest.fixture(scope="module")
def tiny_exports(tiny_model, tmp_path_factory):
    """{(format, dynamic): file} for the labelled tiny model at 64 px."""
    model, out = labelled(tiny_model), tmp_path_factory.mktemp("tiny-exports")
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": "_openvino_model"}
    return {
        (fmt, dynamic): export_model(model, out / f"{'dyn' if dynamic else 'static'}{suffix[fmt]}",
                                     ExportOptions(fmt, imgsz=64, dynamic=dynamic))
        for fmt in FORMATS for dynamic in (False, True)
    }


# -- options and errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(format="tflite"), "unknown export format 'tflite'"),
        (dict(imgsz=0), "imgsz must be a positive integer"),
        (dict(imgsz=(64, 64, 3)), "imgsz must be a positive integer"),
        (dict(batch=0), "batch must be at least 1"),
        (dict(format="torchscript", half=True), "needs a CUDA device"),
        (dict(format="torchscript", simplify=True), "--simplify applies to ONNX exports only"),
        (dict(format="torchscript", opset=17), "--opset applies to ONNX exports only"),
        (dict(opset=7), "opset 7 is out of range"),
        (dict(opset=99), "opset 99 is out of range"),
    ],
    ids=["format", "imgsz-zero", "imgsz-3d", "batch", "ts-half", "ts-simplify", "ts-opset", "opset-low", "opset-high"],
)
def test_options_refuse_what_cannot_be_exported(kwargs, message):
    with pytest.raises(ExportError, match=message):
        ExportOptions(**kwargs)


def test_simplify_runs_onnxslim_or_says_it_is_missing(tiny_model, tmp_path):
    if importlib.util.find_spec("onnxslim") is None:
        with pytest.raises(ExportError, match=r"needs onnxslim, which is not installed: pip install 'mt\[export\]'"):
            ExportOptions(simplify=True)
        return
    file = export_model(labelled(tiny_model), tmp_path / "slim.onnx", ExportOptions(imgsz=64, simplify=True))
    assert read_metadata(file)["args"]["simplify"] is True
    images = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(run_export(file, images)[0], reference(tiny_model, images)[0], atol=1e-3)


def test_imgsz_must_be_a_multiple_of_the_stride(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="not a multiple of the model stride 32: use 96x96"):
        export_model(labelled(tiny_model), tmp_path / "x.onnx", ExportOptions(imgsz=100))
    assert not list(tmp_path.iterdir()), "a refused export leaves nothing behind"


def test_only_multitask_models_are_exported(tmp_path):
    from mttrain._ultralytics import DetectionModel

    detect = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    with pytest.raises(ExportError, match="not a multitask model"):
        export_weights(save_pt(detect, tmp_path / "detect.pt"))


# -- the exported files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trips(fmt, tiny_exports, tiny_model):
    meta = read_metadata(tiny_exports[(fmt, False)])
    model = labelled(tiny_model)
    expected = {
        "task": "multitask", "names": model.names, "kpt_shape": [5, 3], "kpt_names": KPT_NAMES,
        "flip_idx": model.flip_idx, "skeleton": model.skeleton, "kpt_sigmas": model.kpt_sigmas,
        "stride": 32, "imgsz": [64, 64], "batch": 1, "nm": 32,
    }
    assert {k: meta[k] for k in expected} == expected
    assert meta["mt_version"] and meta["version"] and set(meta["outputs"]) == set(OUTPUT_NAMES)
    assert meta["args"]["format"] == fmt and meta["args"]["dynamic"] is False
    assert check_export(tiny_exports[(fmt, False)]) == meta


def test_onnx_inputs_and_outputs_are_named_and_documented(tiny_exports):
    import onnx

    graph = onnx.load(str(tiny_exports[("onnx", True)])).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert "mask coefficients" in graph.output[0].doc_string and "prototypes" in graph.output[1].doc_string
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    # 4 box + 2 classes + 32 mask coefficients + 5 keypoints * 3
    assert dims == {"detections": ["batch", 53, "anchors"], "protos": ["batch", 32, "proto_height", "proto_width"]}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 128)], ids=["export-size", "batch3-96x128"])
def test_dynamic_export_takes_any_batch_and_size(fmt, shape, tiny_exports, tiny_model):
    images = torch.rand(*shape)
    got, want = run_export(tiny_exports[(fmt, True)], images), reference(tiny_model, images)
    assert [g.shape for g in got] == [w.shape for w in want]
    anchors = sum((shape[2] // s) * (shape[3] // s) for s in (8, 16, 32))
    assert got[0].shape == (shape[0], 53, anchors) and got[1].shape == (shape[0], 32, shape[2] // 4, shape[3] // 4)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=2e-3, rtol=1e-4)  # pixel coordinates up to 128: float32 rounding


@pytest.mark.parametrize("fmt", FORMATS)
def test_static_export_refuses_another_input_size(fmt, tiny_exports):
    file = tiny_exports[(fmt, False)]
    meta = read_metadata(file)
    check_input_size(meta, 64, file)
    check_input_size(meta, None, file)
    with pytest.raises(ExportError, match=r"static export takes 64x64 input only; asked for 96x96: use imgsz 64"):
        check_input_size(meta, 96, file)
    check_input_size(read_metadata(tiny_exports[(fmt, True)]), 96, file)  # dynamic: fine


def test_opset_is_honoured(tiny_model, tmp_path):
    import onnx

    file = export_model(labelled(tiny_model), tmp_path / "old.onnx", ExportOptions(imgsz=64, opset=11))
    assert [o.version for o in onnx.load(str(file)).opset_import if o.domain in ("", "ai.onnx")] == [11]
    images = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(run_export(file, images)[0], reference(tiny_model, images)[0], atol=2e-3)


def test_python_api_exports_beside_the_checkpoint_and_loads_the_export(tiny_model, tmp_path):
    from mttrain.model import MultiTaskYOLO

    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    file = MultiTaskYOLO(pt).export(format="torchscript", imgsz=64)
    assert file == tmp_path / "best.torchscript"
    exported = MultiTaskYOLO(file)
    assert exported.keypoint_classes == [0] and exported.export_metadata["kpt_shape"] == [5, 3]
    with pytest.raises(ExportError, match="only a PyTorch multitask model"):
        exported.export(format="onnx")
    with pytest.raises(ExportError, match="static export takes 64x64 input only"):
        exported.predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=128)


def test_half_onnx_stores_fp16_weights_and_keeps_fp32_io(tiny_model, tmp_path):
    import onnx

    file = export_model(labelled(tiny_model), tmp_path / "half.onnx", ExportOptions(imgsz=64, half=True))
    proto = onnx.load(str(file))
    assert {i.data_type for i in proto.graph.initializer if len(i.dims) == 4} == {onnx.TensorProto.FLOAT16}
    assert {v.type.tensor_type.elem_type for v in [*proto.graph.input, *proto.graph.output]} == {onnx.TensorProto.FLOAT}
    images = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(run_export(file, images)[0][:, :4], reference(tiny_model, images)[0][:, :4], atol=0.5)


# -- running exports: errors ----------------------------------------------------------------------------------------

def corrupt(tmp_path, tiny_exports, name):
    if name == "garbage.onnx":
        (tmp_path / name).write_bytes(b"not a protobuf \xff\xfe" * 10)
    elif name == "truncated.onnx":
        (tmp_path / name).write_bytes(tiny_exports[("onnx", False)].read_bytes()[:5000])
    elif name == "garbage.torchscript":
        (tmp_path / name).write_text("hello")
    elif name == "segment.onnx":  # an ONNX file without multitask metadata, as another tool writes one
        import onnx

        proto = onnx.load(str(tiny_exports[("onnx", False)]))
        for entry in proto.metadata_props:
            if entry.key == "task":
                entry.value = "segment"
        onnx.save(proto, str(tmp_path / name))
    return tmp_path / name


@pytest.mark.parametrize(
    "name, message",
    [
        ("garbage.onnx", "not a readable onnx file"),
        ("truncated.onnx", "not a readable onnx file"),
        ("garbage.torchscript", "not a readable torchscript file"),
        ("segment.onnx", "not a multitask export (task 'segment')"),
    ],
)
def test_wrong_files_are_refused_in_one_line(name, message, tiny_exports, tmp_path):
    file = corrupt(tmp_path, tiny_exports, name)
    (tmp_path / "img.jpg").write_bytes(b"")
    result = runner.invoke(app, ["predict", str(file), str(tmp_path / "img.jpg")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_onnxruntime_is_named_and_never_installed(tiny_exports, monkeypatch):
    from mttrain.model import MultiTaskYOLO

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ExportError, match=r"needs onnxruntime, which is not installed: pip install 'mt\[export\]'"):
        MultiTaskYOLO(tiny_exports[("onnx", False)])


def test_cli_export_writes_beside_the_weights(tiny_model, tmp_path):
    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    result = runner.invoke(app, ["export", str(pt), "--imgsz", "64", "--dynamic", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "best.onnx" in result.output and "detections, protos" in result.output
    meta = read_metadata(tmp_path / "best.onnx")
    assert meta["args"]["dynamic"] is True and meta["batch"] == 2 and meta["kpt_names"] == KPT_NAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.onnx", "best.pt"]  # no temporary file left


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "{dir}/nope.pt"], "weights file not found"),
        (["export", "{dir}/data.yaml"], "expected a trained .pt to export"),
        (["export", "{dir}/best.pt", "--format", "coreml"], "unknown export format 'coreml'"),
        (["export", "{dir}/best.pt", "--imgsz", "100"], "use 96x96"),
        (["export", "{dir}/best.pt", "-f", "torchscript", "--half"], "needs a CUDA device"),
        (["export", "{dir}/garbage.pt"], "not a PyTorch checkpoint"),
    ],
    ids=["missing", "not-pt", "format", "imgsz", "ts-half", "garbage"],
)
def test_cli_export_errors_are_one_line_exit_2(args, message, tiny_model, tmp_path):
    save_pt(labelled(tiny_model), tmp_path / "best.pt")
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    result = runner.invoke(app, [a.replace("{dir}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


# -- the same answers as the .pt (slow: trains a small model) -------------------------------------------------------

def train_small(tmp_path_factory, cfg: str) -> tuple[Path, Path, list[Path]]:
    """(best.pt, data.yaml, val images) of a small ``cfg`` model trained 25 epochs at 96 px: enough that it
    finds boxes, masks and keypoints for the parity tests."""
    from mttrain.model import MultiTaskYOLO
    from tests.mttrain.conftest import make_multitask_dataset

    out = tmp_path_factory.mktemp(f"mt-export-{cfg.split('-')[0]}")
    data = make_multitask_dataset(out, images=64, size=96, seed=1)
    MultiTaskYOLO(cfg).train(
        data=str(data), epochs=25, imgsz=96, batch=8, workers=0, seed=0, deterministic=True, optimizer="AdamW",
        lr0=0.005, warmup_epochs=0, mosaic=0.0, plots=False, verbose=False, project=str(out / "runs"), name="fit",
    )
    images = sorted((out / "coco" / "images" / "val").glob("*.jpg"))
    return out / "runs" / "fit" / "weights" / "best.pt", data, images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small yolov8n-multitask: :func:`train_small`."""
    return train_small(tmp_path_factory, "yolov8n-multitask.yaml")


def match(a, b) -> list[tuple[int, int]]:
    """Pairs (i, j) of same-class detections of two Results whose boxes agree within 1 px; every detection
    clearly above CONF on either side must find its pair."""
    pairs, used = [], set()
    for i in range(len(a.boxes)):
        d = (a.boxes.xyxy[i] - b.boxes.xyxy).abs().amax(1) if len(b.boxes) else torch.zeros(0)
        candidates = [j for j in torch.argsort(d).tolist()
                      if d[j] <= 1.0 and j not in used and b.boxes.cls[j] == a.boxes.cls[i]]
        if candidates:
            pairs.append((i, candidates[0]))
            used.add(candidates[0])
        else:
            assert a.boxes.conf[i] < CONF + MARGIN, f"detection {i} ({a.boxes.data[i].tolist()}) has no pair"
    unpaired = set(range(len(b.boxes))) - used
    assert all(b.boxes.conf[j] < CONF + MARGIN for j in unpaired), "an export found a detection the .pt did not"
    return pairs


def mask_iou(m1: torch.Tensor, m2: torch.Tensor) -> float:
    union = (m1.bool() | m2.bool()).sum()
    return float((m1.bool() & m2.bool()).sum() / union) if union else 1.0


@pytest.mark.slow
@pytest.mark.parametrize("fmt, dynamic", [("onnx", False), ("torchscript", False), ("onnx", True), ("openvino", False),
                                          ("openvino", True)],
                         ids=["onnx", "torchscript", "onnx-dynamic", "openvino", "openvino-dynamic"])
def test_same_image_same_detections(fmt, dynamic, trained):
    from mttrain.model import MultiTaskYOLO

    pt, _, images = trained
    file = export_weights(pt, ExportOptions(fmt, imgsz=96, dynamic=dynamic))
    args = dict(imgsz=96, conf=CONF, verbose=False)
    expected, got = MultiTaskYOLO(pt).predict(images, **args), MultiTaskYOLO(file).predict(images, **args)
    compared = visible = 0
    for a, b in zip(expected, got):
        for i, j in match(a, b):
            compared += 1
            assert float((a.boxes.xyxy[i] - b.boxes.xyxy[j]).abs().max()) <= 1.0
            assert mask_iou(a.masks.data[i], b.masks.data[j]) >= 0.98
            conf_a, conf_b = a.keypoints.conf[i], b.keypoints.conf[j]
            both = (conf_a >= 0.5) & (conf_b >= 0.5)
            visible += int(both.sum())
            if both.any():
                assert float((a.keypoints.xy[i][both] - b.keypoints.xy[j][both]).abs().max()) <= 1.0
            flipped = ((conf_a >= 0.5) != (conf_b >= 0.5)) & ((conf_a - 0.5).abs() > 0.02)
            assert not flipped.any(), "a keypoint clearly visible on one side is hidden on the other"
    assert compared >= 10 and visible >= 20, (compared, visible)  # the model really found objects and keypoints


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_val_metrics_equal_the_pt(fmt, trained, tmp_path):
    from mttrain.model import MultiTaskYOLO

    pt, data, _ = trained
    file = export_weights(pt, ExportOptions(fmt, imgsz=96))
    args = dict(data=str(data), imgsz=96, batch=4, plots=False, verbose=False, project=str(tmp_path), exist_ok=True)
    # A static export letterboxes every image to the full square, so the .pt is scored without rect batches too.
    want = MultiTaskYOLO(pt).val(name="pt", rect=False, **args).table()
    got = MultiTaskYOLO(file).val(name=fmt, **args).table()
    assert want["box"]["map50"] > 0.2 and want["pose"]["map50"] > 0.2, want
    for task in ("box", "mask", "pose"):
        for key, value in want[task].items():
            assert got[task][key] == pytest.approx(value, abs=0.005), (task, key)


@pytest.mark.slow
def test_predict_and_val_commands_run_an_onnx_file(trained, tmp_path):
    pt, data, images = trained
    file = export_weights(pt, ExportOptions("onnx", imgsz=96, batch=2))  # static batch 2 takes single images too
    result = runner.invoke(app, ["predict", str(file), str(images[0].parent), "--save-txt", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    labels = (tmp_path / "predict" / "labels").glob("*.txt")
    rows = [line.split() for f in labels for line in f.read_text().splitlines()]
    figures = [r for r in rows if r[0] == "0"]
    assert figures and all(len(r) - 1 - 15 >= 6 for r in figures), "keypoint classes come from the file's metadata"
    assert any(r[3] == "2" for r in figures), "some keypoints are visible"

    result = runner.invoke(app, ["val", str(file), "--project", str(tmp_path)])
    assert result.exit_code == 2 and "needs data=" in result.output
    result = runner.invoke(app, ["val", str(file), "--data", str(data), "--imgsz", "128", "--project", str(tmp_path)])
    assert result.exit_code == 2 and "static export takes 96x96 input only" in result.output
    result = runner.invoke(app, ["val", str(file), "--data", str(data), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Pose" in result.output and (tmp_path / "val" / "metrics.json").is_file()


@pytest.mark.slow
def test_dynamic_exports_predict_other_sizes_and_batches_like_the_pt(trained):
    from mttrain.model import MultiTaskYOLO

    pt, _, images = trained
    args = dict(imgsz=128, batch=3, conf=CONF, verbose=False)  # exported at 96, batch 1
    expected = MultiTaskYOLO(pt).predict(images[:6], **args)
    for fmt in FORMATS:
        file = export_weights(pt, ExportOptions(fmt, imgsz=96, dynamic=True))
        got = MultiTaskYOLO(file).predict(images[:6], **args)
        assert sum(len(match(a, b)) for a, b in zip(expected, got)) >= 3, fmt


@pytest.mark.slow
def test_predict_and_val_commands_run_an_openvino_folder(trained, tmp_path):
    pt, data, images = trained
    result = runner.invoke(app, ["export", str(pt), "--format", "openvino", "--imgsz", "96"])
    assert result.exit_code == 0, result.output
    folder = pt.parent / "best_openvino_model"
    result = runner.invoke(app, ["predict", str(folder), str(images[0].parent), "--save-txt", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for f in (tmp_path / "predict" / "labels").glob("*.txt") for line in f.read_text().splitlines()]
    figures = [r for r in rows if r[0] == "0"]
    assert figures and any(r[3] == "2" for r in figures), "keypoint classes come from metadata.yaml"
    result = runner.invoke(app, ["val", str(folder), "--data", str(data), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Pose" in result.output and (tmp_path / "val" / "metrics.json").is_file()


def test_export_defaults_to_the_size_the_model_was_trained_at(trained_run, tmp_path):
    """Trained at 64: `mttrain export best.pt` and `.export()` write a 64x64 model (ultralytics' own default),
    not 640x640, which would disagree with the .pt on every detection."""
    import shutil

    from mttrain import MultiTaskYOLO

    pt = Path(shutil.copy(trained_run["best"], tmp_path / "best.pt"))
    result = runner.invoke(app, ["export", str(pt)])
    assert result.exit_code == 0, result.output
    assert read_metadata(pt.with_suffix(".onnx"))["imgsz"] == [64, 64]
    assert "(1, 3, 64, 64)" in result.output
    file = MultiTaskYOLO(pt).export(format="torchscript")
    assert read_metadata(file)["imgsz"] == [64, 64]
    assert read_metadata(MultiTaskYOLO(pt).export(imgsz=96))["imgsz"] == [96, 96]  # an explicit size still wins


def test_python_export_refuses_arguments_it_does_not_take(tiny_model, tmp_path):
    from mttrain import MultiTaskYOLO
    from mttrain.errors import ArgumentError

    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    with pytest.raises(ArgumentError, match="export\\(\\) does not take int8"):
        MultiTaskYOLO(pt).export(int8=True)


def test_an_exports_skeleton_is_registered_for_its_plots(tiny_exports, monkeypatch):
    """ONNX metadata holds the skeleton as text (AutoBackend parses only its own keys)."""
    import mttrain._ultralytics as mu
    from mttrain import MultiTaskYOLO

    monkeypatch.setattr(mu, "_SKELETONS", {})
    MultiTaskYOLO(tiny_exports["onnx", False]).predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, verbose=False)
    assert mu._SKELETONS == {5: [[0, 1], [0, 2], [0, 3], [0, 4]]}


# -- OpenVINO: a folder of .xml, .bin and metadata.yaml ------------------------------------------------------------

def test_openvino_export_is_a_folder_beside_the_weights_and_replaces_an_earlier_one(tiny_model, tmp_path):
    import os

    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    ci = os.environ.get("CI")
    result = runner.invoke(app, ["export", str(pt), "--format", "openvino", "--imgsz", "64"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "best_openvino_model"
    assert "best_openvino_model" in result.output and "openvino, input images (1, 3, 64, 64)" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["best.bin", "best.xml", "metadata.yaml"]
    assert os.environ.get("CI") == ci, "the telemetry switch is put back"
    first = (folder / "best.xml").stat().st_mtime_ns
    result = runner.invoke(app, ["export", str(pt), "format=openvino", "imgsz=64", "dynamic=True"])
    assert result.exit_code == 0, result.output
    assert read_metadata(folder)["args"]["dynamic"] is True and (folder / "best.xml").stat().st_mtime_ns != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best_openvino_model"]  # no temporary folder


def test_openvino_graph_names_its_input_and_outputs(tiny_exports):
    import openvino as ov

    model = ov.Core().read_model(str(tiny_exports["openvino", False] / "static.xml"))
    assert model.inputs[0].get_names() == {"images"}
    assert [o.get_names() for o in model.outputs] == [{"detections"}, {"protos"}]
    assert [list(o.get_partial_shape().to_shape()) for o in model.outputs] == [[1, 53, 84], [1, 32, 16, 16]]


def test_half_openvino_stores_fp16_weights_and_keeps_fp32_io(tiny_model, tmp_path):
    import openvino as ov

    folder = export_model(labelled(tiny_model), tmp_path / "half_openvino_model",
                          ExportOptions("openvino", imgsz=64, half=True))
    model = ov.Core().read_model(str(folder / "half.xml"))
    constants = {op.get_element_type() for op in model.get_ops() if op.get_type_name() == "Constant"
                 and op.get_output_partial_shape(0).rank.get_length() == 4}
    assert constants == {ov.Type.f16}
    assert model.inputs[0].get_element_type() == ov.Type.f32
    assert {o.get_element_type() for o in model.outputs} == {ov.Type.f32}
    assert read_metadata(folder)["args"]["half"] is True
    images = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(run_export(folder, images)[0][:, :4], reference(tiny_model, images)[0][:, :4], atol=0.5)


def test_openvino_runs_in_fp32_unless_fp16_is_asked(tiny_exports, tmp_path):
    """OpenVINO's CPU plugin picks bf16 on CPUs with AVX512-BF16/AMX; mttrain compiles FP32 for parity."""
    import openvino as ov

    from mttrain import MultiTaskYOLO

    image = np.zeros((64, 64, 3), np.uint8)
    model = MultiTaskYOLO(tiny_exports["openvino", False])
    model.predict(image, imgsz=64, verbose=False, project=str(tmp_path))
    compiled = model.predictor.model.backend.ov_compiled_model
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    model = MultiTaskYOLO(tiny_exports["openvino", False])
    model.predict(image, imgsz=64, quantize=16, verbose=False, project=str(tmp_path))  # ultralytics 8.4's half
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")  # what this CPU picks by itself
    assert model.predictor.model.backend.ov_compiled_model.get_property("INFERENCE_PRECISION_HINT") == default


def test_python_api_exports_openvino_and_predicts_with_it(tiny_model, tmp_path):
    from mttrain.model import MultiTaskYOLO

    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    folder = MultiTaskYOLO(pt).export(format="openvino", imgsz=64)
    assert folder == tmp_path / "best_openvino_model"
    exported = MultiTaskYOLO(folder)
    assert exported.keypoint_classes == [0] and exported.export_metadata["kpt_names"] == KPT_NAMES
    (result,) = exported.predict(np.full((64, 64, 3), 100, np.uint8), imgsz=64, conf=0.0, verbose=False,
                                 project=str(tmp_path))
    assert result.keypoints.data.shape[1:] == (5, 3) and result.masks is not None
    with pytest.raises(ExportError, match="static export takes 64x64 input only"):
        exported.predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=128)


def spoil_openvino(folder: Path, tmp_path: Path, case: str) -> Path:
    import shutil

    out = tmp_path / "bad_openvino_model"
    shutil.copytree(folder, out)
    xml = out / "static.xml"
    if case == "no-xml":
        xml.unlink()
    elif case == "two-xml":
        shutil.copy(xml, out / "other.xml")
    elif case == "no-bin":
        xml.with_suffix(".bin").unlink()
    elif case == "no-metadata":
        (out / "metadata.yaml").unlink()
    elif case == "garbage-xml":
        xml.write_text("<net><oops")
    elif case == "truncated-bin":
        xml.with_suffix(".bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:1000])
    elif case == "segment-metadata":
        (out / "metadata.yaml").write_text("task: segment\nnames: {0: a}\n")
    elif case == "a-file":
        shutil.rmtree(out)
        out.write_text("x")
    elif case == "missing":
        shutil.rmtree(out)
    return out


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-xml", "expected one .xml model in the OpenVINO folder; found none"),
        ("two-xml", "found 2 (other.xml, static.xml)"),
        ("no-bin", "static.bin, the weights of static.xml, is missing"),
        ("no-metadata", "not a multitask export (no metadata.yaml in the folder)"),
        ("garbage-xml", "not a readable OpenVINO model"),
        ("truncated-bin", "not a readable OpenVINO model"),
        ("segment-metadata", "not a multitask export (task 'segment')"),
        ("a-file", "expected an OpenVINO model folder"),
        ("missing", "not found"),
    ],
)
def test_malformed_openvino_folders_are_refused_in_one_line(case, message, tiny_exports, tiny_data, tmp_path):
    folder = spoil_openvino(tiny_exports["openvino", False], tmp_path, case)
    (tmp_path / "img.jpg").write_bytes(b"")
    for command in (["predict", str(folder), str(tmp_path / "img.jpg")], ["val", str(folder), "--data", str(tiny_data)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_missing_openvino_is_named_and_never_installed(tiny_exports, tiny_model, tmp_path, monkeypatch):
    from mttrain.model import MultiTaskYOLO

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ExportError, match=r"needs openvino, which is not installed: pip install 'mt\[export\]'"):
        MultiTaskYOLO(tiny_exports[("openvino", False)])
    pt = save_pt(labelled(tiny_model), tmp_path / "best.pt")
    result = runner.invoke(app, ["export", str(pt), "-f", "openvino"])
    assert result.exit_code == 2 and "OpenVINO export needs openvino, which is not installed" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_an_openvino_folder_tracks(tiny_exports, tmp_path):
    """Tracking runs on the same backend (ultralytics' trackers over MultiTaskYOLO results)."""
    pytest.importorskip("lap")  # declared in the train extra; test_no_installs covers its absence
    from mttrain import MultiTaskYOLO

    model = MultiTaskYOLO(tiny_exports["openvino", False])
    frame = np.full((64, 64, 3), 127, np.uint8)
    for _ in range(2):
        (result,) = model.track(frame, imgsz=64, persist=True, verbose=False, project=str(tmp_path))
    assert result.boxes is not None and model.predictor.model.format == "openvino"
    if len(result.boxes):
        assert result.keypoints.data.shape[1:] == (5, 3)


# -- end-to-end (yolo26, nms=False): the one-to-one branch, no NMS ------------------------------------------------

def distinct_scores(model):
    """An untrained head scores every anchor alike (its class bias), so any top-k order is right; random class
    weights (seeded) give each anchor its own score, and the comparison of branches and runtimes a meaning."""
    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    head = model.model[-1]
    for branch in (head.cv3, head.one2one_cv3):
        for p in branch.parameters():
            p.data = torch.randn(p.shape, generator=generator) * 0.5
    return model


def assert_same_rows(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    """(k, C) rows equal as a set, within ``atol``: rows whose scores tie may come in either order, and rows tied
    with the k-th score may be either of the tied ones (they are left out)."""
    unused = list(range(len(want)))
    score = got[:, 4]
    clear = score > score.min() + 1e-4
    compared = got[clear]
    assert len(compared) >= len(got) // 2, "most rows compared"
    for row in compared:
        distance = np.abs(want[unused] - row).max(1)
        best = int(distance.argmin())
        assert distance[best] <= atol, (row[:6], distance[best])
        unused.pop(best)


def fused_rows(model, images: torch.Tensor, end2end: bool) -> list[np.ndarray]:
    """What the .pt's fused model answers with the branch ``end2end`` selects."""
    fused = copy.deepcopy(model).float().eval()
    fused.end2end = end2end
    fused = fused.fuse(verbose=False)
    with torch.no_grad():
        (y, protos), _ = fused(images)
    return [y.numpy(), protos.numpy()]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_end2end_export_writes_one2one_rows_and_says_so(fmt, tiny_model26, tmp_path):
    model = distinct_scores(labelled(tiny_model26))
    file = export_model(model, tmp_path / f"e2e.{fmt}", ExportOptions(fmt, imgsz=64, nms=False))
    images = torch.rand(1, 3, 64, 64)
    detections, protos = run_export(file, images)
    assert detections.shape == (1, 84, 6 + 32 + 15) and protos.shape == (1, 32, 16, 16)  # k = min(300, 84 anchors)
    want = fused_rows(model, images, end2end=True)
    np.testing.assert_allclose(detections[..., 4], want[0][..., 4], atol=1e-4)  # the same top-k scores, in order
    assert_same_rows(detections[0], want[0][0], atol=1e-2)
    np.testing.assert_allclose(protos, want[1], atol=1e-3)
    meta = read_metadata(file)
    assert meta["end2end"] is True and meta["args"]["nms"] is False
    assert "max_det" in meta["outputs"]["detections"]


def test_end2end_onnx_names_its_outputs_and_predicts_through_the_api(tiny_model26, tmp_path):
    import onnx

    from mttrain.model import MultiTaskYOLO

    file = export_model(labelled(tiny_model26), tmp_path / "e2e.onnx", ExportOptions("onnx", imgsz=64, nms=False))
    graph = onnx.load(str(file)).graph
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert "x1, y1, x2, y2" in graph.output[0].doc_string
    yolo = MultiTaskYOLO(file)
    result = yolo.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, conf=0.0, save=False, verbose=False)[0]
    assert yolo.predictor.model.end2end  # AutoBackend read end2end from the metadata: no NMS after the graph
    assert result.keypoints.data.shape[1:] == (5, 3)


def test_yolo26_export_without_nms_false_keeps_the_one2many_rows(tiny_model26, tmp_path):
    model = distinct_scores(labelled(tiny_model26))
    file = export_model(model, tmp_path / "o2m.onnx", ExportOptions("onnx", imgsz=64))
    images = torch.rand(1, 3, 64, 64)
    detections, _ = run_export(file, images)
    assert detections.shape == (1, 4 + 2 + 32 + 15, 84) and read_metadata(file)["end2end"] is False
    np.testing.assert_allclose(detections, fused_rows(model, images, end2end=False)[0], atol=1e-2)


@pytest.mark.parametrize("model_fixture, kwargs, message", [
    ("tiny_model", dict(nms=False), "nms=False needs an end-to-end model"),
    ("tiny_model26", dict(nms=True), "nms=True (NMS inside the graph) is not supported"),
], ids=["v8-has-no-one2one", "nms-true"])
def test_end2end_export_errors(model_fixture, kwargs, message, request, tmp_path):
    model = labelled(request.getfixturevalue(model_fixture))
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        export_model(model, tmp_path / "x.onnx", ExportOptions("onnx", imgsz=64, **kwargs))


def test_cli_export_takes_nms_false(tiny_model26, tmp_path):
    pt = save_pt(labelled(tiny_model26), tmp_path / "best.pt")
    result = runner.invoke(app, ["export", str(pt), "--format", "onnx", "--imgsz", "64", "nms=False"])
    assert result.exit_code == 0, result.output
    assert read_metadata(tmp_path / "best.onnx")["end2end"] is True


@pytest.fixture(scope="module")
def trained26(tmp_path_factory):
    """A small yolo26n-multitask trained as ``trained`` (it then finds ~2 objects and ~4 visible keypoints per
    image at conf 0.25 with nms=False)."""
    return train_small(tmp_path_factory, "yolo26n-multitask.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_end2end_exports_detect_what_the_pt_detects_with_nms_false(fmt, trained26, tmp_path):
    """Boxes within 1 px, mask IoU >= 0.98, visible keypoints within 1 px, .pt (nms=False) against the export."""
    from mttrain.model import MultiTaskYOLO

    pt, data, images = trained26
    file = export_weights(pt, ExportOptions(fmt, imgsz=96, nms=False))
    assert read_metadata(file)["end2end"] is True
    args = dict(imgsz=96, conf=CONF, verbose=False, nms=False)
    expected, got = MultiTaskYOLO(pt).predict(images, **args), MultiTaskYOLO(file).predict(images, **args)
    compared = visible = 0
    for a, b in zip(expected, got):
        for i, j in match(a, b):
            compared += 1
            assert float((a.boxes.xyxy[i] - b.boxes.xyxy[j]).abs().max()) <= 1.0
            assert mask_iou(a.masks.data[i], b.masks.data[j]) >= 0.98
            both = (a.keypoints.conf[i] >= 0.5) & (b.keypoints.conf[j] >= 0.5)
            visible += int(both.sum())
            if both.any():
                assert float((a.keypoints.xy[i][both] - b.keypoints.xy[j][both]).abs().max()) <= 1.0
    assert compared >= 10 and visible >= 20, (compared, visible)
    vargs = dict(data=str(data), imgsz=96, batch=4, plots=False, verbose=False, project=str(tmp_path), exist_ok=True)
    want = MultiTaskYOLO(pt).val(name="pt", rect=False, nms=False, **vargs).table()
    score = MultiTaskYOLO(file).val(name=fmt, **vargs).table()  # the export has only the one-to-one branch
    for task in ("box", "mask", "pose"):
        for key, value in want[task].items():
            assert score[task][key] == pytest.approx(value, abs=0.005), (task, key)
