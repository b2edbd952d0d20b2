"""Export a trained multitask model to ONNX, TorchScript or OpenVINO, and check an export before running it.

>>> export_weights("runs/multitask/train/weights/best.pt", ExportOptions("onnx", imgsz=640))  # doctest: +SKIP
PosixPath('runs/multitask/train/weights/best.onnx')

Every format takes one input and returns two outputs, in this order:

- ``images`` (B, 3, H, W) float32: RGB in [0, 1], letterboxed to H x W (as ultralytics feeds a model).
- ``detections`` (B, 4 + nc + nm + K*3, A) float32, for each of the A anchors: the box as center x,
  center y, width, height in input pixels; nc class probabilities; nm mask coefficients; K keypoints as
  x, y in input pixels and a visibility probability. With ``nms=False`` (an end-to-end yolo26 model, its
  one-to-one branch): (B, max_det, 6 + nm + K*3), the top max_det rows by score, each x1 y1 x2 y2, score,
  class, then its mask coefficients and keypoints; no NMS follows (metadata ``end2end: True``).
- ``protos`` (B, nm, H/4, W/4) float32: mask prototypes. A detection's mask is
  ``sigmoid(coefficients @ protos)`` cropped to its box (ultralytics' ``process_mask``).

One class-aware NMS over ``detections`` keeps each detection's own coefficients and keypoints:
``mttrain predict`` and ``mttrain val`` run exactly that postprocess on every format, through
ultralytics' AutoBackend (onnxruntime, ``torch.jit`` or OpenVINO).

An OpenVINO export is a folder ``STEM_openvino_model/`` holding ``STEM.xml`` (the graph), ``STEM.bin`` (the
weights) and ``metadata.yaml``, as ultralytics lays it out. It runs in FP32 (OpenVINO's CPU plugin would
otherwise pick bf16 on CPUs that have it, which moves boxes by pixels); ``quantize=16`` at predict or val time
(ultralytics 8.4's ``half``) lets OpenVINO choose its reduced precision.

Metadata travels where AutoBackend reads it (ONNX ``metadata_props`` as Python literals, TorchScript
``extra/config.txt`` as JSON, OpenVINO ``metadata.yaml``): ultralytics' keys (``task``, ``names``, ``stride``, ``imgsz``,
``batch``, ``args``...) plus ``kpt_shape``, ``kpt_names``, ``flip_idx``, ``skeleton``, ``kpt_sigmas``,
``nm``, ``outputs`` (the layout above) and ``mt_version``.

Why not ultralytics' ``Exporter``: in 8.4 it names two outputs only for task "segment", marks the
second output dynamic only for ``SegmentationModel``, writes ``kpt_shape`` only for task "pose", and
its ``check_requirements`` pip-installs what is missing (onnxslim). The model preparation it does
(fuse, export-mode head, split C2f) is reused through ``mttrain._ultralytics.export_ready``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mtdata.errors import MtdataError
from mttrain.export_formats import (  # noqa: F401  (INPUT_NAME, OUTPUT_NAMES: callers import them from here)
    INPUT_NAME,
    OUTPUT_NAMES,
    atomic_file,
    atomic_folder,
    write_onnx,
    write_openvino,
    write_torchscript,
)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": "_openvino_model"}  # suffix or name ending
EXPORT_SUFFIXES = (".onnx", ".torchscript")  # single-file exports; OpenVINO's is a folder named *_openvino_model
OUTPUT_DOCS = {
    "detections": "(batch, 4 + nc + nm + K*3, anchors): box center x, center y, width, height (input pixels); "
    "nc class probabilities; nm mask coefficients; K keypoints x, y (input pixels), visibility probability",
    "protos": "(batch, nm, height/4, width/4): mask prototypes; "
    "mask = sigmoid(coefficients @ protos), cropped to the box",
}
OUTPUT_DOCS_END2END = {
    "detections": "(batch, max_det, 6 + nm + K*3), no NMS needed (one-to-one branch, top max_det by score): "
    "x1, y1, x2, y2 (input pixels), score, class; nm mask coefficients; K keypoints x, y (input pixels), "
    "visibility probability (0 for classes without keypoints only after mttrain's postprocess)",
    "protos": OUTPUT_DOCS["protos"],
}
MIN_OPSET = 11  # the oldest opset tested here (ultralytics' own floor is 9, for nearest Resize)
INSTALL_HINT = "pip install 'mt[export]'"  # onnx, onnxruntime, onnxslim, openvino
# Metadata values that are Python literals in ONNX metadata_props (ultralytics writes str(value)).
LITERAL_KEYS = ("stride", "batch", "channels", "imgsz", "names", "args", "end2end", "kpt_shape", "kpt_names",
                "flip_idx", "skeleton", "kpt_sigmas", "nm", "outputs")


class ExportError(MtdataError):
    """A model cannot be exported as asked, or an exported file cannot be run as asked."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export: ``imgsz`` is one side or (height, width) in pixels, a multiple of the model stride.

    ``dynamic`` exports batch, height and width as free axes (``batch`` then only sizes the trace);
    ``half`` stores FP16 weights with FP32 inputs and outputs (ONNX and OpenVINO: FP16 TorchScript needs a GPU);
    ``simplify`` runs onnxslim; ``opset`` defaults to ultralytics' choice for the installed torch;
    ``nms=False`` exports an end-to-end model's one-to-one branch (``detections`` (B, max_det, 6 + nm + K*3), no NMS).
    """

    format: str = "onnx"
    imgsz: int | tuple[int, int] | None = None  # None: the size the model was trained at (export_model)
    half: bool = False
    dynamic: bool = False
    simplify: bool = False
    opset: int | None = None
    batch: int = 1
    nms: bool | None = None  # ultralytics' argument: False exports the one-to-one branch of an end-to-end model


    def __post_init__(self) -> None:
        fmt = str(self.format).lower()
        object.__setattr__(self, "format", fmt)
        if fmt not in FORMATS:
            raise ExportError(f"unknown export format {self.format!r}: expected one of {', '.join(FORMATS)}")
        if self.imgsz is not None:
            sides = (self.imgsz,) * 2 if isinstance(self.imgsz, int) else tuple(self.imgsz) if isinstance(
                self.imgsz, (list, tuple)) else ()
            if len(sides) == 1:
                sides = sides * 2
            if len(sides) != 2 or not all(type(s) is int and s > 0 for s in sides):
                raise ExportError(f"imgsz must be a positive integer or (height, width); found {self.imgsz!r}")
            object.__setattr__(self, "imgsz", sides)
        if self.batch < 1:
            raise ExportError(f"batch must be at least 1; found {self.batch}")
        if self.nms is True:
            raise ExportError("nms=True (NMS inside the graph) is not supported: export nms=False (an end-to-end "
                              "yolo26 model: no NMS needed) or leave nms unset (NMS runs after the graph)")
        if fmt != "onnx":
            for flag, value in (("simplify", self.simplify), ("opset", self.opset)):
                if value:
                    raise ExportError(f"--{flag} applies to ONNX exports only, not {fmt}")
            if fmt == "openvino":
                if importlib.util.find_spec("openvino") is None:
                    raise ExportError(f"OpenVINO export needs openvino, which is not installed: {INSTALL_HINT}")
                return
            if self.half:
                raise ExportError("--half TorchScript needs a CUDA device (FP16 convolutions on CPU); "
                                  "export ONNX with --half, or TorchScript in FP32")
            return
        missing = [pkg for pkg, needed in (("onnx", True), ("onnxslim", self.simplify), ("onnxruntime", self.half))
                   if needed and importlib.util.find_spec(pkg) is None]
        if missing:
            raise ExportError(f"ONNX export{' --simplify' * self.simplify}{' --half' * self.half} needs "
                              f"{', '.join(missing)}, which is not installed: {INSTALL_HINT}")
        if self.opset is not None:
            highest = max_opset()
            if not MIN_OPSET <= self.opset <= highest:
                raise ExportError(f"opset {self.opset} is out of range: this torch and onnx export opsets "
                                  f"{MIN_OPSET}..{highest}")


def max_opset() -> int:
    """The highest opset both torch's TorchScript-based ONNX exporter and the installed onnx write."""
    import onnx
    import torch.onnx

    constants = getattr(torch.onnx, "_constants", None)  # private; 20 for torch 2.1..2.14
    return min(getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20), onnx.defs.onnx_opset_version())


