"""Learning at equal budget: multitask yolov8n against yolov8n-seg and yolov8n-pose, per set and seed.

One set of COCO files is converted by ``mtdata convert`` three times: multitask (all classes, masks
and keypoints), segment (all classes) and pose (the keypoint class only, as a user would train a pose
model beside a segment one). The three models train from scratch with the same settings, then each
is scored twice on the val split:

- ``own``: its own validator, as ``mttrain val`` / ``yolo val`` prints it. The validators differ:
  mttrain's OKS uses each object's segment area (as COCO does) where ultralytics' PoseValidator uses
  0.53 x its box area, and mttrain thresholds upscaled masks at 0.5; so own numbers of different
  models are not directly comparable.
- ``coco``: one referee for all three: the validator's predictions (its NMS, conf 0.001) scored by
  pycocotools' COCOeval against the source COCO val file (``mttrain.coco_eval.run_coco_eval``): the
  same ground truth, OKS areas, sigmas and images for every model. Ratios are taken on these.

Sets: ``synth`` (``mtdata synth``: upright stars and discs, 1-4 apart) and ``planes``
(``benchmarks/synth_other.py``: turned planes and bricks, 2-7 overlapping, wide size range); 200 train and
400 val images each by default (40 val images left one model's spread over seeds as large as a 3% goal).

Architectures: ``--arch yolov8n`` (yolov8n-multitask against yolov8n-seg and yolov8n-pose) or ``yolo26n``
(yolo26n-multitask against yolo26n-seg and yolo26n-pose); tables put each beside the other.

Usage (each ``run`` is one training; runs can go in parallel, each with its own threads)::

    python benchmarks/learning.py prepare WORK --set planes
    python benchmarks/learning.py run WORK --set planes --model multitask --seed 0 --epochs 30
    python benchmarks/learning.py run WORK --set planes --model pose --arch yolo26n --seed 1
    python benchmarks/learning.py table WORK
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("multitask", "seg", "pose")
TASK_OF = {"multitask": "multitask", "seg": "segment", "pose": "pose"}
SETS = ("synth", "planes")
ARCHS = ("yolov8n", "yolo26n")


def model_yaml(arch: str, kind: str) -> str:
    """The model file one run builds from scratch: ``yolo26n-multitask.yaml``, ``yolov8n-seg.yaml``, ..."""
    return f"{arch}-{'multitask' if kind == 'multitask' else kind}.yaml"


def prepare(work: Path, set_name: str, train: int = 200, val: int = 400, size: int = 160) -> dict[str, Path]:
    """Write the set's COCO files and its three datasets under ``work/set_name`` (once); task -> data.yaml.

    A folder written with other sizes is refused, not reused: its scores would not compare with the rest."""
    from mtdata.convert.dataset import convert_coco

    root = work / set_name
    coco = root / "coco"
    spec = {"train": train, "val": val, "size": size}
    spec_file = root / "spec.json"
    if spec_file.is_file() and json.loads(spec_file.read_text()) != spec:
        raise SystemExit(f"{root} holds a set made with {spec_file.read_text().strip()}, not {json.dumps(spec)}; use another WORK")
    if (coco / "annotations").is_dir() and not spec_file.is_file():
        raise SystemExit(f"{root} holds a set of unknown sizes (no spec.json); use another WORK")
    if not (coco / "annotations" / "instances_val.json").is_file():
        if set_name == "synth":
            from mtdata.synth import write_synth

            write_synth(coco, images=train, size=size, seed=1, val=val)
        elif set_name == "planes":
            sys.path.insert(0, str(REPO / "benchmarks"))
            from synth_other import write_other_synth

            write_other_synth(coco, train=train, val=val, size=size, seed=1)
        else:
            raise ValueError(f"unknown set {set_name!r}; sets: {', '.join(SETS)}")
        spec_file.write_text(json.dumps(spec))
    files = [coco / "annotations" / "instances_train.json", coco / "annotations" / "instances_val.json"]
    out = {}
    for task in TASK_OF.values():
        if not (root / task / "data.yaml").is_file():
            convert_coco(files, root / task, images_dir=coco / "images", task=task)
        out[task] = root / task / "data.yaml"
    return out


def train_args(epochs: int, imgsz: int, batch: int, seed: int, project: Path, name: str, **extra) -> dict[str, Any]:
    """The settings every model trains with (from scratch: no weights, nothing downloaded)."""
    return dict(epochs=epochs, imgsz=imgsz, batch=batch, workers=0, device="cpu", seed=seed, deterministic=True,
                plots=False, project=str(project), name=name, exist_ok=True, warmup_epochs=1, close_mosaic=5,
                verbose=False, pretrained=False, **extra)


def _referee(base):
    """``base`` validator whose predictions (save_json) are scored by COCOeval against the source COCO file."""
    from mtdata.export import dataset_ids
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mtdata.keypoints import default_sigmas
    from mttrain._ultralytics import no_requirement_installs
    from mttrain.coco_eval import prediction_results, run_coco_eval

    class Referee(base):
        def init_metrics(self, model):
            with no_requirement_installs():  # save_json: scored with pycocotools, never faster-coco-eval
                super().init_metrics(model)
            self.mt_config = read_data_yaml(self.args.data)
            self.mt_ids = dataset_ids(self.mt_config, "val")
            self.coco_metrics = None

        def pred_to_json(self, predn, pbatch):
            image_id = self.mt_ids.image_ids[os.path.abspath(pbatch["im_file"])]
            masks = predn.get("masks")
            keypoints = predn.get("keypoints")
            self.jdict += prediction_results(  # ultralytics writes jdict to predictions.json, then calls eval_json
                predn["bboxes"].cpu().numpy(), predn["conf"].cpu().numpy(), predn["cls"].cpu().numpy(),
                None if masks is None else masks.cpu().numpy(), None if keypoints is None else keypoints.cpu().numpy(),
                image_id, self.mt_ids.category_ids, set(self.mt_ids.category_ids) if keypoints is not None else set(),
            )

        def eval_json(self, stats):
            k = self.mt_config.kpt_shape[0] if self.mt_config.kpt_shape else 0
            sigmas = default_sigmas(k) if k else None  # what mttrain's validator uses without data.yaml kpt_sigmas
            self.coco_metrics = run_coco_eval(self.mt_config, "val", Path(self.save_dir), self.jdict,
                                              self.dataloader.dataset.im_files, sigmas, self.mt_ids)
            return stats

    return Referee


def validate(kind: str, weights: Path, data_yaml: Path, imgsz: int, save_dir: Path, save_json: bool):
    """Run the model's own validator (``save_json``: with the COCOeval referee); returns the validator."""
    args = dict(data=str(data_yaml), imgsz=imgsz, batch=16, device="cpu", plots=False, save_json=save_json, rect=True,
                workers=0, verbose=False, task=TASK_OF[kind], mode="val")
    if kind == "multitask":
        from mttrain.model import MultiTaskYOLO
        from mttrain.val import MultiTaskValidator

        model, validator = MultiTaskYOLO(weights).model, MultiTaskValidator(args=args, save_dir=save_dir)
    else:
        from ultralytics import YOLO
        from ultralytics.models.yolo.pose import PoseValidator
        from ultralytics.models.yolo.segment import SegmentationValidator

        base = SegmentationValidator if kind == "seg" else PoseValidator
        model, validator = YOLO(weights).model, (_referee(base) if save_json else base)(args=args, save_dir=save_dir)
    validator(model=model)
    return validator


