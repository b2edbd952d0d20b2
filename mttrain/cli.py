"""``mttrain``: fit, val, predict and export multitask YOLO models from the command line.

Typer commands parse options and call the Python API (:class:`mttrain.MultiTaskYOLO`);
user errors are one red line and exit 2, never a traceback.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console

from mtdata.cli.app import fail
from mtdata.cli.app import user_errors as _user_errors
from rich.table import Table

app = typer.Typer(
    name="mttrain",
    help="Train, validate, predict and export multitask YOLO models (boxes + masks + keypoints).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line; anything else is a bug and keeps its traceback."""
    with _user_errors(FileNotFoundError, NotADirectoryError, interrupted="interrupted"):
        yield


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=3", "imgsz=160"]`` -> ``{"epochs": 3, "imgsz": 160}``; unknown keys are refused."""
    from mttrain._ultralytics import DEFAULT_CFG

    known = set(vars(DEFAULT_CFG))
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"expected KEY=VALUE, found {pair!r}")
        key, value = pair.split("=", 1)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            fail(f"unknown training argument {key!r}{hint}")
        out[key] = yaml.safe_load(value) if value else None
    return out


def _run_dir(project: Path, name: str, exist_ok: bool) -> None:
    run = project / name
    if run.is_dir() and any(run.iterdir()) and not exist_ok:
        fail(f"run folder {run} exists and is not empty: choose another --name or pass --exist-ok")