def export_weights(weights: str | Path, options: ExportOptions | None = None, trust_weights: bool = False) -> Path:
    """Export a trained multitask ``.pt`` beside it (``best.pt`` -> ``best.onnx``, ``best_openvino_model/``);
    returns that file or folder.

    ``trust_weights``: load the ``.pt`` with full unpickling (it may run code); see ``MultiTaskYOLO``.
    """
    weights, options = Path(weights), options or ExportOptions()
    if not weights.is_file():
        raise ExportError("weights file not found", file=weights)
    if weights.suffix != ".pt":
        found = weights.suffix or "suffix-less"
        raise ExportError(f"expected a trained .pt to export; found a {found} file", file=weights)
    from mttrain._ultralytics import load_checkpoint_file

    ckpt = load_checkpoint_file(weights, trust_weights=trust_weights)
    model = ckpt.get("ema") or ckpt.get("model")
    if options.imgsz is None and isinstance(ckpt.get("train_args"), dict) and ckpt["train_args"].get("imgsz"):
        options = dataclasses.replace(options, imgsz=ckpt["train_args"]["imgsz"])
    return export_model(model, export_path(weights, options.format), options, source=weights)


def export_path(source: str | Path, fmt: str) -> Path:
    """Where the ``fmt`` export of ``source`` goes: ``best.pt`` -> ``best.onnx``, ``best_openvino_model/``."""
    source = Path(source)
    if fmt == "openvino":
        return source.with_name(source.stem + FORMATS[fmt])
    return source.with_suffix(FORMATS[fmt])


