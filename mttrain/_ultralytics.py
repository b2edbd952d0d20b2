"""Every touch of ultralytics internals, in one place, for the supported version range.

mttrain subclasses ultralytics' model, loss, dataset, trainer, validator and predictor. The
internals it relies on move between releases, so they are all imported here and
``check_internals`` (run by the tests) fails loudly, naming what moved, when they do.

Known traps in 8.4 handled here:
- ``parse_model`` resolves YAML layer names with ``globals()`` and special-cases heads by
  identity (``m is Segment``): a new head class is invisible to it. ``build_with_head``
  builds the YAML with ultralytics' own ``Segment`` in the head's place (so channel and width
  scaling stay ultralytics'), then swaps in the multitask head with the same inputs.
- ``YOLODataset`` derives ``use_segments`` / ``use_keypoints`` from one task string, so they
  are exclusive; the multitask dataset sets both (see ``mttrain.data``).
- ``Detect.forward`` returns a dict in training, a tensor in export mode and a tuple
  otherwise; the multitask head keeps those contracts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Offline by default: ultralytics checks connectivity before downloads and analytics.
os.environ.setdefault("YOLO_OFFLINE", "1")

import ultralytics  # noqa: E402
from ultralytics.data.augment import Compose, Format, LetterBox, v8_transforms  # noqa: E402,F401
from ultralytics.data.dataset import YOLODataset  # noqa: E402
from ultralytics.engine.model import Model  # noqa: E402
from ultralytics.engine.results import Results  # noqa: E402
from ultralytics.models.yolo.detect import DetectionPredictor  # noqa: E402
from ultralytics.models.yolo.segment import SegmentationTrainer, SegmentationValidator  # noqa: E402
from ultralytics.nn import tasks as _tasks  # noqa: E402
from ultralytics.nn.modules.head import Pose, Segment  # noqa: E402
from ultralytics.nn.tasks import DetectionModel, torch_safe_load  # noqa: E402
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, ops  # noqa: E402,F401
from ultralytics.utils.loss import KeypointLoss, v8PoseLoss, v8SegmentationLoss  # noqa: E402
from ultralytics.utils.metrics import OKS_SIGMA, SegmentMetrics, Metric, ap_per_class, kpt_iou  # noqa: E402,F401

SUPPORTED = ((8, 4), (8, 5))  # [low, high): 8.4.x
__all__ = [
    "Compose", "DEFAULT_CFG", "DetectionModel", "DetectionPredictor", "Format", "KeypointLoss", "LOGGER", "LetterBox",
    "Metric", "Model", "OKS_SIGMA", "Pose", "RANK", "Results", "Segment", "SegmentMetrics", "SegmentationTrainer",
    "SegmentationValidator", "YOLODataset", "ap_per_class", "best_onnx_opset", "build_with_head", "check_internals",
    "export_ready", "kpt_iou", "no_requirement_installs",
    "ops", "read_export_metadata", "register_skeleton", "torch_safe_load", "use_dataset_dict", "v8PoseLoss",
    "v8SegmentationLoss", "v8_transforms",
]


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def check_version(version: str = ultralytics.__version__) -> None:
    """Refuse an ultralytics outside the supported range with one clear error."""
    low, high = SUPPORTED
    if not (low <= _version_tuple(version) < high):
        raise ImportError(
            f"mttrain supports ultralytics >={low[0]}.{low[1]},<{high[0]}.{high[1]}; found {version}. "
            f"Install a supported one: pip install 'ultralytics>={low[0]}.{low[1]},<{high[0]}.{high[1]}'"
        )


check_version()


def register_task() -> None:
    """Make "multitask" known to the task tables ultralytics' Model consults (train defaults, tuning)."""
    from ultralytics import cfg as _cfg

    _cfg.TASK2DATA.setdefault("multitask", None)
    _cfg.TASK2MODEL.setdefault("multitask", "yolov8n-multitask.yaml")
    _cfg.TASK2METRIC.setdefault("multitask", "metrics/mAP50-95(M)")


register_task()


