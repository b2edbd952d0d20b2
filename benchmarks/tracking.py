"""Benchmark: tracking masks and keypoints through a synthetic video, scored against its ground truth.

`mtdata synth --video` renders a clip of moving stars (5 keypoints) and discs with ground-truth track ids; a
tiny model is trained on every other frame of it (the benchmark measures the tracking pipeline, not how a
detector generalizes), then `mttrain track --save-json` follows the objects through the whole clip. The tracks
are scored with motmetrics (MOTA, IDF1, ID switches; a match needs box IoU >= 0.5 and the same class) and the
keypoints with OKS per ground-truth track (matched frames only; the sigmas the validator uses: uniform 1/K for
K != 17). It also prints frames per second, with and without `--smooth`, and the keypoint jitter smoothing
removes, and the peak memory of `predict(stream=True)` on a short and a long video.

    .venv/bin/python benchmarks/tracking.py                 # 64-frame clip, 20 epochs; ~4 min on 2 CPUs
    .venv/bin/python benchmarks/tracking.py --quick         # no memory runs
    .venv/bin/python benchmarks/tracking.py --model best.pt --video DIR   # score a model on a clip of yours
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtdata.synth_video import VideoSpec, read_tracks, write_synth_video  # noqa: E402


def class_ids(annotations: Path) -> dict[int, int]:
    """COCO category id -> multitask class id, as ``mtdata convert`` numbers them (sorted by id)."""
    coco = json.loads(Path(annotations).read_text())
    return {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}


def predicted_frames(tracks_json: Path) -> dict[int, list[dict]]:
    """``mttrain track --save-json`` output by frame: ``{frame: [detection with track_id]}``."""
    frames: dict[int, list[dict]] = {}
    for track in json.loads(Path(tracks_json).read_text())["tracks"]:
        for d in track["detections"]:
            frames.setdefault(d["frame"], []).append({**d, "track_id": track["track_id"]})
    return frames


def _xywh(box_xyxy) -> list[float]:
    x1, y1, x2, y2 = box_xyxy
    return [x1, y1, x2 - x1, y2 - y1]


def score(annotations: Path, tracks_json: Path, min_iou: float = 0.5) -> dict:
    """MOTA, IDF1, ID switches (motmetrics) and OKS per ground-truth track of ``tracks_json`` against the COCO
    video ground truth ``annotations``."""
    import motmetrics as mm
    import torch
    from pycocotools import mask as mask_utils

    from mttrain._ultralytics import OKS_SIGMA, kpt_iou

    truth = read_tracks(annotations)
    to_class = class_ids(annotations)
    predicted = predicted_frames(tracks_json)
    acc = mm.MOTAccumulator(auto_id=False)
    pairs: dict[int, list[tuple[dict, dict]]] = {}  # gt track -> (gt annotation, matched detection) per frame
    for frame in sorted(truth):
        gt = list(truth[frame].values())
        hyp = predicted.get(frame, [])
        distances = np.full((len(gt), len(hyp)), np.nan)
        if gt and hyp:
            iou = mask_utils.iou([_xywh(h["box_xyxy"]) for h in hyp], [g["bbox"] for g in gt], [0] * len(gt)).T
            same = np.array([[to_class[g["category_id"]] == h["class"] for h in hyp] for g in gt])
            ok = (iou >= min_iou) & same
            distances[ok] = 1 - iou[ok]
        acc.update([g["track_id"] for g in gt], [h["track_id"] for h in hyp], distances, frameid=frame)
        events = acc.mot_events.loc[frame] if frame in acc.mot_events.index.get_level_values(0) else None
        if events is None:
            continue
        by_gt = {g["track_id"]: g for g in gt}
        by_hyp = {h["track_id"]: h for h in hyp}
        for _, event in events[events.Type.isin(["MATCH", "SWITCH"])].iterrows():
            pairs.setdefault(int(event.OId), []).append((by_gt[int(event.OId)], by_hyp[int(event.HId)]))
    names = ["mota", "idf1", "num_switches", "precision", "recall", "mostly_tracked", "num_unique_objects",
             "num_false_positives", "num_misses", "num_frames"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="all").iloc[0].to_dict()
    oks = {}
    for track_id, matched in sorted(pairs.items()):
        with_kpts = [(g, h) for g, h in matched if "keypoints" in g and h.get("keypoints")]
        if not with_kpts:
            continue
        k = len(with_kpts[0][1]["keypoints"])
        sigma = OKS_SIGMA if k == 17 else np.ones(k) / k
        gt_k = torch.tensor(np.array([np.reshape(g["keypoints"], (-1, 3)) for g, _ in with_kpts]), dtype=torch.float32)
        pr_k = torch.tensor(np.array([h["keypoints"] for _, h in with_kpts]), dtype=torch.float32)
        area = torch.tensor([g["area"] for g, _ in with_kpts], dtype=torch.float32)
        sigma = [float(v) for v in sigma]
        per_frame = torch.stack([kpt_iou(gt_k[i : i + 1], pr_k[i : i + 1], area[i : i + 1], sigma)[0, 0]
                                 for i in range(len(with_kpts))])
        oks[track_id] = float(per_frame.mean())
    ids_per_gt = {t: len({h["track_id"] for _, h in m}) for t, m in pairs.items()}
    return {"mota": float(summary["mota"]), "idf1": float(summary["idf1"]),
            "id_switches": int(summary["num_switches"]), "precision": float(summary["precision"]),
            "recall": float(summary["recall"]), "mostly_tracked": int(summary["mostly_tracked"]),
            "gt_tracks": int(summary["num_unique_objects"]), "false_positives": int(summary["num_false_positives"]),
            "misses": int(summary["num_misses"]), "frames": int(summary["num_frames"]),
            "oks_per_track": oks, "predicted_ids_per_gt_track": ids_per_gt}


def keypoint_jitter(tracks_json: Path) -> float:
    """Mean |second difference| of tracked keypoints over consecutive frames, in pixels (lower is smoother)."""
    values = []
    for track in json.loads(Path(tracks_json).read_text())["tracks"]:
        seen = [(d["frame"], np.array(d["keypoints"])[:, :2]) for d in track["detections"] if d.get("keypoints")]
        for (f0, a), (f1, b), (f2, c) in zip(seen, seen[1:], seen[2:]):
            if f1 == f0 + 1 and f2 == f1 + 1:
                values.append(np.abs(c - 2 * b + a).mean())
    return float(np.mean(values)) if values else float("nan")


def make_clip(out: Path, frames: int, size: int, objects: int, seed: int) -> dict[str, Path]:
    """The clip, its frames as images, and a multitask dataset of its odd frames (val: every 8th)."""
    from mtdata.convert.dataset import convert_coco

    files = write_synth_video(out / "clip", VideoSpec(frames=frames, size=size, objects=objects), seed=seed,
                              frames_as_images=True)
    coco = json.loads(files["annotations"].read_text())
    parts = []
    for split, keep in (("train", lambda f: f % 2 == 1), ("val", lambda f: f % 8 == 0)):
        images = [im for im in coco["images"] if keep(im["frame_id"])]
        ids = {im["id"] for im in images}
        part = out / f"{split}.json"
        part.write_text(json.dumps({**coco, "images": images,
                                    "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}))
        parts.append(part)
    convert_coco(parts, out / "dataset", images_dir=out / "clip" / "images" / "video")
    return {**files, "data": out / "dataset" / "data.yaml"}


# A recipe for a tiny clip: AdamW at 5e-3 with a step every batch (nbs = batch: ultralytics would otherwise
# accumulate 64 images per step, 1 step every 2 epochs here) learns the clip in ~15 epochs; ultralytics'
# defaults take 40-60 and, on some seeds, learn one class only.
TRAIN_ARGS = dict(batch=8, nbs=8, optimizer="AdamW", lr0=0.005, workers=0, device="cpu", plots=False, verbose=False,
                  exist_ok=True, mosaic=0.0, warmup_epochs=0, seed=0, deterministic=True)


def train(data: Path, project: Path, epochs: int, imgsz: int) -> Path:
    from mttrain import MultiTaskYOLO

    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.train(data=str(data), epochs=epochs, imgsz=imgsz, project=str(project), name="train", **TRAIN_ARGS)
    return project / "train" / "weights" / "best.pt"


def track(model: Path, video: Path, project: Path, name: str, imgsz: int, *extra: str) -> tuple[Path, float]:
    """Run ``mttrain track --save-json``; returns tracks.json and the frames per second the command printed."""
    command = [sys.executable, "-m", "mttrain.cli", "track", str(model), str(video), "--imgsz", str(imgsz),
               "--save-json", "--no-save", "--project", str(project), "--name", name, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    fps = float(done.stdout.split("(")[-1].split(" frames/s")[0])
    return project / name / "tracks.json", fps


_PEAK_RSS = """
import resource, sys
from mttrain import MultiTaskYOLO
model = MultiTaskYOLO(sys.argv[1])
n = sum(1 for _ in model.predict(sys.argv[2], stream=True, imgsz=int(sys.argv[3]), verbose=False, save=False))
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss(model: Path, video: Path, imgsz: int) -> tuple[int, float]:
    """(frames, peak RSS in MB) of a child process running ``predict(stream=True)`` over ``video``."""
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(model), str(video), str(imgsz)],
                          capture_output=True, text=True, check=True)
    frames, mb = done.stdout.split()[-2:]
    return int(frames), float(mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, help="score this model instead of training one")
    parser.add_argument("--video", type=Path, help="with --model: a folder mtdata synth --video wrote")
    parser.add_argument("--quick", action="store_true", help="skip the memory runs")
    parser.add_argument("--memory-frames", type=int, nargs=2, default=(100, 2000))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mt-tracking-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model, video, annotations = args.model, args.video / "video.avi", args.video / "annotations" / "video.json"
        print(f"model {model}, clip {video}")
    else:
        clip = make_clip(work, args.frames, args.size, args.objects, args.seed)
        start = time.perf_counter()
        model = train(clip["data"], work / "runs", args.epochs, args.size)
        video, annotations = clip["video"], clip["annotations"]
        print(f"clip: {args.frames} frames, {args.size} px, {args.objects} objects (seed {args.seed}); trained "
              f"{args.epochs} epochs on its odd frames in {time.perf_counter() - start:.0f} s")
    print(f"{'tracker':<24}{'MOTA':>7}{'IDF1':>7}{'IDsw':>6}{'prec':>7}{'recall':>7}{'OKS':>7}{'fps':>7}{'jitter px':>11}")
    for label, extra in (("bytetrack", ()), ("bytetrack --smooth", ("--smooth",)),
                         ("botsort", ("--tracker", "botsort.yaml"))):
        tracks_json, fps = track(model, video, work / "runs", label.replace(" --", "-"), args.size, *extra)
        s = score(annotations, tracks_json)
        oks = np.mean(list(s["oks_per_track"].values())) if s["oks_per_track"] else float("nan")
        print(f"{label:<24}{s['mota']:>7.3f}{s['idf1']:>7.3f}{s['id_switches']:>6d}{s['precision']:>7.3f}"
              f"{s['recall']:>7.3f}{oks:>7.3f}{fps:>7.1f}{keypoint_jitter(tracks_json):>11.2f}")
        print(f"{'':<24}OKS per ground-truth track {json.dumps({k: round(v, 3) for k, v in s['oks_per_track'].items()})}; "
              f"predicted ids per ground-truth track {json.dumps(s['predicted_ids_per_gt_track'])}")
    if not args.quick:
        print("peak RSS of predict(stream=True), child process, no saving:")
        rss = []
        for n in args.memory_frames:
            files = write_synth_video(work / f"memory-{n}", VideoSpec(frames=n, size=args.size, objects=args.objects),
                                      seed=args.seed)
            frames, mb = peak_rss(model, files["video"], args.size)
            rss.append(mb)
            print(f"  {frames:>6} frames  {mb:8.1f} MB")
        print(f"  long / short {rss[-1] / rss[0]:.3f} (target <= 1.10)  {'ok' if rss[-1] <= 1.1 * rss[0] else 'OVER'}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
