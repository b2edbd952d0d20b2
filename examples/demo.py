"""The whole job on synthetic data, start to finish: ``python examples/demo.py demo/``.

Every step runs the real command line, as a user would, and the last lines print a table of
what was made. A rerun starts clean: the folder given is removed first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(step: str, *args: str) -> float:
    """Run one CLI step, echoing it; stop the demo on failure."""
    print(f"\n$ {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([str(BIN / args[0]), *args[1:]], check=True)
    return time.perf_counter() - start


def main(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    coco, multitask = out / "coco", out / "multitask"
    timings = {}
    timings["synth"] = run("synth", "mtdata", "synth", str(coco), "--images", "64", "--size", "160")
    timings["convert"] = run(
        "convert", "mtdata", "convert",
        str(coco / "annotations" / "instances_train.json"), str(coco / "annotations" / "instances_val.json"),
        str(multitask), "--images", str(coco / "images"), "--report", str(out / "convert.json"),
    )
    print("\nDemo finished:")
    print(f"  {'COCO source':<22}{coco}")
    print(f"  {'multitask dataset':<22}{multitask / 'data.yaml'}")
    for step, seconds in timings.items():
        print(f"  {step + ' time':<22}{seconds:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo"))
