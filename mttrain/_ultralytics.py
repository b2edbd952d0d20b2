"""The touches of ultralytics internals, in one place, for the supported version range.

mttrain subclasses ultralytics' model, loss, dataset, trainer, validator and predictor. The
internals it relies on move between releases, so the classes and functions it subclasses or
patches are imported here, and :func:`check_internals` lists, naming what moved, every
assumption that no longer holds (``tests/mttrain/test_ultralytics_internals.py`` fails on a non-empty list).
Importing this module also installs the patches (safe checkpoint loading, no run-time installs,
skeleton plots, FP32 OpenVINO) and refuses an ultralytics outside ``SUPPORTED``.

Not everything goes through here: a few public names are imported where they are used
(``nn.modules.conv.Conv`` in ``mttrain.nn.head``, ``data.utils.get_hash`` and ``utils.colorstr`` in
``mttrain.data``, the classes the checkpoint allow-list names in ``mttrain.checkpoint_guard``), and
ultralytics' argument table is read from its files, without importing it, by ``mttrain._ultralytics_cfg``.

Known traps in 8.4:
- ``parse_model`` resolves YAML layer names with ``globals()`` and special-cases heads by
  identity (``m is Segment``): a new head class is invisible to it. ``build_with_head`` (here)
  builds the YAML with ultralytics' own ``Segment`` in the head's place (so channel and width
  scaling stay ultralytics'), then swaps in the multitask head with the same inputs.
- ``YOLODataset`` derives ``use_segments`` / ``use_keypoints`` from one task string, so they
  are exclusive; the multitask dataset sets both (in ``mttrain.data``).
- ``Detect.forward`` returns a dict in training, a tensor in export mode and a tuple
  otherwise; the multitask head (``mttrain.nn.head``) keeps those contracts.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

# Offline by default: ultralytics checks connectivity before downloads and analytics.
os.environ.setdefault("YOLO_OFFLINE", "1")
# Never install at run time (and child processes, DDP workers included, inherit this); see block_installs().
os.environ["YOLO_AUTOINSTALL"] = "False"

import ultralytics  # noqa: E402
from ultralytics.data.augment import Compose, Format, LetterBox, v8_transforms  # noqa: E402,F401
from ultralytics.data.dataset import YOLODataset  # noqa: E402
from ultralytics.data.utils import check_file_speeds  # noqa: E402
from ultralytics.engine.model import Model  # noqa: E402
from ultralytics.engine.results import Results  # noqa: E402
from ultralytics.models.yolo.detect import DetectionPredictor  # noqa: E402
from ultralytics.models.yolo.segment import SegmentationTrainer, SegmentationValidator  # noqa: E402
from ultralytics.nn import tasks as _tasks  # noqa: E402
from ultralytics.nn.modules.block import Proto26, RealNVP  # noqa: E402,F401
from ultralytics.nn.modules.head import Pose, Pose26, Segment, Segment26  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, ops  # noqa: E402,F401
from ultralytics.utils.loss import (  # noqa: E402
    E2ELoss,
    KeypointLoss,
    PoseLoss26,
    RLELoss,
    SegmentLoss26,
    v8PoseLoss,
    v8SegmentationLoss,
)
from ultralytics.utils.metrics import OKS_SIGMA, RLE_WEIGHT, Metric, SegmentMetrics, ap_per_class, kpt_iou  # noqa: E402,F401

SUPPORTED = ((8, 4), (8, 5))  # [low, high): 8.4.x
__all__ = [
    "Compose", "DEFAULT_CFG", "DetectionModel", "DetectionPredictor", "Format", "KeypointLoss", "LOGGER", "LetterBox",
    "E2ELoss", "Metric", "Model", "OKS_SIGMA", "Pose", "Pose26", "Proto26", "RANK", "RLELoss", "RLE_WEIGHT", "RealNVP",
    "Segment26", "SegmentLoss26", "PoseLoss26", "Results", "Segment", "SegmentMetrics", "SegmentationTrainer", "block_installs",
    "SegmentationValidator", "YOLODataset", "ap_per_class", "check_file_speeds", "best_onnx_opset", "build_with_head", "check_arguments", "check_internals",
    "export_ready", "kpt_iou", "load_checkpoint_file", "no_requirement_installs",
    "ops", "read_export_metadata", "register_skeleton", "torch_safe_load", "trust_weights_file", "use_dataset_dict",
    "v8PoseLoss",
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
def build_with_head(head_name: str, head_factory, stand_in: str = "Segment") -> Iterator[None]:
    """While active, ``parse_model`` builds a ``head_name`` layer as ultralytics' ``stand_in`` (``Segment`` or
    ``Segment26``, which ``parse_model`` knows by identity: args ``[nc, nm, npr]`` scaled as ultralytics scales
    them, ``reg_max`` and ``end2end`` from the YAML) and then replaces it with ``head_factory(segment)``;
    everything else is ultralytics' own code path.
    """
    original = _tasks.parse_model

    def parse_model(d, ch, verbose=True):
        d = dict(d)
        head = [list(layer) for layer in d["head"]]
        index = next((i for i, layer in enumerate(head) if layer[2] == head_name), None)
        if index is None:
            return original(d, ch, verbose)
        head[index][2] = stand_in
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


def export_ready(model, fmt: str, dynamic: bool, end2end: bool = False):
    """A fused, eval, float32 copy of ``model`` prepared as ultralytics' Exporter prepares one: the head
    returns ``(detections, protos)`` (export mode) and rebuilds its anchors from the input shape when
    ``dynamic`` (otherwise they are traced as constants for the export size); C2f uses the split
    forward, which traces to a cleaner graph. ``end2end``: keep an end-to-end head's one-to-one branch (its
    rows are then (B, max_det, 6 + extra), as the Exporter's ``model.end2end = nms is False``), else the
    one-to-many one."""
    import copy

    from ultralytics.nn.modules.block import C2f
    from ultralytics.nn.modules.head import Detect

    model = copy.deepcopy(model).float().eval()
    for p in model.parameters():
        p.requires_grad = False
    model.end2end = end2end  # before fuse(), which drops the other branch
    model = model.fuse(verbose=False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format, m.dynamic, m.xyxy, m.shape = True, fmt, dynamic, False, None
        elif isinstance(m, C2f):
            m.forward = m.forward_split
    return model


def _install_openvino_fp32() -> None:
    """AutoBackend's OpenVINO backend compiles for FP32 unless asked for FP16 (``quantize=16``, 8.4's ``half``).

    OpenVINO's CPU plugin defaults to bf16 on CPUs with AVX512-BF16 or AMX (ultralytics forces FP32 on Windows
    only), which moves boxes and keypoints by pixels against the ``.pt``. The subclass sets FP32 on the
    ``ov.Core`` the backend creates, so it compiles once, as ultralytics does.
    """
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.backends.openvino import OpenVINOBackend

    if getattr(AutoBackend._BACKEND_MAP.get("openvino"), "mt_fp32", False):
        return

    class FP32OpenVINOBackend(OpenVINOBackend):
        mt_fp32 = True

        def load_model(self, weight):
            import importlib.util

            if self.fp16 or importlib.util.find_spec("openvino") is None:  # missing: ultralytics' check names it
                return super().load_model(weight)
            import openvino as ov

            class Core(ov.Core):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self.set_property("CPU", {"INFERENCE_PRECISION_HINT": ov.Type.f32})

            with _replaced(ov, "Core", Core):
                return super().load_model(weight)

    AutoBackend._BACKEND_MAP["openvino"] = FP32OpenVINOBackend


_install_openvino_fp32()


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
    if not skeleton or num_keypoints == 17:
        return
    pairs = [list(pair) for pair in skeleton if isinstance(pair, (list, tuple)) and len(pair) == 2]
    if pairs and all(type(i) is int and 0 <= i < num_keypoints for pair in pairs for i in pair):
        _SKELETONS[num_keypoints] = pairs  # anything else (a damaged export's metadata) draws no limbs


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
    from ultralytics.engine import results as _results

    _results.Annotator = SkeletonAnnotator  # Results.plot(): results[0].plot() and the images predict saves


_install_skeleton_annotator()

# --- Checkpoints: weights_only loading with an allow-list (no file may run code) ----------------------------------
#
# Every load of ultralytics' that mttrain reaches goes through two functions, both replaced below by
# ``mttrain.checkpoint_guard.load_checkpoint_file``: ``nn.tasks.torch_safe_load`` (called by
# ``nn.tasks.load_checkpoint``, which Model._load, the trainer's setup_model / check_resume / resume_training,
# AutoBackend's PyTorch backend and mttrain.transfer all use) and ``utils.torch_utils.torch_load``
# (strip_optimizer, run on last.pt and best.pt after training). parse_model is also put in ultralytics' restricted
# mode (no ``eval`` of a YAML's ``activation``, only nn.Module layers): a checkpoint's ``model.yaml`` is rebuilt by
# the trainer, and a model YAML may come from a stranger too.

from mttrain.checkpoint_guard import load_checkpoint_file, trust_weights_file  # noqa: E402
from mttrain.checkpoint_pickle import data_globals  # noqa: E402

ultralytics_torch_safe_load = _tasks.torch_safe_load  # ultralytics' own (full unpickling), for trusted files
_original_torch_load = None  # ultralytics.utils.torch_utils.torch_load, set by _install_safe_loading()



def torch_safe_load(weight, safe_only=None):
    """ultralytics' ``torch_safe_load`` contract (``(ckpt, file)``) over :func:`load_checkpoint_file`."""
    return load_checkpoint_file(weight), str(weight)


