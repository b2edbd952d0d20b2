"""COCO-standard evaluation of a multitask model: predictions.json and pycocotools' COCOeval.

``mttrain val --save-json`` writes every prediction in COCO's results format
(``predictions.json``: bbox, segmentation as RLE, keypoints ``[x, y, score] * K`` for keypoint
classes, score) with the category and image ids of the ground truth, then runs COCOeval for
``bbox``, ``segm`` and ``keypoints`` against:

- the source COCO file, when the dataset was written by ``mtdata convert`` and every
  evaluated image comes from that one file (its crowd regions and all its annotations count,
  as in any COCO benchmark);
- else the dataset's own export (``mtdata export``), written as ``ground_truth.json`` in the
  run folder so the numbers can be reproduced with pycocotools alone.

Keypoints are evaluated only over categories that have keypoints, with the OKS sigmas the
validator used (``params.kpt_oks_sigmas``).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mtdata.export import DatasetIds, build_coco, dataset_ids, write_json_atomic
from mtdata.formats.yolo.data_yaml import DatasetConfig

IOU_TYPES = (("box", "bbox"), ("mask", "segm"), ("pose", "keypoints"))


def mask_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) binary masks -> N compressed COCO RLEs with ``counts`` as str (JSON-ready)."""
    if not len(masks):
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def prediction_results(
    xyxy: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    masks: np.ndarray | None,
    keypoints: np.ndarray | None,
    image_id: int,
    category_ids: dict[int, int],
    keypoint_classes: list[int] | set[int],
) -> list[dict[str, Any]]:
    """One image's predictions in COCO's results format.

    Args:
        xyxy: (N, 4) boxes, pixels of the original image, (x1, y1, x2, y2).
        scores: (N,) confidences.
        classes: (N,) class indices.
        masks: (N, H, W) binary masks at the original image size, or None.
        keypoints: (N, K, 3) keypoints, pixels (x, y) and confidence, or None.
        image_id: COCO image id.
        category_ids: class index -> COCO category id (predictions of other classes are left out).
        keypoint_classes: classes whose predictions carry ``keypoints``.
    """
    rles = mask_rles(masks) if masks is not None else []
    out = []
    for i in range(len(xyxy)):
        x1, y1, x2, y2 = (float(v) for v in xyxy[i])
        cls = int(classes[i])
        if cls not in category_ids:  # a class the dataset does not have: COCO cannot score it
            continue
        result: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": int(category_ids[cls]),
            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "score": round(float(scores[i]), 5),
        }
        if rles:
            result["segmentation"] = rles[i]
        if keypoints is not None and cls in keypoint_classes:
            result["keypoints"] = [round(float(v), 3) for v in keypoints[i].reshape(-1)]
        out.append(result)
    return out


