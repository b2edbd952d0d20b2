"""Benchmark: ``mtdata check`` (every rule) against ultralytics' own dataset scan.

Builds a synthetic dataset (default 20,000 small JPEG images, 2-5 objects each: stars with 5
keypoints, discs, 30% of discs in two parts joined by ``mtdata convert``), converted twice from
the same COCO file: as multitask labels (what ``mtdata check`` reads) and as segment labels (what
ultralytics reads). Then, each in its own child process and in the same run:

- ``mtdata.check.dataset.check_dataset(data.yaml)``: every rule, full image decode, content hashes,
  shapely geometry, keypoint rules, leakage across splits; one process per CPU.
- ``ultralytics.data.utils.verify_image_label`` over the same images with the segment labels,
  mapped with ``ThreadPool(NUM_THREADS)`` exactly as ``YOLODataset.cache_labels`` does
  (NUM_THREADS = min(8, cpu_count - 1)). It decodes only image headers (PIL ``verify``).

Each child times its own call (imports excluded) and the parent times the whole child. The
ratio printed is mtdata's throughput over ultralytics' (images per second). Target >= 1.0x.
Both runs read from a warm page cache (every file is read once before timing).

Then one crowded file (``--big-file``, default 20,000 rows): one 640 x 640 image whose label
file holds 20,000 polygons of one class, jittered copies of a few (every row overlaps dozens
of others), checked by both the same way; the figure is seconds and peak memory (the child's
maximum RSS). Every rule runs, near-duplicates included; before the sub-quadratic search a
6,000-row file took 60 s and 2.7 GB, 20,000 rows went past 3 GB.

Usage::

    .venv/bin/python benchmarks/check.py                # 20,000 images of 128 x 128
    .venv/bin/python benchmarks/check.py --images 2000  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET = 1.0

ULTRALYTICS_CHILD = """
import json, resource, sys, time
from itertools import repeat
t0 = time.perf_counter()
from multiprocessing.pool import ThreadPool
from ultralytics.data.utils import verify_image_label
from ultralytics.utils import NUM_THREADS
def cpu():
    return sum(getattr(resource.getrusage(w), a) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for a in ("ru_utime", "ru_stime"))
pairs = json.load(open(sys.argv[1]))
c1 = cpu()
t1 = time.perf_counter()
nc = int(sys.argv[2])
args = zip([p[0] for p in pairs], [p[1] for p in pairs], repeat(""), repeat(False), repeat(nc), repeat(0), repeat(0), repeat(False))
found = corrupt = 0
with ThreadPool(NUM_THREADS) as pool:
    for result in pool.imap(func=verify_image_label, iterable=args):
        found += result[6]
        corrupt += result[8]
t2 = time.perf_counter()
print(f"CALL_SECONDS {t2 - t1:.3f} IMPORT_SECONDS {t1 - t0:.3f} CALL_CPU {cpu() - c1:.3f} THREADS {NUM_THREADS} FOUND {found} CORRUPT {corrupt} "
      f"MAXRSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""

MTDATA_CHILD = """
import resource, sys, time
t0 = time.perf_counter()
from mtdata.check.dataset import check_dataset
def cpu():
    return sum(getattr(resource.getrusage(w), a) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for a in ("ru_utime", "ru_stime"))
c1 = cpu()
t1 = time.perf_counter()
result = check_dataset(sys.argv[1], workers=int(sys.argv[2]) if len(sys.argv) > 2 else None)
t2 = time.perf_counter()
s = result.summary
print(f"CALL_SECONDS {t2 - t1:.3f} IMPORT_SECONDS {t1 - t0:.3f} CALL_CPU {cpu() - c1:.3f} IMAGES {s['images']} ROWS {s['rows']} "
      f"ERRORS {s['errors']} WARNINGS {s['warnings']} FINDINGS {len(result.findings)} "
      f"MAXRSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def build(work: Path, images: int, size: int, seed: int) -> dict:
    """Write the COCO source with images, then convert it to multitask and to segment labels."""
    import cv2

    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import SynthSpec, make_coco

    val = max(4, images // 5)
    stats = {}
    for split, count, split_seed, first in (("train", images - val, seed, 1), ("val", val, seed + 1, 1 + images)):
        spec = SynthSpec(images=count, size=size, objects=(2, 5), multipart_ratio=0.3, star_points=32)
        coco, pixels = make_coco(spec, seed=split_seed, first_image_id=first)
        folder = work / "coco" / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for entry, canvas in zip(coco["images"], pixels):
            cv2.imwrite(str(folder / entry["file_name"]), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        ann = work / "coco" / "annotations" / f"instances_{split}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(coco))
        stats[split] = {"images": count, "objects": len(coco["annotations"])}
    anns = sorted((work / "coco" / "annotations").glob("*.json"))
    convert_coco(anns, work / "mt", images_dir=work / "coco" / "images", task="multitask")
    convert_coco(anns, work / "seg", task="segment")
    return stats


def build_big_file(work: Path, rows: int, seed: int) -> tuple[Path, list[list[str]]]:
    """One 640 x 640 image and a label file of ``rows`` overlapping polygons of class 1 (disc: no keypoints,
    so multitask and segment rows are the same text); returns (data.yaml, ultralytics' pair)."""
    import cv2
    import numpy as np
    import yaml

    rng = np.random.default_rng(seed)
    root = work / "big"
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "val" / "crowd.jpg"), rng.integers(0, 255, (640, 640, 3), dtype=np.uint8))
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    centres = rng.uniform(0.15, 0.85, size=(40, 2))
    lines = []
    for i in range(rows):
        cx, cy = centres[i % len(centres)] + rng.normal(0, 0.003, 2)
        r = 0.1 * (1 + rng.normal(0, 0.02))
        xy = np.clip(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1), 0, 1)
        lines.append("1 " + " ".join(f"{v:.6f}" for v in xy.reshape(-1)))
    label = root / "labels" / "val" / "crowd.txt"
    label.write_text("\n".join(lines) + "\n")
    data = {"path": str(root), "val": "images/val", "names": {0: "figure", 1: "disc"}, "task": "multitask",
            "kpt_shape": [5, 3], "kpt_names": {0: ["a", "b", "c", "d", "e"]}}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml", [[str(root / "images" / "val" / "crowd.jpg"), str(label)]]


