"""The whole job on synthetic data, start to finish: ``python examples/demo.py demo/``.

synth -> convert (to a pose and a segment dataset, as two labelling efforts would deliver) ->
merge (into one multitask dataset) -> check -> fit -> val -> predict -> export (ONNX), then a
table of what was made. Every step runs the real command line, as a user would. A rerun starts
clean: the folder given is removed first. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
# Small enough for a laptop CPU, big enough to learn: ~1 minute of training (tests/examples/test_examples.py holds its floors).
IMAGES, SIZE, EPOCHS = 64, 128, 25


def run(*args: str) -> float:
    """Run one CLI step, echoing it; stop the demo on failure."""
    print(f"\n$ {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([str(BIN / args[0]), *args[1:]], check=True)
    return time.perf_counter() - start


def main(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    coco = out / "coco"
    ann = [str(coco / "annotations" / f"instances_{s}.json") for s in ("train", "val")]
    runs = out / "runs"
    seconds = {}
    seconds["synth"] = run("mtdata", "synth", str(coco), "--images", str(IMAGES), "--size", str(SIZE), "--seed", "1")
    seconds["convert"] = run("mtdata", "convert", *ann, str(out / "pose"), "--images", str(coco / "images"), "--task", "pose")
    seconds["convert"] += run("mtdata", "convert", *ann, str(out / "segment"), "--images", str(coco / "images"), "--task", "segment")
    seconds["merge"] = run("mtdata", "merge", str(out / "pose"), str(out / "segment"), str(out / "multitask"),
                           "--report", str(out / "merge.json"))
    seconds["check"] = run("mtdata", "check", str(out / "multitask" / "data.yaml"))
    seconds["fit"] = run("mttrain", "fit", str(out / "multitask" / "data.yaml"), "--epochs", str(EPOCHS), "--imgsz", str(SIZE),
                         "--batch", "8", "--workers", "0", "--project", str(runs), "--name", "fit",
                         "seed=0", "deterministic=True", "warmup_epochs=1", "close_mosaic=5")
    best = runs / "fit" / "weights" / "best.pt"
    seconds["val"] = run("mttrain", "val", str(best), "--data", str(out / "multitask" / "data.yaml"), "--imgsz", str(SIZE),
                         "--project", str(runs), "--name", "val")
    seconds["predict"] = run("mttrain", "predict", str(best), str(coco / "images" / "val"), "--imgsz", str(SIZE),
                             "--save-txt", "--project", str(runs), "--name", "predict")
    seconds["export"] = run("mttrain", "export", str(best), "--format", "onnx", "--imgsz", str(SIZE))

    merge = json.loads((out / "merge.json").read_text())
    metrics = json.loads((runs / "val" / "metrics.json").read_text())
    onnx = best.with_suffix(".onnx")
    print("\n" + "=" * 72 + "\nDemo finished\n" + "=" * 72)
    rows = [
        ("COCO source", str(coco)),
        ("pose + segment datasets", f"{out / 'pose'}, {out / 'segment'}"),
        ("merged multitask dataset", str(out / "multitask" / "data.yaml")),
        ("merge", f"{merge['matched']} pose rows paired with masks; SEG rows {sum(merge['seg_rows'].values())}, "
                  f"KPT rows {sum(merge['kpt_rows'].values())}"),
        ("trained weights", str(best)),
        ("predictions", str(runs / "predict")),
        ("ONNX model", f"{onnx} ({onnx.stat().st_size / 1e6:.1f} MB)" if onnx.exists() else "missing"),
    ]
    for task in ("box", "mask", "pose"):
        m = metrics[task]
        rows.append((f"{task} mAP50 / mAP50-95", f"{m['map50']:.3f} / {m['map50_95']:.3f}"))
    rows.append(("time", ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items())))
    for name, value in rows:
        print(f"  {name:<26}{value}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo"))