def _metric_dict(metric) -> dict[str, Any]:
    names = getattr(metric, "names", None)
    per_class = {int(c): float(v) for c, v in zip(metric.ap_class_index, metric.ap)} if len(metric.ap_class_index) else {}
    return {"map50_95": float(metric.map), "map50": float(metric.map50), "per_class": per_class, **({"names": names} if names else {})}


def own_metrics(kind: str, validator) -> dict[str, Any]:
    m = validator.metrics
    out = {"box": _metric_dict(m.box)}
    if kind in ("multitask", "seg"):
        out["mask"] = _metric_dict(m.seg)
    if kind in ("multitask", "pose"):
        out["pose"] = _metric_dict(m.pose)
    return out


def confusion(results: list[dict], gt_path: Path, image_ids: list[int], conf: float = 0.25, iou: float = 0.5):
    """Class confusion at ``conf``: {gt category: {predicted category | "missed": count}} plus unmatched
    predictions per category, matching greedily by score to any-class ground truth boxes (box IoU >= ``iou``).
    Ground truth of every category counts, so a pose-only model's plane predicted on a brick shows up."""
    import numpy as np

    from mtdata.geometry import boxes_iou

    coco = json.loads(gt_path.read_text())
    wanted = set(image_ids)
    table: dict[str, dict[str, int]] = {}
    background: dict[str, int] = {}
    gts: dict[int, list] = {}
    for a in coco["annotations"]:
        if a["image_id"] in wanted and not a.get("iscrowd"):
            gts.setdefault(a["image_id"], []).append(a)
    preds: dict[int, list] = {}
    for r in results:
        if r["score"] >= conf and r["image_id"] in wanted:
            preds.setdefault(r["image_id"], []).append(r)
    xyxy = lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]  # noqa: E731
    for image_id in wanted:
        g = gts.get(image_id, [])
        p = sorted(preds.get(image_id, []), key=lambda r: -r["score"])
        taken = set()
        if g and p:
            ious = boxes_iou(np.array([xyxy(r["bbox"]) for r in p]), np.array([xyxy(a["bbox"]) for a in g]))
        for i, r in enumerate(p):
            j = None
            if g:
                order = [j for j in np.argsort(-ious[i]) if ious[i, j] >= iou and j not in taken]
                j = order[0] if order else None
            if j is None:
                background[str(r["category_id"])] = background.get(str(r["category_id"]), 0) + 1
                continue
            taken.add(j)
            row = table.setdefault(str(g[j]["category_id"]), {})
            row[str(r["category_id"])] = row.get(str(r["category_id"]), 0) + 1
        for j, a in enumerate(g):
            if j not in taken:
                row = table.setdefault(str(a["category_id"]), {})
                row["missed"] = row.get("missed", 0) + 1
    return {"gt_to_pred": table, "unmatched_pred": background, "conf": conf, "iou": iou}