def _torch_load_checkpoint(f, *args, **kwargs):
    """``torch_utils.torch_load`` (strip_optimizer reads last.pt and best.pt with it): the same loader."""
    if isinstance(f, (str, os.PathLike)):
        return load_checkpoint_file(f)
    return _original_torch_load(f, *args, **kwargs)


def _install_safe_loading() -> None:
    global _original_torch_load
    from ultralytics.utils import torch_utils as _torch_utils

    if _tasks.torch_safe_load is not torch_safe_load:
        _tasks.torch_safe_load = torch_safe_load
    if _torch_utils.torch_load is not _torch_load_checkpoint:
        _original_torch_load = _torch_utils.torch_load
        _torch_utils.torch_load = _torch_load_checkpoint
    _tasks.SAFE_LOAD = True  # parse_model: no eval() of 'activation', only nn.Module layers (_SafeLoad.restricted)


_install_safe_loading()

# --- Nothing installs at run time ----------------------------------------------------------------------------------
#
# ultralytics pip-installs what a feature lacks (``utils.checks.check_requirements``: lap for tracking, onnxslim,
# faster-coco-eval, ...; its patched ``PIL.Image.open`` installs pi-heif on the first image Pillow cannot identify,
# which mtdata's image check meets on every undecodable file). Here: YOLO_AUTOINSTALL is off (top of this file),
# ``check_requirements`` checks without installing and raises MissingDependencyError naming the package, and
# ``Image.open`` uses pi-heif only when it is installed. mttrain's own extras declare what its features need.

