"""The multitask dataset: ultralytics' YOLODataset reading multitask rows through mtdata.

Rows are parsed by ``mtdata.formats.yolo.rows`` with the dataset's ``LabelLayout`` (layout by
class, never by length), so ``mtdata check`` sees exactly what training sees: a row the
parser rejects is dropped here and reported as an error there; an image that cannot be
decoded is dropped here and reported there. Masks and keypoints ride together through
ultralytics' augmentations (mosaic, perspective, HSV, flips with ``flip_idx``, copy-paste).
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from mtdata.check.verify import duplicate_rows, verify_image, verify_label_file
from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.formats.yolo.rows import LabelLayout, read_label_text, rows_to_batch
from mtdata.formats.yolo.splits import list_entry
from mtdata.input_files import InputFileError
from mttrain._ultralytics import YOLODataset, check_file_speeds
from mttrain.data_config import read_multitask_config

KPT_SHAPE_SAMPLE_ROWS = 200  # keypoint-class rows that must all misfit kpt_shape before training is refused


def ultralytics_data(config: DatasetConfig) -> dict[str, Any]:
    """The data dict ultralytics' trainer and validator expect, from an mtdata DatasetConfig."""
    data: dict[str, Any] = {
        "path": config.root,
        "names": dict(config.names),
        "nc": len(config.names),
        "channels": 3,
        "kpt_shape": list(config.kpt_shape) if config.kpt_shape else None,
        "kpt_names": {int(k): list(v) for k, v in config.kpt_names.items()},
        "flip_idx": list(config.flip_idx) if config.flip_idx is not None else None,
        "skeleton": config.skeleton,
        "kpt_sigmas": config.kpt_sigmas,
        "yaml_file": str(config.file) if config.file else None,
        "mt_config": config,
    }
    for split in ("train", "val", "test"):
        dirs = config.image_dirs(split)
        if dirs:
            data[split] = str(dirs[0]) if len(dirs) == 1 else [str(d) for d in dirs]
    return data


def load_multitask_data(path: str | Path) -> dict[str, Any]:
    """Read and validate a multitask data.yaml (mtdata rules) into ultralytics' data dict."""
    return ultralytics_data(read_multitask_config(path))


def _class_of(token: str) -> int | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def check_keypoint_rows(label_files: list[str], layout: LabelLayout, data_yaml: str | Path | None = None) -> None:
    """Refuse a ``kpt_shape`` that no row of a keypoint class fits, before any training, in one line.

    With ``kpt_shape: [4, 3]`` on rows that carry 5 keypoints, no row of a keypoint class has a
    count of values that fits (class, 3K keypoint values, an even polygon of >= 6): the scan would
    warn once per file and train on the other classes alone. Label files are read in order
    until a keypoint-class row's count fits (return at once: whatever else is wrong with a row
    is the scan's to report) or KPT_SHAPE_SAMPLE_ROWS of them did not.

    Raises:
        DatasetConfigError: no keypoint-class row read has a count that fits kpt_shape.
    """
    if layout.task != "multitask" or not layout.keypoint_classes:
        return
    need = 3 * layout.num_keypoints
    misfits, first = 0, None
    for label_file in label_files:
        try:
            text = read_label_text(label_file)
        except (OSError, InputFileError):
            continue  # the scan reports it
        for number, line in enumerate(text.splitlines(), start=1):
            tokens = line.split()
            if not tokens or _class_of(tokens[0]) not in layout.keypoint_classes:
                continue
            values = len(tokens) - 1
            if values >= need + 6 and (values - need) % 2 == 0:
                return  # this row's count fits kpt_shape
            misfits += 1
            first = first or f"{label_file}:{number} holds {values} values after the class"
            if misfits >= KPT_SHAPE_SAMPLE_ROWS:
                break
        if misfits >= KPT_SHAPE_SAMPLE_ROWS:
            break
    if misfits:
        shape = [layout.num_keypoints, layout.keypoint_dims]
        raise DatasetConfigError(
            f"kpt_shape {shape} fits none of the {misfits} rows of keypoint classes {sorted(layout.keypoint_classes)} read "
            f"(first: {first}; {need} keypoint values and an even polygon of >= 6 expected): training would drop "
            "them all; set kpt_shape to the K the rows carry", file=data_yaml)


