"""Train and predict from Python, the ultralytics way: ``python examples/train_from_python.py DATA.yaml [EPOCHS]``.

Trains yolov8n-multitask on a multitask data.yaml (make one with examples/data_from_python.py),
validates it (Box, Mask and Pose metrics) and prints each detection of the first val image
with its mask area and visible keypoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mttrain import MultiTaskYOLO


def main(data: Path, epochs: int, project: Path) -> None:
    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.train(data=str(data), epochs=epochs, imgsz=128, batch=8, workers=0, device="cpu",
                project=str(project), name="train", exist_ok=True, plots=False, verbose=False)
    metrics = model.val(data=str(data), imgsz=128, project=str(project), name="val", exist_ok=True, plots=False)
    print(f"box mAP50-95 {metrics.box.map:.3f}  mask {metrics.seg.map:.3f}  pose {metrics.pose.map:.3f}")

    image = sorted((data.parent / "images" / "val").iterdir())[0]
    (result,) = model(str(image), imgsz=128, conf=0.25, verbose=False)
    print(f"{image.name}: {len(result.boxes)} objects")
    for i, box in enumerate(result.boxes):
        name = result.names[int(box.cls)]
        area = int(result.masks.data[i].sum()) if result.masks is not None else 0
        visible = int((result.keypoints.conf[i] > 0.5).sum()) if result.keypoints is not None else 0
        print(f"  {name:<8} conf {float(box.conf):.2f}  mask {area} px  visible keypoints {visible}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10, Path(sys.argv[3] if len(sys.argv) > 3 else "runs/example"))
