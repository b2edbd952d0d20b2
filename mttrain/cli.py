"""``mttrain``: fit, val, predict and export multitask YOLO models from the command line.

Typer commands parse options and call the Python API (:class:`mttrain.MultiTaskYOLO`);
user errors are one red line and exit 2, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mtdata.cli.shared import fail
from mtdata.cli.shared import user_errors as _user_errors
from mttrain.cli_overrides import from_keys, pairs_from_positionals, parse_overrides, refuse_twins

app = typer.Typer(
    name="mttrain",
    help="Train, validate, predict and export multitask YOLO models (boxes + masks + keypoints).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


TRUST_HELP = ("DANGEROUS: load the .pt with full unpickling, which runs any code the file holds. Only for files "
              "you made or whose maker you trust; without it a .pt may hold model classes and tensors only.")
TrustWeights = Annotated[bool, typer.Option("--trust-weights", help=TRUST_HELP)]
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line; anything else is a bug and keeps its traceback."""
    with _user_errors(FileNotFoundError, NotADirectoryError, interrupted="interrupted"):
        yield


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


@app.command(context_settings=EXTRA_ARGS)
def fit(
    ctx: typer.Context,
    data: Annotated[Optional[Path], typer.Argument(help="Multitask data.yaml (or data=...).", show_default=False)] = None,
    model: Annotated[str, typer.Option(help="Model YAML (shipped: yolov8{n,s,m,l,x}-multitask.yaml, yolo11*, yolo26* (NMS-free with nms=False)) or .pt.")] = "yolov8n-multitask.yaml",
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
    trust_weights: TrustWeights = False,
) -> None:
    """Train a multitask model. Any ultralytics training argument also works as KEY=VALUE (mosaic=0.5 lr0=0.005)."""
    with user_errors():
        (data,) = pairs_from_positionals(ctx, data=data)
        overrides = parse_overrides(ctx.args, command="fit")
        refuse_twins(ctx, overrides, {"weights": "pretrained"})
        model = from_keys(overrides, "model", model, "MODEL", ctx.info_name)
        project, name = Path(overrides.pop("project", project)), str(overrides.pop("name", name))  # either form
        if resume:
            last = project / name / "weights" / "last.pt"
            if not last.is_file():
                fail(f"--resume: {last} not found")
            if overrides:
                fail(f"--resume continues with the run's own arguments; drop {', '.join(f'{k}=' for k in overrides)}")
            from mttrain.model import MultiTaskYOLO

            MultiTaskYOLO(str(last), trust_weights=trust_weights).train(resume=True)
            return
        data = Path(from_keys(overrides, "data", data, "DATA (a data.yaml)", ctx.info_name))
        _run_dir(project, name, exist_ok or bool(overrides.get("exist_ok")))
        if weights is not None and not weights.is_file():
            fail(f"--weights: {weights} not found (mttrain never downloads weights)")
        if model.endswith(".pt") and not Path(model).is_file():
            fail(f"--model: {model} not found (mttrain never downloads weights)")
        from mttrain.data_config import read_multitask_config

        read_multitask_config(data, for_training=True)  # a wrong dataset: one line now, before torch loads
        from mttrain.model import MultiTaskYOLO

        yolo = MultiTaskYOLO(model, trust_weights=trust_weights)
        args = dict(data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
                    project=str(project.resolve()), name=name, exist_ok=True)
        if weights is not None:
            from mttrain.transfer import load_weights

            load_weights(yolo.model, weights, trust_weights=trust_weights)
        yolo.train(**{**args, **overrides})
    run = project / name
    console.print(f"run folder: [bold]{run}[/]  (weights/best.pt, weights/last.pt, results.csv, results.png)")
    metrics = run / "metrics.json"
    if metrics.is_file():
        console.print(metrics_table(json.loads(metrics.read_text())))


# The fork's (and ultralytics') mode name: `mttrain train data=D.yaml model=M.yaml epochs=E imgsz=S`.
app.command("train", context_settings=EXTRA_ARGS, help="Alias of fit, in the fork's grammar: mttrain train "
            "data=D.yaml model=M.yaml epochs=E imgsz=S (every argument also works as KEY=VALUE).")(fit)


