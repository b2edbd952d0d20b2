"""A model's predictions beside the labels: ultralytics ``Results`` -> FiftyOne labels, and evaluation.

Predictions are stored like the ground truth (``predictions`` Detections with masks cropped to
the box, ``predictions_keypoints`` Keypoints linked by ``fo.Instance``), then FiftyOne's
``evaluate_detections`` matches them to the labels (mask IoU when both have masks) and each
matched prediction gets the keypoint OKS against its label, so the App can sort by mistakes.

The model is handed in (``mtdata view`` loads an mttrain model in its CLI layer; this module imports no
model library): its ``predict(...)`` returns ultralytics-style ``Results`` with ``boxes`` (xyxy, conf,
cls in original pixels), ``masks.data`` (N, H, W) at the original size or at the letterboxed input size
(then the caller hands in its ``masks_in_image``), and ``keypoints.data`` (N, K, 3) x, y, confidence in
original pixels; objects of classes without keypoints have all-zero keypoint confidences.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtdata.errors import InputError, MtdataError
from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.keypoints import BOX_AREA_FACTOR, default_sigmas, object_keypoint_similarity
from mtdata.view.app import quiet_logger
from mtdata.view.fields import GT_FIELD, PRED_FIELD, import_fiftyone, keypoints_field
from mtdata.view.labels import to_fiftyone_labels

EVAL_KEY = "eval"

MasksInImage = Callable[[object], "np.ndarray | None"]  # a Results -> (N, H, W) bool masks in image pixels, or None


def _numpy(value) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)


def masks_at_original_size(result) -> np.ndarray | None:
    """(N, H, W) bool masks of a ``Results`` whose masks are at the image's size already.

    A model whose masks come at its letterboxed input size hands in its own ``masks_in_image``
    (mttrain's is :func:`mttrain.predict.masks_in_image`): this module knows no model library.
    """
    if result.masks is None:
        return None
    data = _numpy(result.masks.data)
    if tuple(data.shape[1:]) != tuple(result.orig_shape):
        raise MtdataError(
            f"the model's masks are {data.shape[2]}x{data.shape[1]}, its image {result.orig_shape[1]}x{result.orig_shape[0]}: "
            "pass masks_in_image (the model's own un-letterboxing, e.g. mttrain.predict.masks_in_image)"
        )
    return data > 0.5


def result_fields(
    result, keypoint_classes: frozenset[int], names: dict[int, str], masks_in_image: MasksInImage = masks_at_original_size,
) -> tuple[list[dict], list[dict]]:
    """One image's ``Results`` as FiftyOne fields (see ``mtdata.view.labels.object_fields``).

    Args:
        result: an ultralytics ``Results`` for one image.
        keypoint_classes: class ids that have keypoints; others get no ``fo.Keypoint``.
        names: class id -> name (the dataset's, checked against the model's beforehand).
        masks_in_image: ``result`` -> (N, H, W) bool masks in original image pixels, or None.

    Returns:
        (detection fields, keypoint fields). Every predicted point is kept with its
        confidence (OKS scores them all, as COCO does); the App's confidence filter hides the
        unsure ones.
    """
    import_fiftyone()
    from bson import ObjectId

    h, w = result.orig_shape
    if result.boxes is None or len(result.boxes) == 0:
        return [], []
    xyxy = _numpy(result.boxes.xyxy).astype(np.float64)
    conf = _numpy(result.boxes.conf).astype(np.float64)
    cls = _numpy(result.boxes.cls).astype(int)
    masks = masks_in_image(result)
    kpts = _numpy(result.keypoints.data).astype(np.float64) if result.keypoints is not None else np.zeros((len(cls), 0, 3))
    if kpts.ndim == 3 and kpts.shape[-1] == 2:
        kpts = np.concatenate([kpts, np.ones((*kpts.shape[:2], 1))], axis=-1)
    detections, keypoints = [], []
    for i in range(len(cls)):
        x1, y1, x2, y2 = np.clip(xyxy[i], 0, [w, h, w, h])
        box = [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h]
        mask = None
        if masks is not None:
            # FiftyOne wants the mask cropped to the box: take the box rounded out to whole pixels.
            ix0, iy0 = int(np.floor(x1)), int(np.floor(y1))
            ix1, iy1 = max(int(np.ceil(x2)), ix0 + 1), max(int(np.ceil(y2)), iy0 + 1)
            ix1, iy1 = min(ix1, w), min(iy1, h)
            ix0, iy0 = min(ix0, ix1 - 1), min(iy0, iy1 - 1)
            box = [ix0 / w, iy0 / h, (ix1 - ix0) / w, (iy1 - iy0) / h]
            mask = masks[i, iy0:iy1, ix0:ix1].copy()
        label = names.get(int(cls[i]), str(cls[i]))
        common = {"label": label, "index": i, "tags": [], "instance_id": ObjectId(), "confidence": float(conf[i])}
        detections.append({"id": ObjectId(), **common, "bounding_box": [float(v) for v in box], "mask": mask, "attributes": {}})
        if int(cls[i]) in keypoint_classes and kpts.shape[1]:
            points = kpts[i, :, :2] / np.array([w, h], dtype=np.float64)
            keypoints.append({
                "id": ObjectId(), **common, "points": points.tolist(),
                "confidence": [float(c) for c in kpts[i, :, 2]], "attributes": {},
            })
    return detections, keypoints


def results_to_fiftyone(result, keypoint_classes, names, masks_in_image: MasksInImage = masks_at_original_size):
    """One ``Results`` as (``fo.Detections``, ``fo.Keypoints``)."""
    fo = import_fiftyone()
    detections, keypoints = result_fields(result, frozenset(keypoint_classes), names, masks_in_image)
    dets, kpts = to_fiftyone_labels(detections, keypoints)
    return fo.Detections(detections=dets), fo.Keypoints(keypoints=kpts)


# --- the model ---------------------------------------------------------------------------


def model_facts(model) -> tuple[dict[int, str], tuple[int, int] | None, list[int] | None]:
    """(names, kpt_shape, keypoint class ids) of an mttrain model (.pt or .onnx)."""
    inner = getattr(model, "model", None)
    names = {int(k): str(v) for k, v in dict(model.names).items()}
    kpt_shape = getattr(model, "kpt_shape", None) or getattr(inner, "kpt_shape", None)
    kpt_names = getattr(model, "kpt_names", None) or getattr(inner, "kpt_names", None)
    classes = sorted(int(k) for k in kpt_names) if kpt_names else None
    return names, (tuple(int(v) for v in kpt_shape) if kpt_shape else None), classes


def check_model_matches(model_path: Path, names: dict[int, str], kpt_shape, keypoint_classes, config: DatasetConfig) -> None:
    """Raise one clear error when the model was not trained on this dataset's classes and keypoints."""
    if names != config.names:
        raise InputError(
            f"the model's classes {_names_summary(names)} do not match data.yaml names "
            f"{_names_summary(config.names)}: predict with a model trained on this dataset", file=model_path,
        )
    if config.num_keypoints and kpt_shape and kpt_shape[0] != config.num_keypoints:
        raise InputError(f"the model predicts {kpt_shape[0]} keypoints, data.yaml has kpt_shape {list(config.kpt_shape)}", file=model_path)
    if keypoint_classes is not None and config.task == "multitask" and set(keypoint_classes) != set(config.kpt_names):
        raise InputError(
            f"the model's keypoint classes {sorted(keypoint_classes)} are not data.yaml's kpt_names classes {sorted(config.kpt_names)}",
            file=model_path,
        )


def _names_summary(names: dict[int, str], limit: int = 6) -> str:
    shown = ", ".join(f"{i}: {names[i]!r}" for i in sorted(names)[:limit])
    more = f", ... ({len(names)} classes)" if len(names) > limit else ""
    return "{" + shown + more + "}"


def add_predictions(
    dataset,
    model,
    config: DatasetConfig,
    *,
    conf: float = 0.25,
    imgsz: int | None = None,
    batch: int = 16,
    field: str = PRED_FIELD,
    progress: Callable[[int, int], None] | None = None,
    masks_in_image: MasksInImage = masks_at_original_size,
) -> int:
    """Run ``model`` on every sample and store its predictions in ``field`` (+ ``field_keypoints``).

    ``model.predict(source=paths, conf=..., verbose=False[, imgsz=...])`` returns one ultralytics-style
    ``Results`` per path; ``masks_in_image`` brings its masks to image pixels (see :func:`result_fields`).

    Samples without metadata (their image could not be read, or is over the size limit of
    :mod:`mtdata.image_header`: a decompression bomb) are not given to the model: it would
    decode them whole.

    Returns:
        the number of predicted objects.
    """
    fo = import_fiftyone()
    keypoint_classes = frozenset(config.keypoint_class_ids)
    kp_field = keypoints_field(field)
    total, done, objects = len(dataset), 0, 0
    options = {"conf": conf, "verbose": False}
    if imgsz:
        options["imgsz"] = imgsz
    ids, paths, widths = dataset.values("id"), dataset.values("filepath"), dataset.values("metadata.width")
    readable = [(i, p) for i, p, w in zip(ids, paths, widths) if w is not None]
    ids, paths = [i for i, _ in readable], [p for _, p in readable]
    total = len(ids)
    for start in range(0, total, batch):
        chunk_ids, chunk_paths = ids[start : start + batch], paths[start : start + batch]
        results = model.predict(source=list(chunk_paths), **options)
        if len(results) != len(chunk_paths):
            raise MtdataError(f"the model returned {len(results)} results for {len(chunk_paths)} images")
        dets, kpts = {}, {}
        for sample_id, result in zip(chunk_ids, results):
            detections, keypoints = result_fields(result, keypoint_classes, config.names, masks_in_image)
            d, k = to_fiftyone_labels(detections, keypoints)
            dets[sample_id], kpts[sample_id] = fo.Detections(detections=d), fo.Keypoints(keypoints=k)
            objects += len(d)
        dataset.set_values(field, dets, key_field="id", dynamic=True)
        if config.num_keypoints:
            dataset.set_values(kp_field, kpts, key_field="id", dynamic=True)
        done += len(chunk_paths)
        if progress:
            progress(done, total)
    return objects


# --- evaluation ---------------------------------------------------------------------------


def evaluate(dataset, config: DatasetConfig, field: str = PRED_FIELD, eval_key: str = EVAL_KEY) -> dict:
    """Match predictions to labels with FiftyOne and score each matched pose by OKS.

    FiftyOne's ``evaluate_detections`` (COCO-style, mask IoU when the dataset has masks) marks
    every prediction ``tp``/``fp`` and label ``fn`` in ``<eval_key>``; each true positive with
    keypoints gets ``<eval_key>_oks`` (on the detection and its keypoints), and each sample the
    mean, ``<eval_key>_oks``, so low-OKS images sort first.

    Returns:
        {"mAP", "tp", "fp", "fn", "oks_mean", "oks_count"}.
    """
    fo = import_fiftyone()
    use_masks = config.task in ("segment", "multitask")
    with quiet_logger("fiftyone"):  # FiftyOne logs each evaluation step at INFO
        results = dataset.evaluate_detections(
            field, gt_field=GT_FIELD, eval_key=eval_key, use_masks=use_masks, compute_mAP=True, progress=False,
        )
    summary = {
        "mAP": float(results.mAP()),
        "tp": int(sum(dataset.values(f"{eval_key}_tp"))),
        "fp": int(sum(dataset.values(f"{eval_key}_fp"))),
        "fn": int(sum(dataset.values(f"{eval_key}_fn"))),
        "oks_mean": None, "oks_count": 0,
    }
    if not config.num_keypoints:
        return summary
    sigmas = np.asarray(config.kpt_sigmas or default_sigmas(config.num_keypoints))
    oks_field = f"{eval_key}_oks"
    for path in (oks_field, f"{field}.detections.{oks_field}", f"{keypoints_field(field)}.keypoints.{oks_field}"):
        if path not in dataset.get_field_schema(flat=True):
            dataset.add_sample_field(path, fo.FloatField)
    all_oks = []
    for sample in dataset.iter_samples(autosave=True, progress=False):
        if sample.metadata is None:  # an unreadable image has no size to put points in pixels
            continue
        sample_oks = _score_sample_poses(sample, field, eval_key, sigmas)
        sample[oks_field] = float(np.mean(sample_oks)) if sample_oks else None
        all_oks.extend(sample_oks)
    summary["oks_mean"] = float(np.mean(all_oks)) if all_oks else None
    summary["oks_count"] = len(all_oks)
    return summary


def _score_sample_poses(sample, field: str, eval_key: str, sigmas: np.ndarray) -> list[float]:
    """Write ``<eval_key>_oks`` on each true positive of ``sample`` whose object and label both have keypoints (on the
    detection and its keypoints); return those OKS values in detection order.

    Args:
        sigmas: (K,) OKS sigmas.
    """
    oks_field = f"{eval_key}_oks"
    gt_kp, pred_kp = keypoints_field(GT_FIELD), keypoints_field(field)
    w, h = sample.metadata.width, sample.metadata.height
    gt_dets = {d.id: d for d in (sample[GT_FIELD].detections if sample[GT_FIELD] else [])}
    gt_pose = {k.instance.id: k for k in (sample[gt_kp].keypoints if sample[gt_kp] else [])}
    pred_pose = {k.instance.id: k for k in (sample[pred_kp].keypoints if sample[pred_kp] else [])}
    sample_oks = []
    for det in sample[field].detections if sample[field] else []:
        if det[eval_key] != "tp" or det.instance is None:
            continue
        gt = gt_dets.get(det[f"{eval_key}_id"])
        pose = pred_pose.get(det.instance.id)
        gt_points = gt_pose.get(gt.instance.id) if gt is not None and gt.instance is not None else None
        if pose is None or gt_points is None:
            continue
        gt_xyv = _pixels(gt_points.points, w, h, gt_points["visibility"])
        pred_xy = np.asarray(pose.points, dtype=np.float64) * [w, h]
        area = float(gt.mask.sum()) if gt.mask is not None else BOX_AREA_FACTOR * gt.bounding_box[2] * w * gt.bounding_box[3] * h
        oks = object_keypoint_similarity(pred_xy, gt_xyv, area, sigmas)
        if oks is None:
            continue
        det[oks_field] = oks
        pose[oks_field] = oks
        sample_oks.append(oks)
    return sample_oks


def _pixels(points, w: int, h: int, visibility) -> np.ndarray:
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2) * [w, h]
    v = np.asarray(visibility, dtype=np.float64).reshape(-1, 1)
    return np.concatenate([np.nan_to_num(xy), v], axis=1)