def polygons_for_targets(
    segments: list[np.ndarray],
    target_xyxy: np.ndarray,
    ori_shape: tuple[int, int],
    ratio_pad: tuple[tuple[float, float], tuple[float, float]],
    tolerance: float = 1.0,
) -> list[np.ndarray] | None:
    """An image's label polygons at the validator's input size, in the order of its targets.

    ultralytics' ``Format`` sorts the instances of an image by mask area (overlap masks), so
    each target is paired with the polygon whose bounds are its box (one-to-one, scipy's
    ``linear_sum_assignment`` on the L1 distance of the boxes).

    Args:
        segments: the label's polygons, (P, 2) normalized (x, y) each.
        target_xyxy: (N, 4) target boxes at the input size, pixels.
        ori_shape: original (height, width).
        ratio_pad: ((gain_h, gain_w), (pad_w, pad_h)) from the letterbox, as ultralytics stores it.
        tolerance: largest box distance (pixels, summed over the 4 sides) of a pair.

    Returns:
        N (P, 2) pixel polygons, or None when the polygons are not those of the targets.
    """
    from scipy.optimize import linear_sum_assignment

    from mtdata.geometry import polygon_xyxy

    if len(segments) != len(target_xyxy) or not len(segments):
        return None
    (gain_h, gain_w), (pad_w, pad_h) = ratio_pad
    h0, w0 = ori_shape
    scale = np.array([w0 * gain_w, h0 * gain_h])
    polygons = [np.asarray(seg, dtype=np.float64).reshape(-1, 2) * scale + [pad_w, pad_h] for seg in segments]
    bounds = np.array([polygon_xyxy(p) for p in polygons])
    cost = np.abs(np.asarray(target_xyxy, dtype=np.float64)[:, None, :] - bounds[None]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    if cost[rows, cols].max() > tolerance:
        return None
    return [polygons[j] for j in cols[np.argsort(rows)]]


def rasterize(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(N, H, W) uint8 masks of (P, 2) pixel polygons, rasterized as COCOeval rasterizes them (pycocotools).

    Not ultralytics' ``polygon2mask``: it truncates vertices to integers and fills the outline
    too; for a 30-pixel star its mask has IoU ~0.88 with pycocotools' mask of the same polygon,
    so high-threshold mask AP would measure rasterization, not the model.
    """
    from mtdata.geometry import polygon_to_mask

    if not polygons:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack([polygon_to_mask(p, height, width) for p in polygons])


@dataclass
class GroundTruth:
    """The COCO file predictions are evaluated against, and the ids that tie them together.

    Attributes:
        path: COCO JSON file.
        kind: ``source`` (the file the dataset was converted from) or ``export``.
        ids: the split's category and image ids.
    """

    path: Path
    kind: str
    ids: DatasetIds
    notes: list[str] = field(default_factory=list)


def ground_truth(config: DatasetConfig, split: str, save_dir: Path, ids: DatasetIds | None = None) -> GroundTruth:
    """The source COCO file when the split came from exactly one, else the export written to ``save_dir``."""
    ids = ids or dataset_ids(config, split)
    if ids.from_source and len(ids.source_files) == 1 and ids.source_files[0].is_file():
        return GroundTruth(ids.source_files[0], "source", ids, list(ids.notes))
    notes = list(ids.notes)
    if ids.from_source:
        notes.append(f"source COCO files {[str(p) for p in ids.source_files]} not usable as one file: evaluated against the export")
    data, report = build_coco(config, split, ids=ids)
    notes += report.notes
    if report.rows_left_out:
        notes.append(f"{len(report.rows_left_out)} label rows left out of the ground truth (run mtdata check)")
    path = Path(save_dir) / "ground_truth.json"
    write_json_atomic(data, path)
    return GroundTruth(path, "export", ids, notes)


def _quiet():
    """pycocotools prints progress on stdout; keep it for the summary text instead."""
    return contextlib.redirect_stdout(io.StringIO())


def _scores(precision: np.ndarray, recall: np.ndarray, iou_thresholds: np.ndarray, area_labels: list[str]) -> dict[str, float | None]:
    """COCO's summary numbers from ``eval['precision']`` (T, R, K, A, M) and ``eval['recall']`` (T, K, A, M).

    Categories are axis K, so arrays of several COCOeval runs can be concatenated along it.
    None where COCO prints -1 (no ground truth).
    """

    def mean(values: np.ndarray) -> float | None:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else None

    at = {round(float(t), 2): i for i, t in enumerate(iou_thresholds)}
    out = {
        "map50_95": mean(precision[:, :, :, 0, -1]),
        "map50": mean(precision[at[0.5], :, :, 0, -1]),
        "map75": mean(precision[at[0.75], :, :, 0, -1]),
        "mar": mean(recall[:, :, 0, -1]),
    }
    for a, label in enumerate(area_labels[1:], start=1):
        out[f"map_{label}"] = mean(precision[:, :, :, a, -1])
    return out


def _results_coco(gt, results: list[dict[str, Any]]):
    """pycocotools' results COCO; an empty one when there is no detection (``loadRes`` needs one)."""
    from pycocotools.coco import COCO

    with _quiet():
        if results:
            return gt.loadRes(results)
        dt = COCO()
        dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]), "annotations": []}
        dt.createIndex()
    return dt