@app.command(context_settings=EXTRA_ARGS)
def val(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Argument(
        help="Trained .pt, or an export (.onnx, .torchscript, *_openvino_model/); or model=...", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(
        help="data.yaml (default: the one a .pt was trained on; required for exports).")] = None,
    split: Annotated[str, typer.Option()] = "val",
    imgsz: Annotated[Optional[int], typer.Option()] = None,
    batch: Annotated[int, typer.Option()] = 16,
    device: Annotated[str, typer.Option()] = "cpu",
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "val",
    save_json: Annotated[bool, typer.Option("--save-json", help="Also write predictions.json (COCO results) and run pycocotools COCOeval.")] = False,
    trust_weights: TrustWeights = False,
) -> None:
    """Box, Mask and Pose P, R, mAP50, mAP50-95; writes metrics.json in the run folder.
    Any ultralytics validation argument also works as KEY=VALUE (rect=False conf=0.01)."""
    with user_errors():
        (model,) = pairs_from_positionals(ctx, model=model)
        overrides = parse_overrides(ctx.args, command="val")
        refuse_twins(ctx, overrides)
        model = Path(from_keys(overrides, "model", model, "MODEL (weights or an export)", "val"))
        if "data" in overrides:
            data = Path(from_keys(overrides, "data", data, "DATA", "val"))
        _check_weights_path(model)
        if data is not None:
            from mttrain.data_config import read_multitask_config

            read_multitask_config(data)
        from mttrain.model import MultiTaskYOLO

        yolo = MultiTaskYOLO(str(model), trust_weights=trust_weights)
        args = dict(split=split, batch=batch, device=device, project=str(project.resolve()), name=name, exist_ok=True, plots=False)
        if data is not None:
            args["data"] = str(data)
        if imgsz is not None:
            args["imgsz"] = imgsz
        if save_json:
            args["save_json"] = True
        args.update(overrides)
        yolo.val(**args)
    run = Path(args["project"]) / args["name"]
    table = json.loads((run / "metrics.json").read_text())
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
    console.print(f"metrics: {run / 'metrics.json'}")


