"""MultiTaskPredictor: one NMS, then each kept detection's own mask and keypoints.

Results are ultralytics ``Results`` with ``boxes``, ``masks`` and ``keypoints``. Objects of
classes without keypoints come back with keypoint confidences 0 (no visible keypoints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mttrain._ultralytics import DetectionPredictor, Results, ops, register_skeleton
from mttrain.postprocess import split_extra, without_keypoints


class MultiTaskResults(Results):
    """ultralytics ``Results`` whose ``save_txt`` writes multitask label rows (see :func:`result_rows`).

    ``keypoint_classes``: the class ids that have keypoints (their rows carry K x 3 keypoint values first).
    """

    def __init__(self, *args, keypoint_classes=(), frame: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keypoint_classes = sorted(int(c) for c in keypoint_classes)
        self.frame = frame  # 1-based frame of a video (or count of a stream); None for images

    def new(self) -> "MultiTaskResults":
        result = MultiTaskResults(orig_img=self.orig_img, path=self.path, names=self.names, speed=self.speed,
                                  keypoint_classes=self.keypoint_classes, frame=self.frame)
        result.save_dir = self.save_dir
        return result

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Write this image's objects as multitask rows (what ``mtdata`` reads and ``mttrain fit`` trains on),
        replacing ``txt_file``; an image without objects gets an empty file. ``save_conf`` is not part of
        the format and is ignored. Tracked objects get their track id appended as the row's last value (as
        ultralytics appends it; ``mttrain.video.read_track_rows`` reads such rows)."""
        txt_file = Path(txt_file)
        txt_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(txt_file, "".join(row + "\n" for row in result_rows(self, self.keypoint_classes,
                                                                            with_track_ids=True)))
        return str(txt_file)


class MultiTaskPredictor(DetectionPredictor):
    """Predictor for :class:`mttrain.nn.model.MultiTaskModel` (``.pt``) models and their exports."""

    def __init__(self, cfg=None, overrides=None, _callbacks=None):
        from mttrain._ultralytics import DEFAULT_CFG

        super().__init__(cfg or DEFAULT_CFG, overrides, _callbacks)
        self.args.task = "multitask"

    def setup_model(self, model, verbose: bool = True):
        super().setup_model(model, verbose)
        kpt_shape = _model_attr(self.model, "kpt_shape")
        skeleton = _model_attr(self.model, "skeleton")
        if isinstance(skeleton, str):  # an export's metadata: AutoBackend parses only its own keys
            import ast

            try:
                skeleton = ast.literal_eval(skeleton)
            except (ValueError, SyntaxError):
                skeleton = None
        if kpt_shape:  # results[0].plot() and saved images draw the dataset's skeleton
            register_skeleton(int(kpt_shape[0]), skeleton)

    def postprocess(self, preds, img, orig_imgs):
        protos = preds[0][1] if isinstance(preds[0], tuple) else preds[1]
        return super().postprocess(preds[0], img, orig_imgs, protos=protos)

    def construct_results(self, preds, img, orig_imgs, protos):
        results = [self.construct_result(p, img, o, path, proto) for p, o, path, proto in zip(preds, orig_imgs, self.batch[0], protos)]
        for result, info in zip(results, self.batch[2]):
            result.frame = _frame_number(info, self.dataset)
        return results

    def run_callbacks(self, event: str):
        super().run_callbacks(event)
        if event == "on_predict_postprocess_end" and self.args.mode == "track":
            # ultralytics' tracker leaves a frame's raw detections in place when it outputs no track for it: in
            # track mode every object has a track id, so those frames have none.
            self.results = [r if r.boxes is None or r.boxes.is_track or not len(r) else r[:0] for r in self.results]
            smoother = getattr(self, "keypoint_smoother", None)
            if smoother is not None:
                for r in self.results:
                    smoother.apply(r)

    def stream_inference(self, source=None, model=None, *args, **kwargs):
        """ultralytics' loop; when it fails, an annotated video it had not finished is removed, not left
        half-written (videos it finished stay)."""
        self._video_progress = {}  # save path -> (last frame written, frames in the source video)
        try:
            yield from super().stream_inference(source, model, *args, **kwargs)
        except Exception:
            for save_path, (written, frames) in self._video_progress.items():
                if written is None or frames <= 0 or written < frames:
                    for suffix in (".avi", ".mp4"):  # ultralytics picks the container by platform
                        Path(save_path).with_suffix(suffix).unlink(missing_ok=True)
            raise

    def save_predicted_images(self, save_path: Path, frame: int | None = 0):
        super().save_predicted_images(save_path, frame)
        if self.dataset.mode == "video":
            self._video_progress[save_path] = (frame, int(getattr(self.dataset, "frames", 0)))

    def construct_result(self, pred, img, orig_img, img_path, proto):
        """pred: (N, 6 + nm + K*3) rows of xyxy, conf, cls, mask coefficients, keypoints (input pixels)."""
        nm = proto.shape[0]
        keypoint_classes = _keypoint_classes(self.model)
        masks = None
        if pred.shape[0]:
            masks = ops.process_mask(proto, pred[:, 6 : 6 + nm], pred[:, :4], img.shape[2:], upsample=True)
            keep = masks.amax((-2, -1)) > 0
            pred, masks = pred[keep], masks[keep]
        boxes = pred[:, :6].clone()
        boxes[:, :4] = ops.scale_boxes(img.shape[2:], boxes[:, :4], orig_img.shape)
        _, kpts = split_extra(pred[:, 6:], pred[:, 5], nm, tuple(self.model.kpt_shape), keypoint_classes)
        kpts = ops.scale_coords(img.shape[2:], kpts, orig_img.shape)
        kpts[without_keypoints(pred[:, 5], keypoint_classes)] = 0.0  # scaling moved their zeros: zero them again
        return MultiTaskResults(orig_img, path=img_path, names=self.model.names, boxes=boxes, masks=masks,
                                keypoints=kpts, keypoint_classes=keypoint_classes)