def metrics_table(table: dict) -> Table:
    out = Table(show_edge=False)
    out.add_column("")
    for column in ("P", "R", "mAP50", "mAP50-95"):
        out.add_column(column, justify="right")
    for task, label in (("box", "Box"), ("mask", "Mask"), ("pose", "Pose")):
        m = table[task]
        out.add_row(label, *(f"{m[k]:.3f}" for k in ("precision", "recall", "map50", "map50_95")))
    return out


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def fit(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Multitask data.yaml.")],
    model: Annotated[str, typer.Option(help="Model YAML (shipped: yolov8{n,s,m,l,x}-multitask.yaml, yolo11*) or .pt.")] = "yolov8n-multitask.yaml",
    weights: Annotated[Optional[Path], typer.Option(help="Start from a multitask, segment or pose checkpoint.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    imgsz: Annotated[int, typer.Option(min=32)] = 640,
    batch: Annotated[int, typer.Option()] = 16,
    device: Annotated[str, typer.Option(help="cpu, 0, or 0,1 for multi-GPU DDP.")] = "cpu",
    workers: Annotated[int, typer.Option(min=0)] = 2,
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "train",
    resume: Annotated[bool, typer.Option("--resume", help="Continue PROJECT/NAME/weights/last.pt.")] = False,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Reuse a non-empty PROJECT/NAME.")] = False,
) -> None:
    """Train a multitask model. Any ultralytics training argument also works as KEY=VALUE (epochs=3 imgsz=160)."""
    overrides = parse_overrides(ctx.args)
    with user_errors():
        from mttrain.model import MultiTaskYOLO

        if resume:
            last = project / name / "weights" / "last.pt"
            if not last.is_file():
                fail(f"--resume: {last} not found")
            MultiTaskYOLO(str(last)).train(resume=True)
            return
        _run_dir(project, name, exist_ok or bool(overrides.get("exist_ok")))
        if weights is not None and not weights.is_file():
            fail(f"--weights: {weights} not found (mttrain never downloads weights)")
        if not data.is_file():
            fail(f"{data}: data.yaml not found")
        yolo = MultiTaskYOLO(model)
        args = dict(data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
                    project=str(project.resolve()), name=name, exist_ok=True)
        if weights is not None:
            from mttrain.transfer import load_weights

            load_weights(yolo.model, weights)
        yolo.train(**{**args, **overrides})
    run = project / name
    console.print(f"run folder: [bold]{run}[/]  (weights/best.pt, weights/last.pt, results.csv, results.png)")
    metrics = run / "metrics.json"
    if metrics.is_file():
        console.print(metrics_table(json.loads(metrics.read_text())))


@app.command()
def val(
    model: Annotated[Path, typer.Argument(help="Trained .pt, or an export (.onnx, .torchscript).")],
    data: Annotated[Optional[Path], typer.Option(
        help="data.yaml (default: the one a .pt was trained on; required for exports).")] = None,
    split: Annotated[str, typer.Option()] = "val",
    imgsz: Annotated[Optional[int], typer.Option()] = None,
    batch: Annotated[int, typer.Option()] = 16,
    device: Annotated[str, typer.Option()] = "cpu",
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "val",
    save_json: Annotated[bool, typer.Option("--save-json", help="Also write predictions.json (COCO results) and run pycocotools COCOeval.")] = False,
) -> None:
    """Box, Mask and Pose P, R, mAP50, mAP50-95; writes metrics.json in the run folder."""
    with user_errors():
        from mttrain.model import MultiTaskYOLO

        yolo = MultiTaskYOLO(str(model))
        args = dict(split=split, batch=batch, device=device, project=str(project.resolve()), name=name, exist_ok=True, plots=False)
        if data is not None:
            args["data"] = str(data)
        if imgsz is not None:
            args["imgsz"] = imgsz
        if save_json:
            args["save_json"] = True
        yolo.val(**args)
    table = json.loads((project / name / "metrics.json").read_text())
    console.print(metrics_table(table))
    coco = table.get("coco")
    if coco:
        compare = Table(title=f"COCOeval against {coco['ground_truth_kind']} ground truth", show_edge=False)
        for column in ("", "mAP50 ours", "COCO", "mAP50-95 ours", "COCO"):
            compare.add_column(column, justify="right" if column else "left")
        for task, label in (("box", "Box"), ("mask", "Mask"), ("pose", "Pose")):
            if task in coco:
                cells = [f"{v:.3f}" if v is not None else "-" for v in
                         (table[task]["map50"], coco[task]["map50"], table[task]["map50_95"], coco[task]["map50_95"])]
                compare.add_row(label, *cells)
        console.print(compare)
        for note in coco.get("notes", []):
            console.print(f"[cyan]note:[/] {note}", highlight=False, soft_wrap=True)
        console.print(f"predictions: {coco['predictions']}  ground truth: {coco['ground_truth']}", highlight=False, soft_wrap=True)
    console.print(f"metrics: {project / name / 'metrics.json'}")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Trained .pt, or an export (.onnx, .torchscript).")],
    source: Annotated[str, typer.Argument(help="Image, folder, glob or video.")],
    conf: Annotated[float, typer.Option()] = 0.25,
    imgsz: Annotated[Optional[int], typer.Option()] = None,
    save_txt: Annotated[bool, typer.Option("--save-txt", help="Also write multitask label rows.")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "predict",
) -> None:
    """Predict boxes, masks and keypoints; annotated images (and rows) go to PROJECT/NAME."""
    with user_errors():
        from mttrain.model import MultiTaskYOLO
        from mttrain.predict import result_rows

        if not any(ch in source for ch in "*?") and not Path(source).exists():
            fail(f"{source}: no such image or folder")
        yolo = MultiTaskYOLO(str(model))
        out = project / name
        args = dict(conf=conf, device=device, save=True, project=str(project.resolve()), name=name, exist_ok=True, verbose=False)
        if imgsz is not None:
            args["imgsz"] = imgsz
        count = objects = 0
        keypoint_classes = yolo.keypoint_classes  # from the model, or from an export's metadata
        for result in yolo.predict(source, stream=True, **args):
            count += 1
            objects += len(result.boxes)
            if save_txt:
                label = out / "labels" / (Path(result.path).stem + ".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text("".join(r + "\n" for r in result_rows(result, keypoint_classes)))
    console.print(f"{count} images, {objects} objects -> [bold]{out}[/]")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="Trained multitask .pt.")],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.")] = "onnx",
    imgsz: Annotated[int, typer.Option(min=32, help="Input side in pixels (a multiple of the stride, 32).")] = 640,
    half: Annotated[bool, typer.Option("--half", help="FP16 weights (ONNX; inputs and outputs stay FP32).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Free batch, height and width.")] = False,
    simplify: Annotated[bool, typer.Option("--simplify", help="Slim the ONNX graph with onnxslim.")] = False,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default: ultralytics' choice, 18).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Batch size (static exports take exactly this batch).")] = 1,
) -> None:
    """Export to ONNX or TorchScript beside the weights; `mttrain predict` and `val` run the file."""
    with user_errors():
        from mttrain.export import ExportOptions, export_weights, read_metadata

        options = ExportOptions(format, imgsz=imgsz, half=half, dynamic=dynamic, simplify=simplify, opset=opset,
                                batch=batch)
        file = export_weights(model, options)
        meta = read_metadata(file)
    shape = "(batch, 3, height, width)" if dynamic else f"({batch}, 3, {imgsz}, {imgsz})"
    console.print(f"{file}  ({file.stat().st_size / 1e6:.1f} MB, {meta['args']['format']}, input images {shape}, "
                  f"outputs {', '.join(meta['outputs'])})", highlight=False, soft_wrap=True)
    console.print(f"classes {meta['names']}; keypoints {meta['kpt_shape']} for classes {sorted(meta['kpt_names'])}",
                  highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
