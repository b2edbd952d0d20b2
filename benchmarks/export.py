"""Benchmark: PyTorch, onnxruntime and OpenVINO side by side, CPU latency, same run, same threads.

Builds ``yolov8n-multitask.yaml`` (80 classes, 17 keypoints; latency does not depend on the
weights), exports it with ``mttrain.export`` (static, batch 1, FP32) to ONNX and OpenVINO in a
temporary folder and times, on the same CPU threads and alternating the runtimes each round so
that machine load hits all alike:

- ``forward``: one forward pass of a (1, 3, S, S) image, every engine on the same number of threads
  (``--threads``, default all cores). PyTorch: the model as ``mttrain predict`` runs it (ultralytics'
  AutoBackend: fused, channels-last where supported, inference mode). ONNX: an onnxruntime CPU
  session with default graph optimizations, as AutoBackend builds it. OpenVINO: the CPU plugin in
  LATENCY mode and FP32, as mttrain runs it (``openvino-bf16``: the plugin's own choice on CPUs
  with AVX512-BF16 or AMX, which ``quantize=16`` selects; shown only where it differs from FP32);
- ``predict``: ``MultiTaskYOLO(...).predict(image)`` end to end (letterbox, forward, NMS, masks,
  keypoints) on a random S x S image, with each side's defaults as a user gets them (ultralytics'
  predictor sets torch to cpu_count - 1 threads; onnxruntime and OpenVINO use every core).

It prints the median, 10th-90th percentile and best milliseconds and each runtime's ratio to
PyTorch (of the medians, and of the bests, which load from other processes disturbs least).
Target (issue 18): the fastest runtime's forward <= 0.5x PyTorch's at 640 px, batch 1.

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

TARGET = 0.5


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
    import openvino as ov
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    from mttrain._ultralytics import LOGGER
    from mttrain.export import ExportOptions, export_model, export_size
    from mttrain.model import MultiTaskYOLO

    LOGGER.setLevel("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        pt = MultiTaskYOLO(model_cfg)
        export_s = {}
        files = {}
        for fmt, name in (("onnx", "model.onnx"), ("openvino", "model_openvino_model")):
            t = time.perf_counter()
            files[fmt] = export_model(pt.model, Path(tmp) / name, ExportOptions(fmt, imgsz=imgsz))
            export_s[fmt] = round(time.perf_counter() - t, 2)
        ox, ovx = MultiTaskYOLO(files["onnx"]), MultiTaskYOLO(files["openvino"])

        torch_model = AutoBackend(pt.model, device=torch.device("cpu"), fuse=True, verbose=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # as many as torch gets below: an engine comparison, not a thread one
        session = onnxruntime.InferenceSession(str(files["onnx"]), options, providers=["CPUExecutionProvider"])
        core = ov.Core()
        xml = next(files["openvino"].glob("*.xml"))
        compiled = {}
        for name, precision in (("openvino", ov.Type.f32), ("openvino-bf16", None)):
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
            if precision is not None:
                config["INFERENCE_PRECISION_HINT"] = precision
            compiled[name] = core.compile_model(core.read_model(str(xml)), "CPU", config)
        native = compiled["openvino-bf16"].get_property("INFERENCE_PRECISION_HINT")
        if native == ov.Type.f32:
            del compiled["openvino-bf16"]  # this CPU has no reduced precision of its own: nothing else to time
        im = torch.rand(1, 3, imgsz, imgsz)
        feed = {session.get_inputs()[0].name: im.numpy()}
        image = (np.random.default_rng(0).random((imgsz, imgsz, 3)) * 255).astype(np.uint8)

        def torch_forward():
            torch.set_num_threads(threads)  # ultralytics' predictor resets it to cpu_count - 1 (select_device)
            torch_model(im)

        calls = {
            ("forward", "pytorch"): torch_forward,
            ("forward", "onnx"): lambda: session.run(None, feed),
            **{("forward", name): (lambda c=c: c(im.numpy())) for name, c in compiled.items()},
            ("predict", "pytorch"): lambda: pt.predict(image, imgsz=imgsz, verbose=False),
            ("predict", "onnx"): lambda: ox.predict(image, imgsz=imgsz, verbose=False),
            ("predict", "openvino"): lambda: ovx.predict(image, imgsz=imgsz, verbose=False),
        }
        times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
        with torch.inference_mode():
            for i in range(warmup + rounds):
                for key, fn in calls.items():  # alternate, so load changes hit every side alike
                    dt = timed(fn)
                    if i >= warmup:
                        times[key].append(dt)
        sizes = {fmt: round(export_size(f) / 1e6, 1) for fmt, f in files.items()}

    report = {
        "model": model_cfg, "imgsz": imgsz, "batch": 1, "rounds": rounds, "export_seconds": export_s,
        "export_mb": sizes, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "openvino": ov.__version__.split("-")[0], "openvino_native_precision": native.get_type_name(),
        "forward_threads": threads, "cpu_count": os.cpu_count(), "sides": {},
    }
    for stage in ("forward", "predict"):
        sides = [side for (st, side) in calls if st == stage]
        report["sides"][stage] = sides
        for side in sides:
            report[f"{stage}_{side}"] = {k: round(v, 1) for k, v in percentiles(times[(stage, side)]).items()}
        for side in sides[1:]:
            for stat in ("median", "best"):
                ratio = report[f"{stage}_{side}"][f"{stat}_ms"] / report[f"{stage}_pytorch"][f"{stat}_ms"]
                report[f"{stage}_ratio_{side}" + ("" if stat == "median" else "_best")] = round(ratio, 3)
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
          f"{report['forward_threads']} each); torch {report['torch']}, onnxruntime {report['onnxruntime']}, "
          f"openvino {report['openvino']} (CPU's own precision {report['openvino_native_precision']}); "
          f"{report['rounds']} rounds; export s {report['export_seconds']}, MB {report['export_mb']}")
    print(f"{'':9}{'runtime':15}{'median (p10-p90), best ms':>30}{'ratio':>8}{'best':>7}")
    for stage in ("forward", "predict"):
        for side in report["sides"][stage]:
            s = report[f"{stage}_{side}"]
            cell = f"{s['median_ms']:.1f} ({s['p10_ms']:.1f}-{s['p90_ms']:.1f}), {s['best_ms']:.1f}"
            ratios = "" if side == "pytorch" else \
                f"{report[f'{stage}_ratio_{side}']:>7.2f}x{report[f'{stage}_ratio_{side}_best']:>6.2f}x"
            print(f"{stage:9}{side:15}{cell:>30}{ratios}")
    fp32 = [side for side in report["sides"]["forward"] if side in ("onnx", "openvino")]
    fastest = min(fp32, key=lambda side: report[f"forward_ratio_{side}"])
    ratio = report[f"forward_ratio_{fastest}"]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"fastest FP32 runtime ({fastest}) forward / PyTorch forward = {ratio:.2f}x: {verdict} the target <= {TARGET}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