@app.command(context_settings=EXTRA_ARGS)
def predict(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Argument(
        help="Trained .pt, or an export (.onnx, .torchscript, *_openvino_model/); or model=...", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Argument(help="Image, video, folder, glob or stream URL; or source=...",
                                                    show_default=False)] = None,
    conf: Annotated[float, typer.Option()] = 0.25,
    imgsz: Annotated[Optional[int], typer.Option()] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Write annotated images and videos (masks, keypoints, skeleton).")] = True,
    save_txt: Annotated[bool, typer.Option("--save-txt", help="Also write multitask label rows, one file per image or video frame (labels/STEM.txt, labels/STEM_FRAME.txt).")] = False,
    save_json: Annotated[bool, typer.Option("--save-json", help="Also write every detection (source, frame, class, score, box, polygon, keypoints) to predictions.json.")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "predict",
    trust_weights: TrustWeights = False,
) -> None:
    """Predict boxes, masks and keypoints; annotated images and videos (and rows) go to PROJECT/NAME.
    Any ultralytics prediction argument also works as KEY=VALUE (iou=0.5 max_det=100 vid_stride=2)."""
    with user_errors():
        model, source = pairs_from_positionals(ctx, model=model, source=source)
        overrides = parse_overrides(ctx.args, command="predict")
        refuse_twins(ctx, overrides)
        model = Path(from_keys(overrides, "model", model, "MODEL (weights or an export)", "predict"))
        source = from_keys(overrides, "source", source, "SOURCE (images, a video, a folder, a glob or a stream)",
                           "predict")
        _check_source(source)
        _check_weights_path(model)
        from mttrain.model import MultiTaskYOLO

        yolo = MultiTaskYOLO(str(model), trust_weights=trust_weights)
        args = dict(conf=conf, device=device, save=save, save_txt=save_txt, project=str(project.resolve()), name=name,
                    exist_ok=True, verbose=False)
        if imgsz is not None:
            args["imgsz"] = imgsz
        args.update(overrides)
        run = Path(args["project"]) / args["name"]
        from mttrain.video import DetectionsJSON, check_sources

        total = check_sources(source, int(args.get("vid_stride") or 1)).frames
        writer = DetectionsJSON(run / "predictions.json", yolo) if save_json else None
        summary = _consume(yolo.predict(source, stream=True, **args), total, writer)
    _print_summary(summary, run, writer)


@app.command(context_settings=EXTRA_ARGS)
def track(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="Trained .pt, or an export (.onnx, .torchscript).")],
    source: Annotated[str, typer.Argument(help="Video, folder of videos, glob or stream URL.")],
    tracker: Annotated[str, typer.Option(help="bytetrack.yaml, botsort.yaml (ultralytics') or a tracker YAML file.")] = "bytetrack.yaml",
    conf: Annotated[Optional[float], typer.Option(help="Detection threshold (default 0.1: trackers take low-score detections).")] = None,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.7,
    imgsz: Annotated[Optional[int], typer.Option()] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Write the annotated video (track ids, masks, keypoints, skeleton).")] = True,
    save_txt: Annotated[bool, typer.Option("--save-txt", help="Also write one label file per frame: multitask rows ending with the track id.")] = False,
    save_json: Annotated[bool, typer.Option("--save-json", help="Also write tracks.json: every track with its class and, per frame, score, box, polygon, keypoints.")] = False,
    smooth: Annotated[bool, typer.Option("--smooth", help="Smooth each track's keypoints over time (one-euro filter).")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
    project: Annotated[Path, typer.Option()] = Path("runs/multitask"),
    name: Annotated[str, typer.Option()] = "track",
    trust_weights: TrustWeights = False,
) -> None:
    """Track objects through a video: each track id keeps its own mask and keypoints in every frame.
    Any ultralytics prediction argument also works as KEY=VALUE (vid_stride=2 max_det=50)."""
    with user_errors():
        overrides = parse_overrides(ctx.args, command="track")
        refuse_twins(ctx, overrides)
        tracker = str(overrides.pop("tracker", tracker))  # tracker=botsort.yaml, as ultralytics spells it
        _check_source(source)
        _check_weights_path(model)
        from mttrain.video import TracksJSON, check_sources, resolve_tracker

        tracker_file = resolve_tracker(tracker)
        from mttrain.model import MultiTaskYOLO

        yolo = MultiTaskYOLO(str(model), trust_weights=trust_weights)
        args = dict(conf=conf, iou=iou, device=device, save=save, save_txt=save_txt, project=str(project.resolve()),
                    name=name, exist_ok=True, verbose=False)
        if imgsz is not None:
            args["imgsz"] = imgsz
        args.update(overrides)
        run = Path(args["project"]) / args["name"]
        total = check_sources(source, int(args.get("vid_stride") or 1)).frames
        writer = TracksJSON(run / "tracks.json", yolo, tracker) if save_json else None
        results = yolo.track(source, stream=True, tracker=str(tracker_file), smooth=smooth, **args)
        summary = _consume(results, total, writer)
    _print_summary(summary, run, writer)


def _check_source(source: str) -> None:
    """A missing path fails here, before torch and ultralytics load (globs and URLs are checked later)."""
    from mttrain.video import STREAM_PREFIXES

    if source.isnumeric() or source.lower().startswith(STREAM_PREFIXES) or any(ch in source for ch in "*?["):
        return
    if not Path(source).exists():
        fail(f"{source}: no such image, video or folder")