def export_format(path: str | Path) -> str | None:
    """The export format a path names (by its suffix or, for OpenVINO, its folder name); None for others."""
    path = Path(path)
    if path.name.endswith(FORMATS["openvino"]):
        return "openvino"
    return {suffix: fmt for fmt, suffix in FORMATS.items()}.get(path.suffix)


def export_size(path: str | Path) -> int:
    """Bytes of an export (all the files of a folder export)."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def training_imgsz(model) -> int | list[int]:
    """The input size ``model`` was trained at (its ``args``, as ultralytics' export reads it); 640 when unknown."""
    args = getattr(model, "args", None)
    imgsz = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    return imgsz or 640


def export_model(model, file: str | Path, options: ExportOptions | None = None, source: str | Path = "") -> Path:
    """Export a :class:`mttrain.nn.model.MultiTaskModel` to ``file`` (a folder for OpenVINO; written atomically,
    replacing an earlier export); returns ``file``."""
    import torch

    from mttrain._ultralytics import export_ready

    options, where = options or ExportOptions(), source or file
    if options.imgsz is None:
        options = dataclasses.replace(options, imgsz=training_imgsz(model))
    if getattr(model, "task", None) != "multitask" or not hasattr(model, "kpt_shape"):
        task = getattr(model, "task", None) or type(model).__name__
        raise ExportError(f"not a multitask model (found {task}): train one with `mttrain fit`", file=where)
    stride = int(max(model.stride))
    h, w = options.imgsz
    if h % stride or w % stride:
        fix = "x".join(str(max(stride, round(s / stride) * stride)) for s in (h, w))
        raise ExportError(f"imgsz {h}x{w} is not a multiple of the model stride {stride}: use {fix}", file=where)
    end2end = options.nms is False
    if end2end and getattr(model.model[-1], "one2one_cv2", None) is None:
        raise ExportError("nms=False needs an end-to-end model (yolo26*-multitask.yaml); this one has no one-to-one "
                          "branch: leave nms unset", file=where)
    module = export_ready(model, options.format, options.dynamic, end2end=end2end)
    im = torch.zeros(options.batch, 3, h, w)
    with torch.no_grad():  # not inference_mode: the cached anchors are reused by the trace
        outputs = module(im)  # dry run: builds the anchors, and fails here rather than inside the exporter
    metadata = build_metadata(model, options, nm=int(outputs[1].shape[1]), source=source)
    file = Path(file)
    if options.format == "openvino":
        with atomic_folder(file) as tmp:
            stem = file.name[: -len(FORMATS["openvino"])] or "model"
            write_openvino(module, im, tmp / f"{stem}.xml", options, metadata)
        return file
    with atomic_file(file) as tmp:
        if options.format == "onnx":
            write_onnx(module, im, tmp, options, metadata, [tuple(t.shape) for t in outputs])
        else:
            write_torchscript(module, im, tmp, metadata)
    return file


def build_metadata(model, options: ExportOptions, nm: int, source: str | Path = "") -> dict[str, Any]:
    """The metadata written into an export: ultralytics' AutoBackend keys plus the multitask ones."""
    import ultralytics

    return {
        "description": f"mt multitask YOLO (boxes, masks, keypoints){f' from {Path(source).name}' if source else ''}",
        "author": "mt",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "version": ultralytics.__version__,
        "mt_version": package_version(),
        "license": "AGPL-3.0",
        "stride": int(max(model.stride)),
        "task": "multitask",
        "batch": options.batch,
        "imgsz": list(options.imgsz),
        "names": {int(k): str(v) for k, v in dict(model.names).items()},
        "channels": 3,
        "end2end": options.nms is False,
        "args": {"format": options.format, "batch": options.batch, "imgsz": list(options.imgsz), "half": options.half,
                 "dynamic": options.dynamic, "simplify": options.simplify, "opset": options.opset, "nms": options.nms},
        "kpt_shape": [int(x) for x in model.kpt_shape],
        "kpt_names": {int(k): list(v) for k, v in (getattr(model, "kpt_names", None) or {}).items()},
        "flip_idx": _plain(getattr(model, "flip_idx", None)),
        "skeleton": _plain(getattr(model, "skeleton", None)),
        "kpt_sigmas": _plain(getattr(model, "kpt_sigmas", None)),
        "nm": nm,
        "outputs": dict(OUTPUT_DOCS_END2END if options.nms is False else OUTPUT_DOCS),
    }


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mt")
    except PackageNotFoundError:  # running from a source tree without `pip install -e .`
        from mttrain import __version__

        return __version__


def read_metadata(file: str | Path) -> dict[str, Any]:
    """An export's metadata with values parsed (``names`` and ``kpt_names`` keyed by int); {} when it has none."""
    from mttrain._ultralytics import read_export_metadata

    raw = read_export_metadata(file)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in LITERAL_KEYS and isinstance(value, str):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as e:
                raise ExportError(f"metadata {key!r} is not readable: {value[:80]!r}", file=file) from e
        out[key] = value
    for key in ("names", "kpt_names"):
        if isinstance(out.get(key), dict):
            out[key] = {int(k): v for k, v in out[key].items()}
    return out


def check_export(file: str | Path) -> dict[str, Any]:
    """Refuse, with one clear error, an export that mttrain cannot run here; return its metadata.

    Checks the runtime is installed (onnxruntime for ``.onnx``, openvino for ``*_openvino_model/``: ultralytics
    would otherwise try to pip-install them), the file is what its name says, and it is a multitask export.
    """
    file = Path(file)
    fmt = export_format(file)
    if fmt is None:
        found = file.suffix or "no suffix"
        raise ExportError(f"expected an export ({', '.join(EXPORT_SUFFIXES)} or a *_openvino_model folder); found "
                          f"{found}", file=file)
    if fmt == "openvino":
        _check_openvino_folder(file)
    elif not file.is_file():
        raise ExportError("exported model not found", file=file)
    if fmt == "onnx":
        missing = [pkg for pkg in ("onnx", "onnxruntime") if importlib.util.find_spec(pkg) is None]
        if missing:
            raise ExportError(f"running an ONNX model needs {', '.join(missing)}, which is not installed: "
                              f"{INSTALL_HINT}", file=file)
    if not _readable(file):
        kind = "OpenVINO model" if fmt == "openvino" else f"{file.suffix[1:]} file"
        raise ExportError(f"not a readable {kind} (empty, truncated or another format): export it "
                          "again with `mttrain export`", file=file)
    metadata = read_metadata(file)
    if metadata.get("task") != "multitask" or "kpt_shape" not in metadata:
        found = f"task {metadata['task']!r}" if metadata.get("task") else "no mttrain metadata"
        raise ExportError(f"not a multitask export ({found}): export a multitask .pt with `mttrain export`", file=file)
    return metadata


def _check_openvino_folder(folder: Path) -> None:
    """An OpenVINO export is a folder with one .xml, its .bin and metadata.yaml; openvino must be installed."""
    again = "export it again with `mttrain export --format openvino`"
    if not folder.exists():
        raise ExportError("exported model not found", file=folder)
    if not folder.is_dir():
        raise ExportError(f"expected an OpenVINO model folder (NAME.xml, NAME.bin, metadata.yaml); found a file: {again}",
                          file=folder)
    if importlib.util.find_spec("openvino") is None:
        raise ExportError(f"running an OpenVINO model needs openvino, which is not installed: {INSTALL_HINT}",
                          file=folder)
    xmls = sorted(p.name for p in folder.glob("*.xml"))
    if len(xmls) != 1:
        found = "none" if not xmls else f"{len(xmls)} ({', '.join(xmls)})"
        raise ExportError(f"expected one .xml model in the OpenVINO folder; found {found}: {again}", file=folder)
    weights = (folder / xmls[0]).with_suffix(".bin")
    if not weights.is_file():
        raise ExportError(f"{weights.name}, the weights of {xmls[0]}, is missing: {again}", file=folder)
    if not (folder / "metadata.yaml").is_file():
        raise ExportError("not a multitask export (no metadata.yaml in the folder): export a multitask .pt with "
                          "`mttrain export --format openvino`", file=folder)


def check_input_size(metadata: dict[str, Any], imgsz: int | list[int] | None, file: str | Path) -> None:
    """Refuse an input size a static export cannot take (a dynamic one takes any multiple of its stride)."""
    if imgsz is None or metadata.get("args", {}).get("dynamic"):
        return
    asked = [imgsz] * 2 if isinstance(imgsz, int) else list(imgsz)
    asked = asked * 2 if len(asked) == 1 else asked
    exported = list(metadata.get("imgsz", []))
    if asked != exported:
        size = "x".join(map(str, exported))
        use = exported[0] if exported[0] == exported[-1] else size
        raise ExportError(f"this static export takes {size} input only; asked for {'x'.join(map(str, asked))}: "
                          f"use imgsz {use}, or re-export with --dynamic", file=file)


def _readable(file: Path) -> bool:
    if file.is_dir():  # OpenVINO: the graph and its weights parse
        import openvino as ov

        xml = next(file.glob("*.xml"))
        try:
            ov.Core().read_model(str(xml), str(xml.with_suffix(".bin")))
        except RuntimeError:
            return False
        return True
    if file.suffix == ".torchscript":
        import zipfile

        return zipfile.is_zipfile(file)
    import onnx
    from google.protobuf.message import DecodeError

    try:
        onnx.load(str(file), load_external_data=False)
    except (DecodeError, ValueError, OSError):  # garbage, truncated, or not a file onnx can open
        return False
    return True


def _plain(value):
    """Tensors, arrays and tuples as plain lists, so they survive str()/json round trips."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return [_plain(v) if isinstance(v, (list, tuple)) else v for v in value]