_original_check_requirements = None
_original_check_apt_requirements = None
INSTALL_HINTS = {"lap": "pip install 'mt[train]'", "onnx": "pip install 'mt[export]'",
                 "onnxruntime": "pip install 'mt[export]'", "onnxslim": "pip install 'mt[export]'"}


def _requirement_names(requirements) -> list[str]:
    if isinstance(requirements, (str, Path)):
        requirements = [requirements]
    names = []
    for r in requirements or ():
        names.append(" or ".join(map(str, r)) if isinstance(r, (list, tuple)) else str(r))
    return names


def _check_requirements_without_install(requirements=None, exclude=(), install=True, cmds="", constrain=()):
    """ultralytics' ``check_requirements`` that never installs: True when satisfied; otherwise False when the
    caller asked not to install, else MissingDependencyError (the caller would have installed and used it)."""
    from mttrain.errors import MissingDependencyError

    kwargs = {"exclude": exclude, "install": False, "cmds": cmds, "constrain": constrain}
    ok = _original_check_requirements(requirements, **kwargs) if requirements is not None else \
        _original_check_requirements(**kwargs)
    if ok or not install:
        return bool(ok)
    names = _requirement_names(requirements)
    hint = next((INSTALL_HINTS[n] for n in INSTALL_HINTS if any(x.split(">")[0].split("=")[0] == n for x in names)),
                "pip install " + " ".join(f"'{n}'" for n in names))
    raise MissingDependencyError(f"this needs {', '.join(names)}, which is not installed, and mttrain never "
                                 f"installs packages at run time: {hint}")