def _consume(results, total: int | None, writer) -> dict:
    """Run a prediction stream to its end with a progress bar (frames done and frames per second), feeding
    ``writer``; the writer's file is kept only if the whole run succeeds."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mtdata.cli.shared import err_console

    frames = objects = 0
    start = time.perf_counter()
    columns = [TextColumn("frames"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} fps"),
               TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
            task = bar.add_task("frames", total=total, fps=0.0)
            for result in results:
                frames += 1
                objects += len(result.boxes) if result.boxes is not None else 0
                if writer is not None:
                    writer.add(result)
                bar.update(task, completed=frames, fps=frames / max(time.perf_counter() - start, 1e-9))
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is not None:
        writer.close()
    return {"frames": frames, "objects": objects, "seconds": time.perf_counter() - start}


def _print_summary(summary: dict, run: Path, writer) -> None:
    fps = summary["frames"] / max(summary["seconds"], 1e-9)
    console.print(f"{summary['frames']} images/frames, {summary['objects']} objects in {summary['seconds']:.1f} s "
                  f"({fps:.1f} frames/s) -> [bold]{run}[/]", highlight=False, soft_wrap=True)
    if writer is not None:
        console.print(f"json: {writer.path}", highlight=False, soft_wrap=True)


EXPORT_ARGS = frozenset({"model", "format", "imgsz", "half", "dynamic", "simplify", "opset", "batch", "nms"})


@app.command(context_settings=EXTRA_ARGS)
def export(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Argument(help="Trained multitask .pt (or model=...).", show_default=False)] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="onnx, torchscript or openvino (a folder).")] = "onnx",
    imgsz: Annotated[Optional[int], typer.Option(min=32, help="Input side in pixels, a multiple of the stride (32); default: the size the model was trained at.")] = None,
    half: Annotated[bool, typer.Option("--half", help="FP16 weights (ONNX, OpenVINO; inputs and outputs stay FP32).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Free batch, height and width.")] = False,
    simplify: Annotated[bool, typer.Option("--simplify", help="Slim the ONNX graph with onnxslim.")] = False,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default: ultralytics' choice, 18).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Batch size (static exports take exactly this batch).")] = 1,
    trust_weights: TrustWeights = False,
) -> None:
    """Export to ONNX, TorchScript or OpenVINO beside the weights; `mttrain predict` and `val` run it.
    Its options also work as ultralytics' KEY=VALUE (format=torchscript imgsz=160 dynamic=True)."""
    with user_errors():
        (model,) = pairs_from_positionals(ctx, model=model)
        overrides = parse_overrides(ctx.args, allowed=EXPORT_ARGS, command="export")
        refuse_twins(ctx, overrides)
        model = Path(from_keys(overrides, "model", model, "MODEL (a trained .pt)", "export"))
        _check_weights_path(model)
        from mttrain.export import ExportOptions, export_size, export_weights, read_metadata

        chosen = dict(format=format, imgsz=imgsz, half=half, dynamic=dynamic, simplify=simplify, opset=opset, batch=batch)
        # nms=False: an end-to-end (yolo26) model's one-to-one branch, detections (B, max_det, 6 + nm + K*3), no NMS
        options = ExportOptions(**{**chosen, **overrides})
        file = export_weights(model, options, trust_weights=trust_weights)
        meta = read_metadata(file)
    size = meta["imgsz"]
    shape = "(batch, 3, height, width)" if meta["args"]["dynamic"] else f"({meta['batch']}, 3, {size[0]}, {size[1]})"
    console.print(f"{file}  ({export_size(file) / 1e6:.1f} MB, {meta['args']['format']}, input images {shape}, "
                  f"outputs {', '.join(meta['outputs'])})", highlight=False, soft_wrap=True)
    console.print(f"classes {meta['names']}; keypoints {meta['kpt_shape']} for classes {sorted(meta['kpt_names'])}",
                  highlight=False, soft_wrap=True)


def _check_weights_path(model: Path) -> None:
    """A missing weights file fails here, before torch and ultralytics load."""
    if model.suffix in (".pt", ".onnx", ".torchscript") and not model.is_file():
        fail(f"weights file not found: {model} (mttrain never downloads weights)")
    if model.name.endswith("_openvino_model") and not model.exists():
        fail(f"exported model not found: {model} (mttrain never downloads weights)")


def main() -> None:
    from mtdata.cli.shared import run_app

    run_app(app)


if __name__ == "__main__":
    main()
