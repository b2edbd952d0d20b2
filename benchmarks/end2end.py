"""Benchmark: yolo26n-multitask's end-to-end (one-to-one, ``nms=False``) branch against its one-to-many branch
with NMS, the whole predict pipeline (letterbox, onnxruntime, postprocess with masks and keypoints), same run.

A yolo26n-multitask is trained briefly on ``mtdata synth`` (so its scores mean something: NMS's cost grows with
the boxes above ``conf``), exported twice to ONNX (default: rows for NMS; ``nms=False``: top-k rows, no NMS) and
both run by ``MultiTaskYOLO(onnx).predict`` on the same images, one image at a time, round robin (a busy moment on
a shared CPU slows both alike). Printed: median ms per image at ``conf`` 0.25 (predict's default), 0.05 and
0.001 (val's: the most boxes for NMS), the ratio end-to-end / NMS, and how many objects each kept.

Usage::

    .venv/bin/python benchmarks/end2end.py                       # ~5 min on 2 CPU cores
    .venv/bin/python benchmarks/end2end.py --epochs 3 --repeats 2 # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_small(work: Path, images: int, size: int, epochs: int) -> tuple[Path, list[Path]]:
    """A yolo26n-multitask trained ``epochs`` on ``mtdata synth``; returns (best.pt, the val images)."""
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth
    from mttrain import MultiTaskYOLO

    write_synth(work / "coco", images=images, size=size, seed=3)
    ann = work / "coco" / "annotations"
    convert_coco([ann / "instances_train.json", ann / "instances_val.json"], work / "mt", images_dir=work / "coco" / "images")
    model = MultiTaskYOLO("yolo26n-multitask.yaml")
    # The recipe of the export parity tests: a small model that finds boxes, masks and keypoints above conf 0.25.
    model.train(data=str(work / "mt" / "data.yaml"), epochs=epochs, imgsz=size, batch=8, workers=0, device="cpu",
                optimizer="AdamW", lr0=0.005, warmup_epochs=0, mosaic=0.0, project=str(work / "runs"), name="train",
                plots=False, val=False, seed=0, verbose=False)
    weights = work / "runs" / "train" / "weights" / "last.pt"
    return weights, sorted((work / "mt" / "images" / "val").iterdir())


def export_both(weights: Path, imgsz: int) -> dict[str, Path]:
    """The ONNX export of each branch, side by side: ``nms`` (one-to-many rows) and ``end2end`` (one-to-one)."""
    from mttrain import MultiTaskYOLO

    paths = {}
    for name, nms in (("nms", None), ("end2end", False)):
        written = MultiTaskYOLO(str(weights)).export(format="onnx", imgsz=imgsz, nms=nms)
        paths[name] = Path(shutil.move(written, written.with_name(f"{weights.stem}-{name}.onnx")))
    return paths


def time_pipelines(models: dict[str, Path], images: list[Path], imgsz: int, conf: float, repeats: int) -> dict[str, tuple[float, float]]:
    """Median ms per image and mean objects kept per image, for each exported model."""
    from mttrain import MultiTaskYOLO

    runners = {name: MultiTaskYOLO(str(path)) for name, path in models.items()}
    for runner in runners.values():  # warm-up: sessions, the predictor, the first allocations
        runner.predict(str(images[0]), imgsz=imgsz, conf=conf, verbose=False, save=False)
    times: dict[str, list[float]] = {name: [] for name in runners}
    kept: dict[str, list[int]] = {name: [] for name in runners}
    for _ in range(repeats):
        for image in images:
            for name, runner in runners.items():
                start = time.perf_counter()
                result = runner.predict(str(image), imgsz=imgsz, conf=conf, verbose=False, save=False)[0]
                times[name].append((time.perf_counter() - start) * 1000)
                kept[name].append(len(result.boxes))
    return {name: (statistics.median(times[name]), statistics.mean(kept[name])) for name in runners}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640, help="export and predict size")
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the val images")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="mt-bench-e2e-") as tmp:
        weights, images = train_small(Path(tmp), args.train_images, args.train_size, args.epochs)
        models = export_both(weights, args.imgsz)
        print(f"(b) predict pipeline per image, yolo26n-multitask ONNX (onnxruntime), {args.imgsz} px, batch 1, "
              f"{len(images)} images x {args.repeats}, trained {args.epochs} epochs on mtdata synth")
        for conf in (0.25, 0.05, 0.001):
            figures = time_pipelines(models, images, args.imgsz, conf, args.repeats)
            (nms_ms, nms_kept), (e2e_ms, e2e_kept) = figures["nms"], figures["end2end"]
            print(f"    conf {conf:<5}  NMS {nms_ms:7.1f} ms ({nms_kept:5.1f} objects)   end-to-end {e2e_ms:7.1f} ms "
                  f"({e2e_kept:5.1f} objects)   end-to-end / NMS = {e2e_ms / nms_ms:.2f}x")


if __name__ == "__main__":
    main()
