"""Benchmark: ``mtdata convert`` of a Labelme folder against ``labelme2coco`` + ``mtdata convert`` and the COCO path.

Writes a synthetic dataset (default 20,000 images of 200 x 100, ~1.5 objects each: persons with 3 keypoints
and balls, one Labelme file per image with group ids, the images hard links of one JPEG beside them) and the
COCO file it was written from, then runs, each in its own child process:

- ``mtdata convert LABELME_DIR OUT`` (images beside the files, linked into OUT),
- ``labelme2coco`` (``get_coco_from_labelme_folder`` + ``save_json``), then ``mtdata convert`` of its COCO file,
  when labelme2coco imports (``--labelme2coco-path`` adds a folder holding it and sahi to its PYTHONPATH);
  it turns each point into a 1-pixel box object, so its dataset is not the same, only the work,
- ``mtdata convert COCO OUT --images LABELME_DIR`` (the COCO the Labelme files were written from),

and prints wall time and peak RSS of each (``os.wait4``) and the ratios.

Usage::

    .venv/bin/python benchmarks/labelme.py                     # 20,000 files
    .venv/bin/python benchmarks/labelme.py --images 2000 --labelme2coco-path /tmp/l2c_site
"""

from __future__ import annotations

import argparse
import io
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

L2C_CHILD = """
import sys
from labelme2coco import get_coco_from_labelme_folder
from sahi.utils.file import save_json
save_json(get_coco_from_labelme_folder(sys.argv[1]).json, sys.argv[2])
"""


def build(root: Path, images: int, seed: int) -> tuple[Path, Path]:
    """(the Labelme folder, the COCO file it was written from)."""
    import numpy as np
    from PIL import Image

    from tests.mtdata.tool_files import random_coco, write_labelme

    coco = random_coco(seed, images=images)
    folder = root / "labelme" / "train"
    write_labelme(coco, folder)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(buffer, "JPEG")
    first = folder / coco["images"][0]["file_name"]
    first.write_bytes(buffer.getvalue())
    for image in coco["images"][1:]:
        os.link(first, folder / image["file_name"])
    coco_file = root / "coco" / "train.json"
    coco_file.parent.mkdir(parents=True)
    coco_file.write_text(json.dumps(coco))
    return folder, coco_file


def run(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of a child; raises when it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def mtdata(*args) -> list[str]:
    return [sys.executable, "-m", "mtdata", "convert", *map(str, args)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs each")
    parser.add_argument("--labelme2coco-path", default=None, help="a folder holding labelme2coco and sahi (pip install --target)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the input here (default: a temporary folder)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mt-labelme-bench-"))
    env = {"PYTHONPATH": str(REPO)}
    l2c_env = {"PYTHONPATH": os.pathsep.join(p for p in (args.labelme2coco_path, str(REPO)) if p)}
    try:
        t0 = time.perf_counter()
        folder, coco_file = build(root, args.images, args.seed)
        print(f"{args.images} Labelme files written in {time.perf_counter() - t0:.1f} s under {root}")
        has_l2c = subprocess.run([sys.executable, "-c", "import labelme2coco"], env={**os.environ, **l2c_env},
                                 capture_output=True).returncode == 0
        best: dict[str, tuple[float, float]] = {}

        def keep(name: str, result: tuple[float, float]) -> None:
            best[name] = min(best.get(name, result), result)

        for _ in range(args.repeat):
            for out in ("out_labelme", "out_l2c", "out_coco"):
                shutil.rmtree(root / out, ignore_errors=True)
            keep("mtdata labelme", run(mtdata(folder, root / "out_labelme"), env))
            keep("mtdata coco", run(mtdata(coco_file, root / "out_coco", "--images", folder), env))
            if has_l2c:
                l2c_file = root / "l2c" / "train.json"
                l2c_file.parent.mkdir(exist_ok=True)
                first = run([sys.executable, "-c", L2C_CHILD, str(folder), str(l2c_file)], l2c_env)
                second = run(mtdata(l2c_file, root / "out_l2c", "--images", folder), env)
                keep("labelme2coco", first)
                keep("labelme2coco + mtdata coco", (first[0] + second[0], max(first[1], second[1])))
        for name, (seconds, rss) in best.items():
            print(f"{name:28s} {seconds:7.2f} s  {rss:7.0f} MiB peak")
        mine = best["mtdata labelme"]
        print(f"mtdata labelme / mtdata coco: time {mine[0] / best['mtdata coco'][0]:.2f}x, memory {mine[1] / best['mtdata coco'][1]:.2f}x")
        if has_l2c:
            other = best["labelme2coco + mtdata coco"]
            print(f"mtdata labelme / (labelme2coco + mtdata coco): time {mine[0] / other[0]:.2f}x, memory {mine[1] / other[1]:.2f}x")
        else:
            print("labelme2coco does not import: pass --labelme2coco-path (pip install --target DIR labelme2coco sahi fire termcolor click)")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
