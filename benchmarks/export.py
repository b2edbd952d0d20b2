"""Benchmark: an ONNX export run by onnxruntime against the PyTorch model, CPU latency, same run.

Builds ``yolov8n-multitask.yaml`` (80 classes, 17 keypoints; latency does not depend on the
weights), exports it with ``mttrain.export`` (static, batch 1, FP32) to a temporary folder and
times, on the same CPU threads and alternating the two each round so that machine load hits both
alike:

- ``forward``: one forward pass of a (1, 3, S, S) image, both engines on the same number of threads
  (``--threads``, default all cores). PyTorch: the model as ``mttrain predict`` runs it (ultralytics'
  AutoBackend: fused, channels-last where supported, inference mode). ONNX: an onnxruntime CPU
  session with default graph optimizations, as AutoBackend builds it;
- ``predict``: ``MultiTaskYOLO(...).predict(image)`` end to end (letterbox, forward, NMS, masks,
  keypoints) on a random S x S image, with each side's defaults as a user gets them (ultralytics'
  predictor sets torch to cpu_count - 1 threads; onnxruntime uses every core).

It prints the median, 10th-90th percentile and best milliseconds and the ratios ONNX / PyTorch
(of the medians, and of the bests, which load from other processes disturbs least).
Target (issue 7): ONNX forward <= 0.7x PyTorch at 640 px, batch 1.

Usage::

    .venv/bin/python benchmarks/export.py            # 640 px, 30 rounds
    .venv/bin/python benchmarks/export.py --quick    # 320 px, 5 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")

TARGET = 0.7


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"median_ms": statistics.median(ordered) * 1e3, "best_ms": ordered[0] * 1e3, "p10_ms": pick(0.1) * 1e3,
            "p90_ms": pick(0.9) * 1e3}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(model_cfg: str, imgsz: int, rounds: int, warmup: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    from mttrain._ultralytics import LOGGER
    from mttrain.export import ExportOptions, export_model
    from mttrain.model import MultiTaskYOLO

    LOGGER.setLevel("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        pt = MultiTaskYOLO(model_cfg)
        t = time.perf_counter()
        onnx_file = export_model(pt.model, Path(tmp) / "model.onnx", ExportOptions("onnx", imgsz=imgsz))
        export_s = time.perf_counter() - t
        ox = MultiTaskYOLO(onnx_file)

        torch_model = AutoBackend(pt.model, device=torch.device("cpu"), fuse=True, verbose=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # as many as torch gets below: an engine comparison, not a thread one
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        im = torch.rand(1, 3, imgsz, imgsz)
        feed = {session.get_inputs()[0].name: im.numpy()}
        image = (np.random.default_rng(0).random((imgsz, imgsz, 3)) * 255).astype(np.uint8)

        def torch_forward():
            torch.set_num_threads(threads)  # ultralytics' predictor resets it to cpu_count - 1 (select_device)
            torch_model(im)

        calls = {
            ("forward", "pytorch"): torch_forward,
            ("forward", "onnx"): lambda: session.run(None, feed),
            ("predict", "pytorch"): lambda: pt.predict(image, imgsz=imgsz, verbose=False),
            ("predict", "onnx"): lambda: ox.predict(image, imgsz=imgsz, verbose=False),
        }
        times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
        with torch.inference_mode():
            for i in range(warmup + rounds):
                for key, fn in calls.items():  # alternate, so load changes hit both sides alike
                    dt = timed(fn)
                    if i >= warmup:
                        times[key].append(dt)
        size_mb = onnx_file.stat().st_size / 1e6

    report = {
        "model": model_cfg, "imgsz": imgsz, "batch": 1, "rounds": rounds, "export_seconds": round(export_s, 2),
        "onnx_mb": round(size_mb, 1), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "forward_threads": threads, "cpu_count": os.cpu_count(),
    }
    for stage in ("forward", "predict"):
        for side in ("pytorch", "onnx"):
            report[f"{stage}_{side}"] = {k: round(v, 1) for k, v in percentiles(times[(stage, side)]).items()}
        for stat in ("median", "best"):
            onnx_ms, torch_ms = (report[f"{stage}_{side}"][f"{stat}_ms"] for side in ("onnx", "pytorch"))
            report[f"{stage}_ratio" + ("" if stat == "median" else "_best")] = round(onnx_ms / torch_ms, 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolov8n-multitask.yaml", help="shipped model YAML name or path")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for both forward passes")
    parser.add_argument("--quick", action="store_true", help="320 px, 5 rounds")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.quick:
        args.imgsz, args.rounds, args.warmup = 320, 5, 1
    report = run(args.model, args.imgsz, args.rounds, args.warmup, args.threads)

    print(f"{report['model']} at {report['imgsz']} px, batch 1, CPU ({report['cpu_count']} cores, forward threads "
          f"{report['forward_threads']} each); torch {report['torch']}, onnxruntime {report['onnxruntime']}; "
          f"{report['rounds']} rounds; export {report['export_seconds']} s, {report['onnx_mb']} MB")
    print(f"{'median (p10-p90), best':24}{'PyTorch ms':>28}{'ONNX Runtime ms':>28}{'ratio':>8}{'best':>7}")
    for stage in ("forward", "predict"):
        cells = []
        for side in ("pytorch", "onnx"):
            s = report[f"{stage}_{side}"]
            cells.append(f"{s['median_ms']:.1f} ({s['p10_ms']:.1f}-{s['p90_ms']:.1f}), {s['best_ms']:.1f}")
        ratios = f"{report[f'{stage}_ratio']:>7.2f}x{report[f'{stage}_ratio_best']:>6.2f}x"
        print(f"{stage:24}{cells[0]:>28}{cells[1]:>28}{ratios}")
    verdict = "meets" if report["forward_ratio"] <= TARGET else "misses"
    print(f"ONNX forward / PyTorch forward = {report['forward_ratio']:.2f}x: {verdict} the target <= {TARGET}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
