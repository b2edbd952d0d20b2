"""Benchmark: yolov8n-multitask (``--family 26``: yolo26n-multitask) against ultralytics' seg and pose models
of the same family, same run.

(a) CPU latency at 640 px, batch 1, 2 threads: fused model forward in eval mode, median of
    ``--repeats`` runs after warm-up. Targets: multitask <= 0.70x (seg + pose) and <= 1.15x seg.
(b) Training step time (forward, loss, backward, optimizer step) on the same real batch from
    ``mtdata synth`` data at ``--train-imgsz``. Target: <= 1.15x yolov8n-seg.
(c) Learning at equal budget (``--learn``, ``benchmarks/learning.py``): on each synthetic set
    (``mtdata synth``; ``benchmarks/synth_other.py``, built unlike it) the same images trained as
    multitask, segment (all classes) and pose (keypoint class only) datasets, same settings, per
    seed; all three scored by one referee (COCOeval against the source COCO file). One table per
    set: mAP50-95 per model and seed, mean, spread, ratio. Targets: multitask mask mAP50-95 >=
    0.97x yolov8n-seg's and pose >= 0.97x yolov8n-pose's, means over the seeds.

Usage::

    .venv/bin/python benchmarks/model.py                 # (a) and (b)
    .venv/bin/python benchmarks/model.py --family 26 --latency-only   # (a) for yolo26n, both branches, and vs yolov8n-multitask
    .venv/bin/python benchmarks/model.py --learn         # also (c): 2 sets x 2 seeds x 3 models, ~2 h on 2 CPU cores
    .venv/bin/python benchmarks/model.py --learn --learn-images 64 --learn-epochs 10 --learn-seeds 0   # a quick (c)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

FAMILIES = {"v8": "yolov8n", "26": "yolo26n"}


def build_models(nc_seg: int, nc_pose: int, kpt_shape=(17, 3), family: str = "v8"):
    """multitask, seg and pose models of ``family`` (v8 or 26), built alike; the 26 family also gets our
    yolov8n-multitask as ``v8-multitask``, the model it would replace."""
    from ultralytics.nn.tasks import PoseModel, SegmentationModel

    from mttrain.nn.model import MultiTaskModel

    name = FAMILIES[family]
    models = {
        "multitask": MultiTaskModel(f"{name}-multitask.yaml", nc=nc_seg, data_kpt_shape=kpt_shape, verbose=False),
        "seg": SegmentationModel(f"{name}-seg.yaml", nc=nc_seg, verbose=False),
        "pose": PoseModel(f"{name}-pose.yaml", nc=nc_pose, data_kpt_shape=kpt_shape, verbose=False),
    }
    if family != "v8":
        models["v8-multitask"] = MultiTaskModel("yolov8n-multitask.yaml", nc=nc_seg, data_kpt_shape=kpt_shape,
                                                verbose=False)
    return models


def latency(repeats: int, imgsz: int, family: str = "v8", end2end: bool = False) -> dict[str, float]:
    """Median forward latency (ms) of each fused model at ``imgsz``, batch 1. ``end2end``: end-to-end models
    keep their one-to-one branch (rows after top-k, no NMS needed; ultralytics' nms=False), else the
    one-to-many one (rows for NMS, ultralytics' default); v8 models have only the latter."""
    models = build_models(nc_seg=80, nc_pose=1, family=family)
    x = torch.rand(1, 3, imgsz, imgsz)
    fused = {}
    for name, model in models.items():
        model.end2end = end2end
        fused[name] = model.fuse(verbose=False).eval()
    times = {name: [] for name in fused}
    with torch.inference_mode():
        for model in fused.values():
            for _ in range(3):
                model(x)
        for _ in range(repeats):  # round robin: a busy moment on a shared CPU slows every model alike
            for name, model in fused.items():
                start = time.perf_counter()
                model(x)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def synthetic_multitask(out: Path, images: int, size: int) -> Path:
    """``mtdata synth`` + ``mtdata convert`` (multitask); returns data.yaml."""
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth

    write_synth(out / "coco", images=images, size=size, seed=2)
    ann = out / "coco" / "annotations"
    convert_coco([ann / "instances_train.json", ann / "instances_val.json"], out / "mt", images_dir=out / "coco" / "images")
    return out / "mt" / "data.yaml"


def real_batch(data_yaml: Path, imgsz: int, batch: int):
    """One augmented training batch from a multitask dataset, as the trainer would see it."""
    from mttrain._ultralytics import DEFAULT_CFG
    from mttrain.data import build_multitask_dataset, load_multitask_data

    cfg = DEFAULT_CFG.__class__(**{**vars(DEFAULT_CFG), "imgsz": imgsz})
    data = load_multitask_data(data_yaml)
    ds = build_multitask_dataset(cfg, data["train"], batch, data, mode="train", stride=32)
    items = [ds[i] for i in range(batch)]
    b = ds.collate_fn(items)
    b["img"] = b["img"].float() / 255
    return b, data


def train_step_time(data_yaml: Path, imgsz: int, batch: int, steps: int) -> dict[str, float]:
    """Median seconds per training step of multitask and yolov8n-seg on the same batch."""
    from mttrain._ultralytics import DEFAULT_CFG

    b, data = real_batch(data_yaml, imgsz, batch)
    models = build_models(nc_seg=data["nc"], nc_pose=1, kpt_shape=tuple(data["kpt_shape"]))
    models["multitask"].kpt_names = data["kpt_names"]
    out = {}
    for name in ("multitask", "seg"):
        model = models[name].train()
        model.args = copy.copy(DEFAULT_CFG)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        times = []
        for step in range(steps + 2):
            start = time.perf_counter()
            loss, _ = model.loss(b)
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            if step >= 2:  # the first steps build anchors and criterion
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def learn(work: Path, images: int, size: int, epochs: int, batch: int, seeds: list[int], sets: list[str]) -> str:
    """Train multitask, yolov8n-seg and yolov8n-pose on each set and seed; return the tables."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import learning

    runs = []
    for set_name in sets:
        learning.prepare(work, set_name, train=images, val=max(4, images // 5), size=size)
        for seed in seeds:
            for kind in learning.MODELS:
                runs.append(learning.run(work, set_name, kind, seed, epochs, size, batch))
    return learning.tables(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="v8",
                        help="v8: yolov8n models; 26: yolo26n models (both branches) and yolov8n-multitask")
    parser.add_argument("--latency-only", action="store_true", help="only (a)")
    parser.add_argument("--learn", action="store_true", help="also run (c), the equal-budget learning comparison")
    parser.add_argument("--learn-images", type=int, default=200)
    parser.add_argument("--learn-size", type=int, default=160)
    parser.add_argument("--learn-epochs", type=int, default=30)
    parser.add_argument("--learn-batch", type=int, default=16)
    parser.add_argument("--learn-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--learn-sets", nargs="+", default=["synth", "planes"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    branches = [False, True] if args.family != "v8" else [False]
    for end2end in branches:
        branch = {False: "one-to-many (NMS after)", True: "one-to-one (nms=False, no NMS)"}[end2end]
        print(f"(a) CPU latency, {FAMILIES[args.family]}, {args.imgsz} px, batch 1, {args.threads} threads, fused, "
              f"median of {args.repeats}" + (f", {branch}" if args.family != "v8" else ""))
        ms = latency(args.repeats, args.imgsz, args.family, end2end)
        for name, value in ms.items():
            print(f"    {name:<12} {value:8.1f} ms")
        vs_both = ms["multitask"] / (ms["seg"] + ms["pose"])
        vs_seg = ms["multitask"] / ms["seg"]
        print(f"    multitask / (seg + pose) = {vs_both:.2f}x (target <= 0.70x)  {'PASS' if vs_both <= 0.70 else 'MISS'}")
        print(f"    multitask / seg          = {vs_seg:.2f}x (target <= 1.15x)  {'PASS' if vs_seg <= 1.15 else 'MISS'}")
        if "v8-multitask" in ms:
            print(f"    multitask / v8-multitask = {ms['multitask'] / ms['v8-multitask']:.2f}x")
    if args.latency_only:
        return

    with tempfile.TemporaryDirectory(prefix="mt-bench-model-") as tmp:
        work = Path(tmp)
        data_yaml = synthetic_multitask(work / "step", images=16, size=args.train_imgsz)
        print(f"\n(b) training step, {args.train_imgsz} px, batch {args.train_batch}, median of {args.steps}")
        steps = train_step_time(data_yaml, args.train_imgsz, args.train_batch, args.steps)
        for name, value in steps.items():
            print(f"    {name:<10} {value * 1000:8.1f} ms/step")
        ratio = steps["multitask"] / steps["seg"]
        print(f"    multitask / seg = {ratio:.2f}x (target <= 1.15x)  {'PASS' if ratio <= 1.15 else 'MISS'}")

        if args.learn:
            print(f"\n(c) learning at equal budget: {args.learn_images} images, {args.learn_size} px, {args.learn_epochs} epochs, "
                  f"batch {args.learn_batch}, seeds {args.learn_seeds}")
            print(learn(work / "learn", args.learn_images, args.learn_size, args.learn_epochs, args.learn_batch,
                        args.learn_seeds, args.learn_sets))


if __name__ == "__main__":
    main()
