"""``mtdata view``: a dataset (and a model's predictions) in the FiftyOne App."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtdata.cli.app import app, console, progress_bar, user_errors

if TYPE_CHECKING:
    from mtdata.formats.yolo.data_yaml import DatasetConfig


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt  # so a SIGTERM while loading still runs the clean-up below


@app.command()
def view(
    data: Annotated[Path, typer.Argument(help="The dataset's data.yaml (multitask, segment or pose).")],
    split: Annotated[list[str] | None, typer.Option("--split", help="Split to load (repeatable); all by default.")] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", help="An mttrain model (.pt or .onnx) to run and evaluate.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="FiftyOne dataset name (default: mtdata-<dataset folder>).")] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="App port.")] = 5151,
    address: Annotated[str, typer.Option("--address", help="Address the App listens on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    no_launch: Annotated[bool, typer.Option("--no-launch", help="Build the dataset (kept in the database), print its name and exit.")] = False,
    persistent: Annotated[bool, typer.Option("--persistent", help="Keep the dataset after exit and never replace an existing persistent one.")] = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Tag samples and labels with `mtdata check` findings.")] = True,
    conf: Annotated[float, typer.Option("--conf", min=0.0, max=1.0, help="Prediction confidence threshold.")] = 0.25,
    imgsz: Annotated[int | None, typer.Option("--imgsz", min=32, help="Prediction image size (default: the model's).")] = None,
    trust_weights: Annotated[bool, typer.Option("--trust-weights", help=(
        "DANGEROUS: load the --predictions .pt with full unpickling, which runs any code the file holds. Only for "
        "files you made or whose maker you trust; without it a .pt may hold model classes and tensors only."))] = False,
) -> None:
    """Open a dataset in the FiftyOne App: boxes, masks and keypoints of each object together, skeleton drawn,
    check findings as tags, and optionally a model's predictions with an evaluation to sort by.

    Blocks until Ctrl-C or SIGTERM, then stops every process FiftyOne started.
    """
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        with user_errors():
            _view(data, split or [], predictions, name, port, address, no_launch, persistent, check, conf, imgsz, trust_weights)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _view(data, splits, predictions, name, port, address, no_launch, persistent, check, conf, imgsz, trust_weights) -> None:
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mtdata.view.dataset import build_dataset, import_fiftyone, keypoint_counts

    config = read_data_yaml(data)  # an unreadable dataset fails here, in one line, before anything starts
    if not no_launch:
        from mtdata.view.app import check_port_free

        check_port_free(address, port)
    model = None
    if predictions is not None:
        model = load_model(predictions, config, trust_weights=trust_weights)
    findings = _findings(data, splits) if check else []

    import_fiftyone()
    from mtdata.view.app import ProcessWatch, serve, shutdown

    watch = ProcessWatch()  # from here on, every process that appears below us is FiftyOne's
    dataset = None
    keep = persistent or no_launch
    try:
        with progress_bar("loading") as progress:
            dataset = build_dataset(
                data, splits or None, name=name, persistent=keep, overwrite=not persistent, findings=findings, progress=progress,
            )
        summary = [f"{len(dataset)} images", f"{dataset.count('ground_truth.detections')} objects"]
        if config.num_keypoints:
            labeled, unlabeled = keypoint_counts(dataset)
            summary.append(f"{labeled} with keypoints" + (f" ({unlabeled} of keypoint classes with no point labeled)" if unlabeled else ""))
        tagged = sum(1 for tags in dataset.values("tags") if len(tags) > 1)
        if check:
            summary.append(f"{tagged} image{'s' if tagged != 1 else ''} with findings")
        console.print(f"dataset [bold]{dataset.name}[/]: {', '.join(summary)}", highlight=False, soft_wrap=True)
        if model is not None:
            from mtdata.view.predictions import add_predictions, evaluate
            from mttrain.predict import masks_in_image

            with progress_bar("predicting") as progress:
                count = add_predictions(
                    dataset, model, config, conf=conf, imgsz=imgsz, progress=progress, masks_in_image=masks_in_image,
                )
            scores = evaluate(dataset, config)
            oks = f", mean OKS {scores['oks_mean']:.3f} over {scores['oks_count']} poses" if scores["oks_mean"] is not None else ""
            console.print(
                f"predictions: {count} objects; mAP {scores['mAP']:.3f}, tp {scores['tp']}, fp {scores['fp']}, "
                f"fn {scores['fn']}{oks} (sort by eval_fp, eval_fn, eval_oks)", highlight=False,
            )
        if no_launch:
            console.print(f"kept in the FiftyOne database: fo.load_dataset({dataset.name!r})", highlight=False)
            return

        def ready(url: str) -> None:
            console.print(f"FiftyOne App: [bold]{url}[/] (Ctrl-C to stop)", highlight=False)

        stopped_by = serve(dataset, address, port, ready)
        console.print(f"{stopped_by}: App closed", highlight=False)
    finally:
        if dataset is not None and not keep:
            dataset.delete()
        shutdown(watch)


def load_model(model_path: str | Path, config: DatasetConfig, trust_weights: bool = False):
    """Load an mttrain ``.pt``/``.onnx`` and check it against the dataset (here, in the CLI layer: the library's
    :mod:`mtdata.view.predictions` is handed the model and imports no model library).

    A ``.pt`` may hold model classes and tensors only (it is loaded with ``weights_only``), unless
    ``trust_weights``: then it is fully unpickled, which runs any code it holds.

    Raises:
        MtdataError: mttrain is not importable, the file is missing or unreadable, asks for code to run,
            or the model's classes/keypoints do not match ``config``.
    """
    from mtdata.errors import InputError, MtdataError
    from mtdata.view.predictions import check_model_matches, model_facts

    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError("model file not found", file=model_path)
    try:
        from mttrain import MultiTaskYOLO
    except ImportError as e:
        raise MtdataError(f"--predictions needs the trainer: mttrain is not importable ({e}); install the train extra, `pip install 'mt[train]'`") from e
    try:
        model = MultiTaskYOLO(str(model_path), trust_weights=trust_weights)
    except MtdataError:  # mttrain's own one-line errors (refused, unreadable, not a multitask model)
        raise
    except Exception as e:  # torch/onnx raise many types for a file that is not a model
        raise InputError(f"cannot load the model: {type(e).__name__}: {str(e)[:200]}", file=model_path) from e
    names, kpt_shape, classes = model_facts(model)
    check_model_matches(model_path, names, kpt_shape, classes, config)
    return model


def _findings(data: Path, splits: list[str]) -> list:
    """``mtdata check`` findings over the splits shown (all of them when none or several are asked)."""
    from mtdata.check.dataset import check_dataset

    with progress_bar("checking") as progress:
        result = check_dataset(data, split=splits[0] if len(splits) == 1 else None, progress=progress)
    return result.findings