def _check_apt_requirements_without_install(requirements):
    from mttrain.errors import MissingDependencyError

    raise MissingDependencyError(f"this needs the system packages {', '.join(requirements)}; mttrain never installs "
                                 f"packages at run time: apt install {' '.join(requirements)}")


def _image_open_without_install(fp, *args, **kwargs):
    """PIL's ``Image.open``; HEIF through pi-heif when it is installed (ultralytics' patch would pip-install it)."""
    import importlib.util

    from PIL import Image
    from ultralytics.utils import patches as _patches

    try:
        return _patches._image_open(fp, *args, **kwargs)
    except Image.UnidentifiedImageError:
        if importlib.util.find_spec("pi_heif") is None:
            raise
        from pi_heif import register_heif_opener

        register_heif_opener()
        if hasattr(fp, "seek"):
            fp.seek(0)
        return _patches._image_open(fp, *args, **kwargs)


def _check_font_offline(font="Arial.ttf"):
    """ultralytics' ``check_font`` without its download: the font from ultralytics' config folder or matplotlib's
    font list, else matplotlib's own DejaVu Sans (Latin, Greek, Cyrillic; other scripts draw as boxes).

    ultralytics' version fetches ``Arial.Unicode.ttf`` (23 MB) from GitHub for any plot of a non-ASCII class name,
    after a 3 s reachability check, on every plot while the download fails (offline: every batch image).
    """
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    name = Path(font).name
    if (USER_CONFIG_DIR / name).exists():
        return USER_CONFIG_DIR / name
    matches = [f.fname for f in font_manager.fontManager.ttflist if name in f.fname and Path(f.fname).exists()]
    return matches[0] if matches else font_manager.findfont("DejaVu Sans")


_original_check_font = None


def block_installs() -> None:
    """Make ultralytics' run-time installs and downloads check only (idempotent; runs when this module is imported):
    ``check_requirements`` and ``check_apt_requirements`` raise MissingDependencyError instead of installing,
    ``check_font`` takes a local font instead of downloading one, ``Image.open`` never installs pi-heif."""
    import sys

    from PIL import Image
    from ultralytics import utils as _utils
    from ultralytics.utils import checks as _checks

    global _original_check_requirements, _original_check_apt_requirements, _original_check_font
    _utils.AUTOINSTALL = _checks.AUTOINSTALL = False
    if _checks.check_font is not _check_font_offline:
        _original_check_font = _checks.check_font
    if _checks.check_requirements is not _check_requirements_without_install:
        _original_check_requirements = _checks.check_requirements
    if _checks.check_apt_requirements is not _check_apt_requirements_without_install:
        _original_check_apt_requirements = _checks.check_apt_requirements
    for name, module in list(sys.modules.items()):  # modules that imported the functions by name
        if not (name == "ultralytics" or name.startswith("ultralytics.")) or module is None:
            continue
        if getattr(module, "check_requirements", None) is _original_check_requirements:
            module.check_requirements = _check_requirements_without_install
        if getattr(module, "check_apt_requirements", None) is _original_check_apt_requirements:
            module.check_apt_requirements = _check_apt_requirements_without_install
        if getattr(module, "check_font", None) is _original_check_font:  # plotting, data.utils
            module.check_font = _check_font_offline
    Image.open = _image_open_without_install


block_installs()


# --- Arguments ---------------------------------------------------------------------------------------------------

EXTRA_ARGUMENTS = frozenset({"save_dir", "augmentations"})  # what ultralytics' check_dict_alignment also accepts