def evaluate(
    gt_path: Path,
    results: list[dict[str, Any]],
    image_ids: list[int],
    category_ids: list[int],
    sigmas: np.ndarray | list[float] | None,
) -> tuple[dict[str, Any], str]:
    """Run COCOeval for bbox, segm and keypoints.

    Args:
        gt_path: ground-truth COCO file.
        results: predictions in COCO's results format.
        image_ids: the images that were evaluated (others in the file are left out).
        category_ids: the categories the model predicts (others in the file are left out).
        sigmas: K OKS sigmas; None skips keypoints.

    Returns:
        ({"box" | "mask" | "pose": {"map50_95", "map50", "map75", "mar", "map_<area>"}}, COCOeval's printed summary).
    """
    from pycocotools.coco import COCO

    with _quiet():
        gt = COCO(str(gt_path))
    category_ids = [c for c in category_ids if c in gt.cats]
    text = io.StringIO()
    out: dict[str, Any] = {}
    keypoint_counts = {c: len(gt.cats[c].get("keypoints") or []) for c in category_ids}
    for key, iou_type in IOU_TYPES:
        if iou_type == "segm":
            dets = [r for r in results if "segmentation" in r]
        elif iou_type == "keypoints":
            dets = [r for r in results if "keypoints" in r and keypoint_counts.get(r["category_id"])]
        else:
            dets = results
        if iou_type == "keypoints":
            groups: dict[int, list[int]] = {}
            for c, k in keypoint_counts.items():
                if k:
                    groups.setdefault(k, []).append(c)
            if sigmas is None or not groups:
                continue
        else:
            groups = {0: category_ids}
        runs = [_evaluate_group(gt, dets, iou_type, k, cats, image_ids, sigmas, text) for k, cats in groups.items()]
        params = runs[-1].params
        out[key] = _scores(np.concatenate([e.eval["precision"] for e in runs], axis=2),
                           np.concatenate([e.eval["recall"] for e in runs], axis=1), params.iouThrs, params.areaRngLbl)
    return out, text.getvalue()


def _evaluate_group(gt, dets: list[dict[str, Any]], iou_type: str, k: int, cats: list[int], image_ids: list[int],
                    sigmas, text: io.StringIO):
    """COCOeval, evaluated and accumulated, of ``dets`` on the categories ``cats`` (for keypoints: those with ``k``
    keypoints, compared on their first ``k``); its summary is printed into ``text``."""
    from pycocotools.cocoeval import COCOeval

    run = [dict(r) for r in dets if r["category_id"] in cats]  # copies: loadRes adds keys
    if iou_type == "keypoints":
        # a category with fewer keypoints than the model's K (padded by mtdata convert) compares its own
        run = [{**r, "keypoints": r["keypoints"][: 3 * k]} for r in run]
    dt = _results_coco(gt, run)
    e = COCOeval(gt, dt, iouType=iou_type)
    e.params.imgIds = sorted(image_ids)
    e.params.catIds = sorted(cats)
    if iou_type == "keypoints":
        e.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)[:k]
    with _quiet():
        e.evaluate()
        e.accumulate()
    with contextlib.redirect_stdout(text):
        print(f"COCOeval {iou_type}, categories {sorted(cats)}:")
        e.summarize()
    return e


def run_coco_eval(
    config: DatasetConfig,
    split: str,
    save_dir: Path,
    results: list[dict[str, Any]],
    image_files: list[str],
    sigmas: np.ndarray | list[float] | None,
    ids: DatasetIds | None = None,
) -> dict[str, Any]:
    """Ground truth + COCOeval for a validation run; the ``coco`` section of metrics.json.

    Args:
        config: the dataset.
        split: the split validated.
        save_dir: run folder (``ground_truth.json`` goes there when exported, ``coco_eval.txt`` always).
        results: the run's predictions (COCO results format).
        image_files: the images the validator evaluated.
        sigmas: the validator's OKS sigmas.
        ids: the split's ids, when already known.
    """
    target = ground_truth(config, split, save_dir, ids)
    image_ids = [target.ids.image_ids[os.path.abspath(f)] for f in image_files if os.path.abspath(f) in target.ids.image_ids]
    category_ids = sorted(set(target.ids.category_ids.values()))
    scores, text = evaluate(target.path, results, image_ids, category_ids, sigmas)
    (Path(save_dir) / "coco_eval.txt").write_text(text)
    return {
        "ground_truth": str(target.path),
        "ground_truth_kind": target.kind,
        "predictions": str(Path(save_dir) / "predictions.json"),
        "images": len(image_ids),
        **scores,
        "notes": target.notes,
    }


def differences(ours: dict[str, dict[str, float]], coco: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Ours minus COCO's, per task, for mAP50 and mAP50-95."""
    out = {}
    for task in ("box", "mask", "pose"):
        if task in coco and task in ours:
            out[task] = {
                k: (round(ours[task][k] - coco[task][k], 5) if coco[task][k] is not None else None)
                for k in ("map50", "map50_95")
            }
    return out