def scan_sample(im_file: str, label_file: str, layout: LabelLayout, num_keypoints: int):
    """Verify one image and parse its label file; returns (label dict or None, missing, found, empty, corrupt, msg).

    Coordinates stay normalized: boxes are cx, cy, w, h of each polygon's bounds.
    """
    image = verify_image(Path(im_file))
    if not image.ok:
        return None, 0, 0, 0, 1, f"ignoring image {im_file}: {_errors(image.findings)}"
    w, h = image.resolution_wh
    if not Path(label_file).is_file():
        return _label(im_file, (h, w), [], num_keypoints), 1, 0, 0, 0, ""
    parsed, findings = verify_label_file(Path(label_file), layout)
    if any(f.rule == "label_unreadable" for f in findings):
        return None, 0, 0, 0, 1, f"ignoring image {im_file}: {_errors(findings)}"
    repeated = {i for i, _ in duplicate_rows(parsed)}
    rows = [row for i, row in enumerate(parsed.rows) if i not in repeated]
    msg = _errors(findings)
    label = _label(im_file, (h, w), rows, num_keypoints)
    return label, 0, 1, int(not rows), 0, (f"{label_file}: rows left out (see mtdata check): {msg}" if msg else "")


def _errors(findings) -> str:
    return "; ".join(f"line {f.line}: {f.message}" if f.line else f.message for f in findings if f.severity.value == "error")


def _label(im_file: str, shape_hw: tuple[int, int], rows, num_keypoints: int) -> dict[str, Any]:
    """Rows as ultralytics' label dict, through mtdata's batch: normalized (resolution (1, 1)), boxes cx, cy, w, h of
    each polygon's bounds, float32."""
    objects = rows_to_batch(rows, (1, 1), num_keypoints)
    n = len(objects)
    x1, y1, x2, y2 = objects.xyxy.T
    segments = [objects.polygon(i).astype(np.float32) for i in range(n)]
    keypoints = objects.keypoints.astype(np.float32)
    bboxes = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1).astype(np.float32)
    return {
        "im_file": im_file,
        "shape": shape_hw,
        "cls": objects.class_id.astype(np.float32).reshape(n, 1),
        "bboxes": bboxes,
        "segments": segments,
        "keypoints": keypoints,
        "normalized": True,
        "bbox_format": "xywh",
    }


class MultiTaskDataset(YOLODataset):
    """YOLODataset with masks and keypoints at once, labels parsed by mtdata."""

    def __init__(self, *args, data: dict, task: str = "multitask", **kwargs):
        self.layout: LabelLayout = data["mt_config"].layout()
        # ultralytics' flags are exclusive by task; build as "segment", then carry keypoints too.
        super().__init__(*args, data=data, task="segment", **kwargs)
        self.use_keypoints = True

    def get_img_files(self, img_path: str | list[str]) -> list[str]:
        """The images of ``img_path`` (folders or ``.txt`` lists) as mtdata's one split lister finds them,
        so the trainer reads what ``mtdata check`` checks; cut to ``fraction`` as ultralytics does."""
        root = self.data["mt_config"].root
        files: list[str] = []
        for path in img_path if isinstance(img_path, list) else [img_path]:
            entry = list_entry(Path(path), root)
            if entry.kind == "missing":
                raise FileNotFoundError(f"{self.prefix}{path} does not exist")
            files += entry.images
        if not files:
            raise FileNotFoundError(f"{self.prefix}No images found in {img_path}")
        files.sort()
        count = self.fraction if isinstance(self.fraction, int) else max(1, round(len(files) * self.fraction))
        files = files[:count]
        check_file_speeds(files, prefix=self.prefix)  # as ultralytics' own: its random.sample keeps training's random stream
        return files

    def verify_args(self):
        # before the scan (a cache is never written for a kpt_shape the rows do not fit)
        check_keypoint_rows(self.label_files, self.layout, self.data.get("yaml_file"))
        k = self.layout.num_keypoints
        return _scan_star, zip(self.im_files, self.label_files, repeat(self.layout), repeat(k))

    def result_to_label(self, result):
        return result

    def get_cache_hash(self) -> str:
        from ultralytics.data.utils import get_hash

        # the layout is part of the hash: a segment or pose cache of the same files is never reused
        return get_hash(self.label_files + self.im_files + [repr(self.layout), "mt-multitask-v1"])

    def build_transforms(self, hyp):
        self.use_keypoints = True  # before v8_transforms, which wires flip_idx when keypoints are used
        return super().build_transforms(hyp)


def _scan_star(args):
    return scan_sample(*args)


def build_multitask_dataset(cfg, img_path, batch: int, data: dict, mode: str = "train", rect: bool = False, stride: int = 32):
    """As ultralytics' ``build_yolo_dataset``, for the multitask dataset."""
    from ultralytics.utils import colorstr

    return MultiTaskDataset(
        img_path=img_path,
        imgsz=cfg.imgsz,
        batch_size=batch,
        augment=mode == "train",
        hyp=cfg,
        rect=cfg.rect or rect,
        cache=cfg.cache or None,
        single_cls=cfg.single_cls or False,
        stride=int(stride),
        pad=0.0 if mode == "train" else 0.5,
        prefix=colorstr(f"{mode}: "),
        classes=cfg.classes,
        data=data,
        fraction=cfg.fraction if mode == "train" else 1.0,
    )