def read_losses(results_csv: Path) -> list[dict[str, float]]:
    with results_csv.open() as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run(work: Path, set_name: str, kind: str, seed: int, epochs: int, imgsz: int, batch: int, tag: str = "",
        extra: dict[str, Any] | None = None, arch: str = "yolov8n") -> dict[str, Any]:
    """Train one model on one set with one seed; score it; write and return ``runs/<name>.json``."""
    datasets = prepare(work, set_name, size=imgsz)
    data_yaml = datasets[TASK_OF[kind]]
    name = f"{set_name}-{'' if arch == 'yolov8n' else arch + '-'}{kind}-s{seed}{'-' + tag if tag else ''}"
    project = work / "runs"
    start = time.perf_counter()
    args = train_args(epochs, imgsz, batch, seed, project, name, **(extra or {}))
    if kind == "multitask":
        from mttrain.model import MultiTaskYOLO

        MultiTaskYOLO(model_yaml(arch, kind)).train(data=str(data_yaml), **args)
    else:
        from ultralytics import YOLO

        YOLO(model_yaml(arch, kind), task=TASK_OF[kind]).train(data=str(data_yaml), **args)
    seconds = time.perf_counter() - start
    weights = project / name / "weights" / "best.pt"
    own = validate(kind, weights, data_yaml, imgsz, project / f"{name}-val", save_json=False)
    ref = validate(kind, weights, data_yaml, imgsz, project / f"{name}-coco", save_json=True)
    results = json.loads((project / f"{name}-coco" / "predictions.json").read_text())
    gt = Path(ref.coco_metrics["ground_truth"])
    ids = sorted(ref.mt_ids.image_ids.values()) if hasattr(ref, "mt_ids") else sorted(ref.coco_ids.image_ids.values())
    out = {
        "set": set_name, "arch": arch, "model": kind, "seed": seed, "tag": tag, "epochs": epochs, "imgsz": imgsz, "batch": batch,
        "extra": extra or {}, "train_seconds": round(seconds, 1),
        "own": own_metrics(kind, own),
        "coco": {k: v for k, v in ref.coco_metrics.items() if k in ("box", "mask", "pose")},
        "confusion": confusion(results, gt, ids),
        "losses": read_losses(project / name / "results.csv"),
    }
    (project / f"{name}.json").write_text(json.dumps(out, indent=1))
    return out


def _arch(run_: dict[str, Any]) -> str:
    return run_.get("arch", "yolov8n")  # runs written before --arch were all yolov8n


def load_runs(work: Path, tag: str = "") -> list[dict[str, Any]]:
    """The runs of experiment ``tag``; a model the experiment did not train (an experiment on the multitask
    model only) comes from the untagged runs, so its table still compares against the single-task models."""
    runs = [json.loads(p.read_text()) for p in sorted((work / "runs").glob("*.json"))]
    tagged = [r for r in runs if r.get("tag", "") == tag]
    trained = {(r["set"], _arch(r), r["model"]) for r in tagged}
    return tagged + [r for r in runs if r.get("tag", "") == "" and (r["set"], _arch(r), r["model"]) not in trained]