def _frame_number(info: str, dataset) -> int | None:
    """The 1-based frame of a batch item: parsed from the loader's info line for videos (as ultralytics'
    write_results does), the loader's count for streams, None for images."""
    import re

    if getattr(dataset, "mode", None) == "stream":
        return int(getattr(dataset, "count", 0))
    match = re.search(r"frame (\d+)/", info or "")
    return int(match[1]) if match else None


def _write_atomic(file: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``file``, then rename it over ``file``: never half a file."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _model_attr(model, name: str):
    """An attribute of a model, whether wrapped by AutoBackend (exports: from their metadata) or not."""
    for candidate in (model, getattr(model, "model", None)):
        value = getattr(candidate, name, None)
        if value is not None:
            return value
    return None


def _keypoint_classes(model) -> list[int]:
    """Keypoint class ids of a model, whether wrapped by AutoBackend or not."""
    for candidate in (model, getattr(model, "model", None)):
        names = getattr(candidate, "kpt_names", None)
        if names:
            return sorted(int(k) for k in names)
    return []


def masks_in_image(result: Results) -> np.ndarray | None:
    """(N, H, W) bool masks of one ``Results`` in original image pixels, undoing the letterbox when needed
    (``mtdata view --predictions`` hands this to :func:`mtdata.view.predictions.add_predictions`)."""
    if result.masks is None:
        return None
    data = result.masks.data
    h, w = result.orig_shape
    if tuple(data.shape[1:]) != (h, w):  # the same un-letterboxing ultralytics' own plots use
        tensor = torch.as_tensor(data.cpu().numpy() if hasattr(data, "cpu") else np.asarray(data), dtype=torch.float32)[None]
        data = ops.scale_masks(tensor, (h, w))[0]
    return (data.cpu().numpy() if hasattr(data, "cpu") else np.asarray(data)) > 0.5


def result_rows(result: Results, keypoint_classes: list[int], min_visible: float = 0.5,
                with_track_ids: bool = False) -> list[str]:
    """Multitask label rows (normalized, as ``mtdata.formats.yolo.rows`` writes them) for one Results.

    Keypoints with confidence < ``min_visible`` are written ``0 0 0``, visible ones with visibility 2; objects
    whose mask outline has fewer than 3 points are left out (a row needs a polygon). With ``with_track_ids``,
    tracked boxes' rows end with `` TRACK_ID``.
    """
    from mtdata.formats.yolo.rows import YoloRow, format_multitask_row

    if result.masks is None or result.boxes is None:
        return []
    rows = []
    polygons = result.masks.xyn
    classes = result.boxes.cls.int().tolist()
    kpts = result.keypoints.data.cpu().numpy() if result.keypoints is not None else None
    ids = result.boxes.id.int().tolist() if with_track_ids and result.boxes.is_track else None
    h, w = result.orig_shape
    for i, (cls, polygon) in enumerate(zip(classes, polygons)):
        if len(polygon) < 3:
            continue
        keypoints = None
        if cls in keypoint_classes and kpts is not None:
            k = kpts[i].astype(np.float64)
            visible = k[:, 2] >= min_visible
            keypoints = np.zeros((len(k), 3))
            keypoints[:, 0] = np.clip(k[:, 0] / w, 0, 1)
            keypoints[:, 1] = np.clip(k[:, 1] / h, 0, 1)
            keypoints[:, 2] = 2
            keypoints[~visible] = 0
        row = format_multitask_row(YoloRow(cls, polygon_xyn=np.clip(np.asarray(polygon, np.float64), 0, 1),
                                           keypoints_xyn=keypoints))
        rows.append(row if ids is None else f"{row} {ids[i]}")
    return rows


def write_multitask_txt(predn: dict, shape, file: Path, keypoint_classes: list[int], save_conf: bool = False) -> None:
    """Write a validator's scaled predictions as multitask rows (``save_conf`` is not part of the format)."""
    result = MultiTaskResults(
        np.zeros((shape[0], shape[1]), dtype=np.uint8), path=None, names={},
        boxes=torch.cat([predn["bboxes"], predn["conf"].unsqueeze(-1), predn["cls"].unsqueeze(-1)], dim=1),
        masks=torch.as_tensor(predn["masks"], dtype=torch.uint8), keypoints=predn["keypoints"],
        keypoint_classes=keypoint_classes,
    )
    result.save_txt(file)
