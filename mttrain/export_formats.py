"""The files of an export, one writer a format (ONNX, TorchScript, OpenVINO), each written atomically.

The module handed to a writer is ready to trace (:func:`mttrain._ultralytics.export_ready`), ``im`` a (B, 3, H, W)
float32 example input, ``metadata`` what :func:`mttrain.export.build_metadata` made; :mod:`mttrain.export` says what
the files hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # export.py imports this module
    from mttrain.export import ExportOptions

INPUT_NAME = "images"
OUTPUT_NAMES = ("detections", "protos")


def write_onnx(module, im, file: Path, options: ExportOptions, metadata: dict[str, Any], shapes: list[tuple]) -> None:
    """Export to ONNX, then set the output shapes and docs, the metadata (``metadata_props``) and IR version <= 10;
    ``shapes``: each output's shape from a dry run."""
    import onnx
    import torch

    from mttrain._ultralytics import best_onnx_opset

    dynamic_axes = None
    if options.dynamic:
        dynamic_axes = {
            INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            "detections": {0: "batch"} if metadata["end2end"] else {0: "batch", 2: "anchors"},
            "protos": {0: "batch", 2: "proto_height", 3: "proto_width"},
        }
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) is deprecated in favour of dynamo, which needs
        # onnxscript; the tracer warns about Python ints it records (anchors are rebuilt when dynamic).
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(module, im, str(file), opset_version=options.opset or best_onnx_opset(),
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                          dynamo=False)
    proto = onnx.load(str(file))
    if options.simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    if options.half:
        from onnxruntime.transformers import float16

        proto = float16.convert_float_to_float16(proto, keep_io_types=True)
    proto.doc_string = metadata["description"]
    for output, shape in zip(proto.graph.output, shapes):
        output.doc_string = metadata["outputs"].get(output.name, "")
        for axis, dim in enumerate(output.type.tensor_type.shape.dim):
            if axis not in (dynamic_axes or {}).get(output.name, {}):  # channels: the tracer may leave them symbolic
                dim.dim_value = shape[axis]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)  # Python literals, as ultralytics writes and AutoBackend reads
    proto.ir_version = min(proto.ir_version, 10)  # onnxruntime releases lag the newest IR version
    onnx.save(proto, str(file))


def write_torchscript(module, im, file: Path, metadata: dict[str, Any]) -> None:
    """Trace and save, the metadata as JSON in ``extra/config.txt`` (where AutoBackend reads it)."""
    import torch

    with warnings.catch_warnings():  # torch 2.9+ calls torch.jit deprecated (FutureWarning); it still is the format
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        traced = torch.jit.trace(module, im, strict=False, check_trace=False)
    traced.save(str(file), _extra_files={"config.txt": json.dumps(metadata)})  # where AutoBackend looks


def write_openvino(module, im, xml: Path, options: ExportOptions, metadata: dict[str, Any]) -> None:
    """Trace, convert (as ultralytics' ``torch2openvino`` does) and save ``xml`` + ``.bin`` + ``metadata.yaml``."""
    import openvino as ov
    import torch
    import yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        with torch.no_grad():
            traced = torch.jit.trace(module, im, strict=False, check_trace=False)
        with _openvino_without_telemetry():
            model = ov.convert_model(traced, input=None if options.dynamic else [list(im.shape)], example_input=im)
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    for output, name in zip(model.outputs, OUTPUT_NAMES):
        output.get_tensor().set_names({name})
    ov.save_model(model, str(xml), compress_to_fp16=options.half)
    (xml.parent / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True))


@contextlib.contextmanager
def _openvino_without_telemetry() -> Iterator[None]:
    """OpenVINO's converter sends usage telemetry unless told not to (openvino_telemetry: consent is assumed when
    no consent file exists, and waits up to 3 s for the network). It declines in CI (``CI=true``): say so
    while converting, so an export never phones home nor writes a consent folder."""
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = previous


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Fill a temporary folder beside ``folder``, then swap it in: no half-written export is left, and an earlier
    export of the same name is replaced only once the new one is complete."""
    import shutil

    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if folder.exists():
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:
            os.replace(old, folder)  # keep the earlier export
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(file: Path) -> Iterator[Path]:
    """Write beside ``file`` under a temporary name and rename at the end: no half-written export is left."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