def _scores(rows: list[dict[str, Any]], kind: str, task: str, referee: str) -> dict[int, float]:
    """seed -> ``task`` mAP50-95 of the ``kind`` runs among ``rows``."""
    return {r["seed"]: r[referee][task]["map50_95"] for r in rows if r["model"] == kind and task in r[referee]}


def _means(rows: list[dict[str, Any]], kind: str, task: str, seeds: list[int], referee: str):
    by_seed = _scores(rows, kind, task, referee)
    values = [by_seed.get(s) for s in seeds]
    got = [v for v in values if v is not None]
    return values, (statistics.fmean(got) if got else None), ((max(got) - min(got)) if got else None)


def tables(runs: list[dict[str, Any]], referee: str = "coco") -> str:
    """One table per set and architecture: mAP50-95 per model and seed, mean, spread (max - min), multitask /
    single-task; where both architectures ran, yolo26n-multitask / yolov8n-multitask on the seeds both ran."""
    lines = []
    for set_name in sorted({r["set"] for r in runs}):
        multitask_scores = {}
        for arch in [a for a in ARCHS if any(_arch(r) == a and r["set"] == set_name for r in runs)]:
            rows = [r for r in runs if r["set"] == set_name and _arch(r) == arch]
            seeds = sorted({r["seed"] for r in rows})
            lines.append(f"set {set_name}, {arch} ({referee} mAP50-95; seeds {', '.join(map(str, seeds))})")
            lines.append(f"  {'task':<5} {'model':<10} " + " ".join(f"{'s' + str(s):>6}" for s in seeds)
                         + f" {'mean':>6} {'spread':>6} {'ratio':>6}")
            for task, single in (("mask", "seg"), ("pose", "pose")):
                means = {}
                for kind in ("multitask", single):
                    values, means[kind], spread = _means(rows, kind, task, seeds, referee)
                    ratio = ""
                    if kind != "multitask" and means.get("multitask") is not None and means[kind]:
                        r_ = means["multitask"] / means[kind]
                        ratio = f"{r_:.3f}x {'PASS' if r_ >= 0.97 else 'MISS'}"
                    cells = " ".join(f"{v:6.3f}" if v is not None else f"{'-':>6}" for v in values)
                    lines.append(f"  {task:<5} {kind:<10} {cells} {_f(means[kind])} {_f(spread)} {ratio:>6}")
                multitask_scores[arch, task] = _scores(rows, "multitask", task, referee)
            lines.append("")
        for task in ("mask", "pose"):
            new, old = multitask_scores.get(("yolo26n", task), {}), multitask_scores.get(("yolov8n", task), {})
            both = sorted(set(new) & set(old))
            if both:
                a, b = statistics.fmean(new[s] for s in both), statistics.fmean(old[s] for s in both)
                lines.append(f"  {task}: yolo26n-multitask {a:.3f} / yolov8n-multitask {b:.3f} = "
                             f"{a / b if b else float('nan'):.3f}x (seeds {', '.join(map(str, both))})")
        if lines[-1]:
            lines.append("")
    return "\n".join(lines)


def _f(v) -> str:
    return f"{v:6.3f}" if v is not None else f"{'-':>6}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("work", type=Path)
    p.add_argument("--set", choices=SETS, required=True)
    p.add_argument("--imgsz", type=int, default=160)
    r = sub.add_parser("run")
    r.add_argument("work", type=Path)
    r.add_argument("--set", choices=SETS, required=True)
    r.add_argument("--model", choices=MODELS, required=True)
    r.add_argument("--arch", choices=ARCHS, default="yolov8n")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--imgsz", type=int, default=160)
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--tag", default="", help="name suffix for an experiment (tables group runs by tag)")
    r.add_argument("overrides", nargs="*", help="KEY=VALUE training arguments of the experiment")
    t = sub.add_parser("table")
    t.add_argument("work", type=Path)
    t.add_argument("--tag", default="")
    t.add_argument("--referee", choices=("coco", "own"), default="coco")
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        print(prepare(args.work, args.set, size=args.imgsz))
    elif args.cmd == "run":
        import torch

        torch.set_num_threads(args.threads)
        extra = {}
        for item in args.overrides:
            key, _, value = item.partition("=")
            import yaml

            extra[key] = yaml.safe_load(value)
        out = run(args.work, args.set, args.model, args.seed, args.epochs, args.imgsz, args.batch, args.tag, extra, args.arch)
        print(json.dumps({k: out[k] for k in ("set", "arch", "model", "seed", "train_seconds", "own", "coco")}, indent=1))
    else:
        print(tables(load_runs(args.work, args.tag), args.referee))


if __name__ == "__main__":
    main()
