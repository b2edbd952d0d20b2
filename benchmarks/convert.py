"""Benchmark: ``mtdata convert --task multitask`` against ultralytics' ``convert_coco``.

Builds a synthetic COCO file (default 20,000 images, ~120,000 annotations: half persons with
17 keypoints, ~32-point polygons, some multi-part discs, a few crowd RLE masks), then runs,
each in its own child process and in the same run:

- ``mtdata convert ANN OUT --task multitask`` (the CLI, labels only),
- ``ultralytics.data.converter.convert_coco(labels_dir, use_segments=True)``,
- ``ultralytics.data.converter.convert_coco(labels_dir, use_keypoints=True)``.

and prints each child's wall time and peak RSS (``os.wait4``), and the ratios of mtdata to
ultralytics. Targets (issue 2): multitask <= 0.33x ultralytics' segment-only time and
<= 0.5x its peak memory. ultralytics does one task per run; mtdata writes both at once.
Neither tool places images here (ultralytics' converter does not), so both write labels only.

ultralytics runs with YOLO_OFFLINE=1 (no DNS checks, no pip installs) and its settings in a
fresh YOLO_CONFIG_DIR under the work folder; the crowd RLE masks are crowd annotations, which
both tools skip, so ultralytics never asks for faster-coco-eval.

Usage::

    .venv/bin/python benchmarks/convert.py                       # full size
    .venv/bin/python benchmarks/convert.py --images 2000         # quick
    .venv/bin/python benchmarks/convert.py --repeat 3 --workdir /tmp/bench   # best of 3, input kept
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_TIME = 0.33
TARGET_MEMORY = 0.5

# The ultralytics child times its own call too, so the report can separate import start-up.
ULTRALYTICS_CHILD = """
import sys, time
t0 = time.perf_counter()
from ultralytics.data.converter import convert_coco
t1 = time.perf_counter()
convert_coco(labels_dir=sys.argv[1], save_dir=sys.argv[2], cls91to80=False, **{sys.argv[3]: True})
t2 = time.perf_counter()
print(f"CALL_SECONDS {t2 - t1:.3f} IMPORT_SECONDS {t1 - t0:.3f}")
"""


def build_coco(images: int, size: int, seed: int, path: Path) -> dict:
    from mtdata.synth import SynthSpec, make_coco

    spec = SynthSpec(
        images=images, size=size, objects=(5, 7), person_keypoints=True, multipart_ratio=0.2, crowd_ratio=0.03,
        star_points=32,
    )
    coco, _ = make_coco(spec, seed=seed, draw=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    anns = coco["annotations"]
    return {
        "images": len(coco["images"]),
        "annotations": len(anns),
        "persons": sum(a["category_id"] == 3 for a in anns),
        "multipart": sum(isinstance(a["segmentation"], list) and len(a["segmentation"]) > 1 for a in anns),
        "crowd_rle": sum(bool(a["iscrowd"]) for a in anns),
        "mean_polygon_points": sum(len(p) // 2 for a in anns if isinstance(a["segmentation"], list) for p in a["segmentation"])
        / max(1, sum(isinstance(a["segmentation"], list) for a in anns)),
        "json_mb": path.stat().st_size / 1e6,
    }


def run_child(argv: list[str], env: dict, log: Path) -> dict:
    """Run one child; return wall seconds, peak RSS (MB) and its stdout (stderr goes to ``log``)."""
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux), not the max over all children.
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"child failed ({code}): {' '.join(argv)}\n{log.read_text()[-3000:]}")
    result = {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "stdout": out}
    for line in out.splitlines():
        if line.startswith("CALL_SECONDS"):
            result["call_s"] = float(line.split()[1])
    return result


def count_rows(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.rglob("*.txt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="synthetic images (default 20000, ~6 objects each)")
    parser.add_argument("--size", type=int, default=640, help="image width and height (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: a temp dir)")
    parser.add_argument("--outputs", type=Path, default=None,
                        help="write every tool's output here (e.g. /dev/shm, to time the work without the disk); default --workdir")
    parser.add_argument("--skip-ultralytics", action="store_true", help="time mtdata only")
    parser.add_argument("--repeat", type=int, default=1, help="run each tool N times (interleaved) and keep its fastest run")
    parser.add_argument("--build-to", type=Path, help=argparse.SUPPRESS)  # internal: the child that writes the input
    args = parser.parse_args()
    if args.build_to:
        print(json.dumps(build_coco(args.images, args.size, args.seed, args.build_to)))
        return

    with tempfile.TemporaryDirectory(prefix="mt-bench-convert-") as tmp:
        work = args.workdir or Path(tmp)
        ann = work / "annotations" / "instances_train.json"
        t0 = time.perf_counter()
        spec_file = work / "bench_spec.json"  # not beside the annotations: ultralytics reads every *.json there
        spec = {"images": args.images, "size": args.size, "seed": args.seed}
        if ann.is_file() and spec_file.is_file() and json.loads(spec_file.read_text())["spec"] == spec:
            stats = json.loads(spec_file.read_text())["stats"]  # a kept --workdir: same input as last time
        else:
            # Built in a child: a parent that held the COCO dict would lend its memory high-water
            # mark to every child it starts (Linux carries it over fork + exec into ru_maxrss).
            build = [sys.executable, __file__, "--build-to", str(ann), "--images", str(args.images), "--size", str(args.size),
                     "--seed", str(args.seed)]
            stats = json.loads(subprocess.run(build, check=True, capture_output=True, text=True).stdout)
            spec_file.write_text(json.dumps({"spec": spec, "stats": stats}))
        print(f"built {stats['images']} images, {stats['annotations']} annotations "
              f"({stats['persons']} persons x 17 keypoints, {stats['multipart']} multi-part, {stats['crowd_rle']} crowd RLE, "
              f"{stats['mean_polygon_points']:.1f} points per polygon annotation), {stats['json_mb']:.0f} MB JSON "
              f"in {time.perf_counter() - t0:.1f} s")

        env = dict(os.environ)
        # ultralytics must never reach for the network (pip installs, DNS checks) nor touch ~/.config.
        env.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(work / "yolo_config"), YOLO_VERBOSE="False")
        env.setdefault("OMP_NUM_THREADS", "1")
        mtdata_bin = Path(sys.executable).parent / "mtdata"
        outputs = args.outputs / f"mt-bench-convert-{os.getpid()}" if args.outputs else work
        runs = [("mtdata multitask", [str(mtdata_bin), "convert", str(ann), str(outputs / "mt"), "--task", "multitask"], outputs / "mt")]
        if not args.skip_ultralytics:
            for mode, label in (("use_segments", "ultralytics segments"), ("use_keypoints", "ultralytics keypoints")):
                save = outputs / f"ul_{mode}"
                runs.append((label, [sys.executable, "-c", ULTRALYTICS_CHILD, str(ann.parent), str(save), mode], save))
        results: dict[str, dict] = {}
        for attempt in range(args.repeat):  # interleaved, so that a busy spell on the machine hits every tool
            for label, argv, out in runs:
                shutil.rmtree(out, ignore_errors=True)  # start from nothing (ultralytics would number a new folder)
                # Deleting 20k files leaves the file system busy; flush it, so that no run pays for
                # the one before it. (On ext4 here, creating 20k files still costs 0.1-3 s of system
                # time depending on what was deleted before: --outputs /dev/shm measures without it.)
                os.sync()
                result = run_child(argv, env, work / f"{out.name}.log")
                result["rows"] = count_rows(out / "labels")
                if args.outputs:
                    shutil.rmtree(out)  # tmpfs is memory
                best = results.get(label)
                if best is None or result["wall_s"] < best["wall_s"]:
                    results[label] = result
        print(f"\n{'run':<24}{'wall s':>9}{'call s':>9}{'peak MB':>10}{'rows':>10}")
        for name, r in results.items():
            call = f"{r['call_s']:.2f}" if "call_s" in r else "-"
            print(f"{name:<24}{r['wall_s']:>9.2f}{call:>9}{r['peak_mb']:>10.0f}{r['rows']:>10}")
        if args.skip_ultralytics:
            return
        mt, seg, kpt = results["mtdata multitask"], results["ultralytics segments"], results["ultralytics keypoints"]
        time_ratio = mt["wall_s"] / seg["wall_s"]
        memory_ratio = mt["peak_mb"] / seg["peak_mb"]
        print("\nratios (mtdata multitask / ultralytics), whole child process:")
        print(f"  time   vs segments  {time_ratio:.3f}x  (target <= {TARGET_TIME})  {'ok' if time_ratio <= TARGET_TIME else 'MISSED'}")
        print(f"  time   vs keypoints {mt['wall_s'] / kpt['wall_s']:.3f}x")
        print(f"  time   vs segments + keypoints {mt['wall_s'] / (seg['wall_s'] + kpt['wall_s']):.3f}x")
        print(f"  time   vs segments' convert_coco call alone (no import) {mt['wall_s'] / seg['call_s']:.3f}x")
        print(f"  memory vs segments  {memory_ratio:.3f}x  (target <= {TARGET_MEMORY})  {'ok' if memory_ratio <= TARGET_MEMORY else 'MISSED'}")
        print(f"  memory vs keypoints {mt['peak_mb'] / kpt['peak_mb']:.3f}x")


if __name__ == "__main__":
    main()
