"""Benchmark: how long a user waits for a one-line error from ``mttrain`` (time-to-error).

Each case runs ``python -m mttrain.cli ARGS`` in a fresh interpreter, ``--repeat`` times, and reports the median
wall time (process start to exit, imports included: that is what the user waits for), the exit code and the
number of lines printed. In the same run, the peer: ultralytics' own command line (``yolo``) on the same
mistakes, and the floor of any error that comes after the heavy imports (``import torch, ultralytics``). The
ratio printed is ultralytics' time over mttrain's (higher is better).

``--tree PATH`` measures the mttrain of another checkout (e.g. an older commit, ``git archive`` into a folder),
for before/after figures from the same script.

Usage::

    .venv/bin/python benchmarks/cli_errors.py [--repeat 5] [--tree PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cases(work: Path) -> list[tuple[str, list[str], list[str] | None]]:
    """(what, mttrain args, the same mistake for ultralytics' CLI or None)."""
    data = work / "multitask" / "data.yaml"
    pose = work / "pose" / "data.yaml"
    return [
        ("fit: data.yaml not found", ["fit", "missing.yaml"], ["train", "data=missing.yaml", "model=yolov8n-seg.yaml"]),
        ("fit: a pose dataset", ["fit", str(pose), "--epochs", "1"], None),
        ("fit: --weights not found", ["fit", str(data), "--weights", "nope.pt"], None),
        ("fit: lr0=abc", ["fit", str(data), "lr0=abc"], ["train", f"data={data}", "model=yolov8n-seg.yaml", "lr0=abc"]),
        ("fit: unknown key epoch=3", ["fit", str(data), "epoch=3"], ["train", f"data={data}", "epoch=3"]),
        ("val: weights not found", ["val", "nope.pt"], ["val", "model=nope.pt", f"data={data}"]),
        ("predict: weights not found", ["predict", "nope.pt", str(work)], ["predict", "model=nope.pt", f"source={work}"]),
        ("export: weights not found", ["export", "nope.pt"], ["export", "model=nope.pt"]),
    ]


def timed(command: list[str], env: dict, work: Path, repeat: int) -> tuple[float, int, int, int]:
    """(median seconds, exit code, lines printed, characters printed); each run in a fresh current folder, so
    that no run folder a previous run left changes the error."""
    times, code, lines, chars = [], 0, 0, 0
    for _ in range(repeat):
        cwd = tempfile.mkdtemp(dir=work)
        start = time.perf_counter()
        run = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
        output = run.stdout + run.stderr
        code, lines, chars = run.returncode, len([x for x in output.splitlines() if x.strip()]), len(output)
    return statistics.median(times), code, lines, chars


def make_datasets(work: Path) -> None:
    sys.path.insert(0, str(REPO))
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth

    write_synth(work / "coco", images=4, size=64, seed=0)
    for task in ("multitask", "pose"):
        convert_coco([work / "coco" / "annotations" / "instances_train.json"], work / task,
                     images_dir=work / "coco" / "images", task=task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose mttrain is measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_datasets(work)
        env = {**os.environ, "PYTHONPATH": str(args.tree.resolve()), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}
        floor, *_ = timed([sys.executable, "-c", "import torch, ultralytics"], env, work, args.repeat)
        yolo = [sys.executable, "-c", "import sys; from ultralytics.cfg import entrypoint; sys.argv[0] = 'yolo'; entrypoint()"]
        print(f"mttrain from {args.tree}; median of {args.repeat}; `import torch, ultralytics` alone: {floor:.2f} s")
        print(f"{'case':28} {'mttrain s':>9} {'exit':>4} {'lines':>5} {'chars':>5}   {'yolo s':>6} {'exit':>4} "
              f"{'lines':>5}  yolo/mttrain")
        for what, mt_args, yolo_args in cases(work):
            mt = timed([sys.executable, "-m", "mttrain.cli", *mt_args], env, work, args.repeat)
            row = f"{what:28} {mt[0]:9.2f} {mt[1]:4d} {mt[2]:5d} {mt[3]:5d}"
            if yolo_args:
                peer = timed([*yolo, *yolo_args], env, work, args.repeat)
                row += f"   {peer[0]:6.2f} {peer[1]:4d} {peer[2]:5d}  {peer[0] / mt[0]:.1f}x"
            print(row)


if __name__ == "__main__":
    main()