def check_arguments(args: dict) -> None:
    """ultralytics' own checks of argument names (``check_dict_alignment``) and types and ranges (``check_cfg``),
    each failure as one ArgumentError instead of its SyntaxError / TypeError / ValueError."""
    import difflib
    import re

    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    from mttrain.errors import ArgumentError

    for key in args:
        if key not in DEFAULT_CFG_DICT and key not in EXTRA_ARGUMENTS:
            close = difflib.get_close_matches(str(key), list(DEFAULT_CFG_DICT), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ArgumentError(f"unknown argument {key!r}{hint}")
    try:
        check_cfg(dict(args), hard=True)
    except (TypeError, ValueError) as e:
        message = re.sub(r"\s+", " ", re.sub(r"[^\x00-\x7f]+", "", str(e))).strip()  # no emojis, one line
        raise ArgumentError(message) from e


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
        problems.append("v8SegmentationLoss.get_assigned_targets_and_loss is gone (the multitask loss shares one assignment)")
    for name in ("get_img_files", "verify_args", "result_to_label", "get_cache_hash", "build_transforms", "update_labels_info"):
        if not hasattr(YOLODataset, name):
            problems.append(f"YOLODataset.{name} is gone")
    from ultralytics.engine import validator as _validator
    from ultralytics.utils import plotting as _plotting

    if "Annotator(" not in inspect.getsource(inspect.unwrap(_plotting.plot_images)) and "Annotator(" not in inspect.getsource(_plotting):
        problems.append("utils.plotting.plot_images no longer builds an Annotator (register_skeleton relies on it)")
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
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.backends.openvino import OpenVINOBackend

    if not getattr(AutoBackend._BACKEND_MAP.get("openvino"), "mt_fp32", False):
        problems.append("AutoBackend._BACKEND_MAP['openvino'] is not the FP32 OpenVINO backend")
    if "ov.Core()" not in inspect.getsource(OpenVINOBackend.load_model):
        problems.append("OpenVINOBackend.load_model no longer creates ov.Core() (the FP32 backend patches it)")
    problems += _check_loading_internals() + _check_install_internals() + _check_argument_internals()
    problems += _check_tracking_internals()
    return problems + _check_end2end_internals()


def _check_end2end_internals() -> list[str]:
    """What the YOLO26 multitask head and loss and the nms=False switch rely on."""
    import inspect

    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.engine import exporter as _exporter
    from ultralytics.engine import model as _model
    from ultralytics.engine import predictor as _predictor
    from ultralytics.engine import validator as _validator
    from ultralytics.nn.backends import pytorch as _pytorch_backend
    from ultralytics.nn.modules.head import Detect

    problems = []
    if "Segment26" not in inspect.getsource(_tasks.parse_model):
        problems.append("nn.tasks.parse_model no longer builds Segment26 (build_with_head uses it as the stand-in)")
    if list(inspect.signature(Segment26.__init__).parameters)[1:7] != ["nc", "nm", "npr", "reg_max", "end2end", "ch"]:
        problems.append("Segment26.__init__ signature changed from (nc, nm, npr, reg_max, end2end, ch)")
    segment = Segment26(nc=1, nm=4, npr=8, reg_max=1, end2end=True, ch=(8, 16))
    if set(segment.one2one) != {"box_head", "cls_head", "mask_head"} or not isinstance(segment.proto, Proto26):
        problems.append("Segment26's one2one keys or its Proto26 changed")
    if set(Pose26(nc=1, kpt_shape=(2, 3), reg_max=1, ch=(8,)).one2many) != {
            "box_head", "cls_head", "pose_head", "kpts_head", "kpts_sigma_head"}:
        problems.append("Pose26.one2many keys changed (MultiTask26 mirrors them)")
    if not isinstance(inspect.getattr_static(Detect, "end2end"), property) or \
            "one2one_cv2" not in inspect.getsource(inspect.getattr_static(Detect, "end2end").fget):
        problems.append("Detect.end2end is no longer a property keyed on one2one_cv2 (MultiTask26 keeps that name)")
    if 'startswith("one2one_")' not in inspect.getsource(Detect.fuse):
        problems.append("Detect.fuse no longer drops branches by the one2one_ prefix (MultiTask26 names rely on it)")
    if "flow_model = None" not in inspect.getsource(Pose26.fuse) or "semseg = None" not in inspect.getsource(Proto26.fuse):
        problems.append("Pose26.fuse / Proto26.fuse no longer drop the flow model / semantic head")
    if "return_semantic" not in inspect.signature(Proto26.forward).parameters:
        problems.append("Proto26.forward no longer takes return_semantic")
    for name in ("one2many", "one2one", "update", "decay", "o2m", "o2o"):
        if name not in inspect.getsource(E2ELoss):
            problems.append(f"E2ELoss.{name} is gone (MultiTaskLoss26 trains in its scheme)")
    if list(inspect.signature(E2ELoss.__init__).parameters)[1:3] != ["model", "loss_fn"]:
        problems.append("E2ELoss.__init__ no longer takes (model, loss_fn)")
    for name in ("calculate_keypoints_loss", "calculate_rle_loss", "_rle_zero", "kpts_decode"):
        if not hasattr(PoseLoss26, name):
            problems.append(f"PoseLoss26.{name} is gone")
    if "pd_coef=" not in inspect.getsource(SegmentLoss26.get_assigned_targets_and_loss):
        problems.append("SegmentLoss26.get_assigned_targets_and_loss is no longer the mask-aware assignment")
    if "rle" not in DEFAULT_CFG_DICT:
        problems.append("cfg/default.yaml has no rle gain")
    switches = {
        (_predictor, "engine.predictor"): "end2end=self.args.nms is False",
        (_validator, "engine.validator"): "model.end2end = self.args.nms is False",
        (_exporter, "engine.exporter"): "model.end2end = self.args.nms is False",
        (_pytorch_backend, "nn.backends.pytorch"): "model.end2end = self.end2end_override",
    }
    for (module, where), text in switches.items():
        if text not in inspect.getsource(module):
            problems.append(f"{where} no longer switches the end-to-end branch with nms=False ({text!r})")
    if "nms" not in getattr(_model, "PREDICTOR_SETUP_KEYS", ()):
        problems.append("engine.model.PREDICTOR_SETUP_KEYS lacks nms (a new nms= would reuse the old branch)")
    return problems


def _check_loading_internals() -> list[str]:
    """Every checkpoint load mttrain reaches still goes through the two functions the safe loader replaces."""
    import inspect

    import torch
    from ultralytics.engine import model as _model
    from ultralytics.engine import trainer as _trainer
    from ultralytics.nn.backends import pytorch as _pytorch_backend
    from ultralytics.utils import torch_utils as _torch_utils

    problems = []
    if "torch_safe_load(" not in inspect.getsource(_tasks.load_checkpoint):
        problems.append("nn.tasks.load_checkpoint no longer calls torch_safe_load (the safe loader replaces it)")
    if _tasks.torch_safe_load is not torch_safe_load or _torch_utils.torch_load is not _torch_load_checkpoint:
        problems.append("the safe checkpoint loader is not installed in nn.tasks / utils.torch_utils")
    if "torch_load(" not in inspect.getsource(_torch_utils.strip_optimizer):
        problems.append("utils.torch_utils.strip_optimizer no longer loads with torch_load")
    for module, where in ((_model, "engine.model"), (_trainer, "engine.trainer"), (_pytorch_backend, "nn.backends.pytorch")):
        source = inspect.getsource(module)
        if "torch.load(" in source or ("torch_load(" in source and module is not _trainer):
            problems.append(f"{where} loads checkpoints itself now (not through load_checkpoint)")
        if "load_checkpoint" not in source:
            problems.append(f"{where} no longer uses nn.tasks.load_checkpoint")
    if "torch_load(" in inspect.getsource(_trainer.BaseTrainer):
        problems.append("engine.trainer.BaseTrainer loads with torch_load (not through load_checkpoint)")
    if not _tasks._SafeLoad.restricted():
        problems.append("nn.tasks._SafeLoad.restricted() is off although SAFE_LOAD is set (parse_model would eval)")
    ours = set(data_globals())
    theirs = set(_tasks._SafeLoad._build())
    if theirs - ours:
        problems.append(f"ultralytics' safe-load allow-list has entries mttrain's lacks: {sorted(theirs - ours)}")
    for name in ("_is_zipfile", "_open_zipfile_reader", "get_unsafe_globals_in_checkpoint", "add_safe_globals"):
        if not hasattr(torch.serialization, name):
            problems.append(f"torch.serialization.{name} is gone (the safe loader uses it)")
    from torch import _weights_only_unpickler

    if not hasattr(_weights_only_unpickler, "_get_allowed_globals"):
        problems.append("torch._weights_only_unpickler._get_allowed_globals is gone")
    return problems


def _check_install_internals() -> list[str]:
    from ultralytics.utils import checks as _checks
    from ultralytics.utils import patches as _patches

    problems = []
    if _checks.check_requirements is not _check_requirements_without_install:
        problems.append("utils.checks.check_requirements is not the non-installing one")
    from ultralytics.utils import plotting as _plotting

    if _plotting.check_font is not _check_font_offline:
        problems.append("utils.plotting.check_font is not the offline one (plots would download fonts)")
    if not hasattr(_patches, "_image_open"):
        problems.append("utils.patches._image_open (PIL's own Image.open) is gone")
    return problems


def _check_argument_internals() -> list[str]:
    from ultralytics import cfg as _cfg

    from mttrain import _ultralytics_cfg

    problems = []
    if set(_ultralytics_cfg.defaults()) != set(_cfg.DEFAULT_CFG_DICT):
        problems.append("cfg/default.yaml as read by mttrain._ultralytics_cfg differs from DEFAULT_CFG_DICT")
    try:
        tables = _ultralytics_cfg.type_tables()
    except ImportError as e:
        return [*problems, str(e)]
    for name, value in tables.items():
        if getattr(_cfg, name, None) != value:
            problems.append(f"cfg.{name} as read by mttrain._ultralytics_cfg differs from the imported one")
    return problems


# --- Video and tracking ------------------------------------------------------------------------------------------


def video_suffixes() -> frozenset[str]:
    """The file suffixes ultralytics' loader reads as videos (lower case, with the dot)."""
    from ultralytics.data.utils import VID_FORMATS

    return frozenset(f".{s}" for s in VID_FORMATS)


def image_suffixes() -> frozenset[str]:
    """The file suffixes ultralytics' loader reads as images (lower case, with the dot)."""
    from ultralytics.data.utils import IMG_FORMATS

    return frozenset(f".{s}" for s in IMG_FORMATS)


def tracker_types() -> frozenset[str]:
    """The ``tracker_type`` values ultralytics' ``trackers.track.on_predict_start`` accepts."""
    from ultralytics.trackers.track import TRACKER_MAP

    return frozenset(TRACKER_MAP)


def shipped_trackers() -> dict[str, Path]:
    """ultralytics' tracker YAMLs by file name (``bytetrack.yaml``, ``botsort.yaml``, ...)."""
    return {p.name: p for p in sorted((Path(ultralytics.__file__).parent / "cfg" / "trackers").glob("*.yaml"))}


def _check_tracking_internals() -> list[str]:
    import inspect

    from ultralytics.engine.results import Boxes
    from ultralytics.trackers import track as _track

    problems = []
    if not {"bytetrack.yaml", "botsort.yaml"} <= set(shipped_trackers()):
        problems.append("cfg/trackers/bytetrack.yaml or botsort.yaml is gone")
    if not {"bytetrack", "botsort"} <= tracker_types():
        problems.append("trackers.track.TRACKER_MAP lost bytetrack or botsort")
    source = inspect.getsource(_track.on_predict_postprocess_end)
    if "result[idx]" not in source:
        problems.append("trackers.track.on_predict_postprocess_end no longer indexes the Results by the tracked "
                        "detections (masks and keypoints would not follow their track)")
    if "is_track" not in inspect.getsource(Boxes.__init__):
        problems.append("engine.results.Boxes no longer marks tracked boxes with is_track")
    return problems