@contextlib.contextmanager
def _replaced(module, name: str, value) -> Iterator[None]:
    """While active, ``module.name`` is ``value``; the original comes back on exit, error or not."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def build_with_head(head_name: str, head_factory) -> Iterator[None]:
    """While active, ``parse_model`` builds a ``head_name`` layer as ultralytics' ``Segment``
    (args ``[nc, nm, npr]`` scaled as ultralytics scales them) and then replaces it with
    ``head_factory(segment)``; everything else is ultralytics' own code path.
    """
    original = _tasks.parse_model

    def parse_model(d, ch, verbose=True):
        d = dict(d)
        head = [list(layer) for layer in d["head"]]
        index = next((i for i, layer in enumerate(head) if layer[2] == head_name), None)
        if index is None:
            return original(d, ch, verbose)
        head[index][2] = "Segment"
        head[index][3] = list(head[index][3][:3])  # nc, nm, npr: what Segment takes before reg_max/end2end/ch
        d["head"] = head
        model, save = original(d, ch, verbose)
        segment = model[-1]
        replacement = head_factory(segment)
        for attr in ("i", "f"):
            setattr(replacement, attr, getattr(segment, attr))
        replacement.type = f"{type(replacement).__module__}.{type(replacement).__name__}"
        replacement.np = sum(p.numel() for p in replacement.parameters())
        model[-1] = replacement
        return model, save

    with _replaced(_tasks, "parse_model", parse_model):
        yield


@contextlib.contextmanager
def use_dataset_dict(data: dict) -> Iterator[None]:
    """While active, a standalone validator takes ``data`` instead of running ``check_det_dataset``
    (which resolves relative paths against ultralytics' datasets folder and may try downloads)."""
    from ultralytics.engine import validator as _validator

    with _replaced(_validator, "check_det_dataset", lambda *args, **kwargs: data):
        yield


@contextlib.contextmanager
def no_requirement_installs() -> Iterator[None]:
    """While active, ultralytics' segment validator skips ``check_requirements("faster-coco-eval")``,
    which it runs when ``save_json`` is set and which would pip-install offline; mttrain evaluates
    predictions.json with pycocotools instead (``mttrain.coco_eval``)."""
    from ultralytics.models.yolo.segment import val as _segment_val

    with _replaced(_segment_val, "check_requirements", lambda *args, **kwargs: True):
        yield


def export_ready(model, fmt: str, dynamic: bool):
    """A fused, eval, float32 copy of ``model`` prepared as ultralytics' Exporter prepares one: the head
    returns ``(detections, protos)`` (export mode) and rebuilds its anchors from the input shape when
    ``dynamic`` (otherwise they are traced as constants for the export size); C2f uses the split
    forward, which traces to a cleaner graph."""
    import copy

    from ultralytics.nn.modules.block import C2f
    from ultralytics.nn.modules.head import Detect

    model = copy.deepcopy(model).float().eval()
    for p in model.parameters():
        p.requires_grad = False
    model = model.fuse(verbose=False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format, m.dynamic, m.xyxy, m.shape = True, fmt, dynamic, False, None
        elif isinstance(m, C2f):
            m.forward = m.forward_split
    return model


def read_export_metadata(file) -> dict:
    """The metadata ultralytics' AutoBackend reads from an export (raw strings for ONNX); {} when none."""
    from ultralytics.nn.backends.base import BaseBackend

    return BaseBackend.read_metadata(file)


def best_onnx_opset() -> int:
    """ultralytics' default ONNX opset for the installed torch and onnx."""
    import onnx
    from ultralytics.utils.export.engine import best_onnx_opset as best

    return best(onnx)


_SKELETONS: dict[int, list[list[int]]] = {}  # keypoint count -> 0-based skeleton, for batch plots


def register_skeleton(num_keypoints: int, skeleton: list[list[int]] | None) -> None:
    """Make ultralytics' batch plots draw ``skeleton`` (0-based pairs) for ``num_keypoints``-point objects.

    ultralytics' ``Annotator.kpts`` draws limbs only for the 17-point COCO layout, and its
    ``plot_images`` runs in a background thread, so a scoped patch could be undone before the
    thread draws. The Annotator subclass is therefore installed once (below) and looks its
    skeletons up here; nothing changes for 17-point data or unregistered counts.
    """
    if skeleton and num_keypoints != 17:
        _SKELETONS[num_keypoints] = [list(pair) for pair in skeleton]


def _install_skeleton_annotator() -> None:
    import cv2
    import numpy as np
    from ultralytics.utils import plotting as _plotting

    original = _plotting.Annotator
    if getattr(original, "mt_skeletons", False):
        return

    class SkeletonAnnotator(original):
        mt_skeletons = True

        def kpts(self, kpts, shape=(640, 640), radius=None, kpt_line=True, conf_thres=0.25, kpt_color=None):
            super().kpts(kpts, shape, radius, kpt_line, conf_thres, kpt_color)
            points = kpts.cpu().numpy() if hasattr(kpts, "cpu") else np.asarray(kpts)
            skeleton = _SKELETONS.get(len(points))
            if not kpt_line or not skeleton:
                return
            image = np.asarray(self.im).copy()
            for i, (a, b) in enumerate(skeleton):
                if points.shape[1] == 3 and min(points[a, 2], points[b, 2]) < conf_thres:
                    continue
                pa, pb = tuple(int(v) for v in points[a, :2]), tuple(int(v) for v in points[b, :2])
                color = kpt_color or _plotting.colors(i, bgr=not self.pil)
                cv2.line(image, pa, pb, color, thickness=max(int(np.ceil(self.lw / 2)), 1), lineType=cv2.LINE_AA)
            if self.pil:
                self.fromarray(image)
            else:
                self.im = image

    _plotting.Annotator = SkeletonAnnotator


_install_skeleton_annotator()


def check_internals() -> list[str]:
    """What mttrain expects of ultralytics internals and is missing; empty when all is in place."""
    import inspect

    problems = []
    if "parse_model(" not in inspect.getsource(_tasks._initialize_yolo_model):
        problems.append("nn.tasks._initialize_yolo_model no longer calls parse_model (build_with_head relies on it)")
    if list(inspect.signature(Segment.__init__).parameters)[1:7] != ["nc", "nm", "npr", "reg_max", "end2end", "ch"]:
        problems.append("Segment.__init__ signature changed from (nc, nm, npr, reg_max, end2end, ch)")
    if set(Segment(nc=1, nm=4, npr=8, ch=(8,)).one2many) != {"box_head", "cls_head", "mask_head"}:
        problems.append("Segment.one2many keys changed")
    for name in ("kpts_decode", "_batch_keypoints", "calculate_keypoints_loss"):
        if not hasattr(v8PoseLoss, name):
            problems.append(f"v8PoseLoss.{name} is gone")
    if not hasattr(v8SegmentationLoss, "get_assigned_targets_and_loss"):
        problems.append("v8DetectionLoss.get_assigned_targets_and_loss is gone (the multitask loss shares one assignment)")
    for name in ("verify_args", "result_to_label", "get_cache_hash", "build_transforms", "update_labels_info"):
        if not hasattr(YOLODataset, name):
            problems.append(f"YOLODataset.{name} is gone")
    from ultralytics.engine import validator as _validator
    from ultralytics.utils import plotting as _plotting

    if "Annotator(" not in inspect.getsource(inspect.unwrap(_plotting.plot_images)) and "Annotator(" not in inspect.getsource(_plotting):
        problems.append("utils.plotting.plot_images no longer builds an Annotator (skeleton_plots relies on it)")
    if not hasattr(_validator, "check_det_dataset"):
        problems.append("engine.validator.check_det_dataset is gone (use_dataset_dict patches it)")
    for name in ("_process_batch", "_prepare_batch", "postprocess", "match_predictions"):
        if not hasattr(SegmentationValidator, name):
            problems.append(f"SegmentationValidator.{name} is gone")
    from ultralytics.models.yolo.segment import val as _segment_val

    if not hasattr(_segment_val, "check_requirements"):
        problems.append("models.yolo.segment.val.check_requirements is gone (no_requirement_installs patches it)")
    for name in ("pred_to_json", "eval_json", "scale_preds"):
        if not hasattr(SegmentationValidator, name):
            problems.append(f"SegmentationValidator.{name} is gone (--save-json overrides it)")
    from ultralytics.nn.modules.block import C2f
    from ultralytics.nn.modules.head import Detect

    for name in ("export", "format", "dynamic", "xyxy", "shape"):
        if not hasattr(Detect, name):
            problems.append(f"Detect.{name} is gone (export_ready sets it)")
    if not hasattr(C2f, "forward_split"):
        problems.append("C2f.forward_split is gone (export_ready uses it)")
    from ultralytics.nn.backends.base import BaseBackend

    if not hasattr(BaseBackend, "read_metadata"):
        problems.append("nn.backends.base.BaseBackend.read_metadata is gone (read_export_metadata uses it)")
    return problems