def pairs_for_ultralytics(work: Path) -> list[list[str]]:
    """(image, segment label) pairs: the multitask dataset's images with the segment dataset's labels."""
    pairs = []
    for image in sorted((work / "mt" / "images").rglob("*.jpg")):
        split = image.parent.name
        pairs.append([str(image), str(work / "seg" / "labels" / split / f"{image.stem}.txt")])
    return pairs


def warm_cache(paths: list[Path]) -> None:
    for p in paths:
        p.read_bytes()


def run_child(argv: list[str], env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(argv[:3])}\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CALL_SECONDS"))
    tokens = line.split()
    result = {tokens[i].lower(): float(tokens[i + 1]) for i in range(0, len(tokens), 2)}
    result["wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="images in all (a fifth in val; default 20000)")
    parser.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each side; the best is kept (default 2)")
    parser.add_argument("--workers", type=int, default=None, help="mtdata check processes (default: all CPUs)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the dataset here and keep it (default: a temp dir)")
    parser.add_argument("--big-file", type=int, default=20_000, help="rows of the one crowded label file (0: skip; default 20000)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mt-bench-check-") as tmp:
        work = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        if not (work / "mt" / "data.yaml").is_file():
            stats = build(work, args.images, args.size, args.seed)
            print(f"built {args.images} images of {args.size}x{args.size} px: {stats} in {time.perf_counter() - t0:.1f} s")
        pairs = pairs_for_ultralytics(work)
        warm_cache([Path(p) for pair in pairs for p in pair] + sorted((work / "mt" / "labels").rglob("*.txt")))
        env = dict(os.environ)
        env.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(work / "yolo_config"), YOLO_VERBOSE="False")
        pairs_file = work / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))

        mt_argv = [sys.executable, "-c", MTDATA_CHILD, str(work / "mt" / "data.yaml")] + ([str(args.workers)] if args.workers else [])
        ul_argv = [sys.executable, "-c", ULTRALYTICS_CHILD, str(pairs_file), "2"]
        runs = {"mtdata check": [], "ultralytics scan": []}
        for _ in range(args.repeat):  # alternate, so both see the same machine load
            runs["mtdata check"].append(run_child(mt_argv, env))
            runs["ultralytics scan"].append(run_child(ul_argv, env))
        best = {name: min(r, key=lambda x: x["call_seconds"]) for name, r in runs.items()}
        mt, ul = best["mtdata check"], best["ultralytics scan"]
        n = len(pairs)

        print(f"\n{f'run (best of {args.repeat})':<20}{'call s':>9}{'images/s':>10}{'child s':>9}  notes")
        print(f"{'mtdata check':<20}{mt['call_seconds']:>9.2f}{n / mt['call_seconds']:>10.0f}{mt['wall_s']:>9.2f}  "
              f"{int(mt['rows'])} rows, {int(mt['errors'])} errors, {int(mt['warnings'])} warnings, {os.cpu_count()} CPUs")
        print(f"{'ultralytics scan':<20}{ul['call_seconds']:>9.2f}{n / ul['call_seconds']:>10.0f}{ul['wall_s']:>9.2f}  "
              f"{int(ul['found'])} labels found, {int(ul['corrupt'])} corrupt, ThreadPool({int(ul['threads'])})")
        ratio = ul["call_seconds"] / mt["call_seconds"]
        print(f"\nthroughput ratio mtdata / ultralytics: {ratio:.2f}x (target >= {TARGET})  {'ok' if ratio >= TARGET else 'MISSED'}")
        print(f"whole child processes (imports included): {ul['wall_s'] / mt['wall_s']:.2f}x")
        # CPU seconds of the call (workers included) say how much work each does, whatever the load
        print(f"CPU seconds of the call: mtdata {mt['call_cpu']:.2f} ({mt['call_cpu'] / n * 1e6:.0f} us/image), "
              f"ultralytics {ul['call_cpu']:.2f} ({ul['call_cpu'] / n * 1e6:.0f} us/image): "
              f"{ul['call_cpu'] / mt['call_cpu']:.2f}x per CPU second")
        print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(other processes on the machine take CPU from mtdata's second worker)")

        if args.big_file:
            big_yaml, big_pair = build_big_file(work, args.big_file, args.seed)
            big_pairs = work / "big_pairs.json"
            big_pairs.write_text(json.dumps(big_pair))
            mt_big = run_child([sys.executable, "-c", MTDATA_CHILD, str(big_yaml), "1"], env)
            ul_big = run_child([sys.executable, "-c", ULTRALYTICS_CHILD, str(big_pairs), "2"], env)
            print(f"\none label file of {args.big_file:,} overlapping rows of one class (every rule, near-duplicates included):")
            print(f"  mtdata check      {mt_big['call_seconds']:7.2f} s, peak RSS {mt_big['maxrss_mb']:.0f} MB, "
                  f"{int(mt_big['warnings'])} warnings")
            print(f"  ultralytics scan  {ul_big['call_seconds']:7.2f} s, peak RSS {ul_big['maxrss_mb']:.0f} MB "
                  "(parses the rows; no geometry rules)")


if __name__ == "__main__":
    main()
