"""Weight transfer into a multitask model from multitask, segment or pose checkpoints.

Tensors load where name and shape agree. Ultralytics' Pose head keeps its keypoint branch in
``cv4`` (Pose26 also ``cv4_kpts``, ``cv4_sigma`` and their ``one2one_`` copies) while our heads keep mask
coefficients there and keypoints in ``cv5``; a pose checkpoint's ``cv4*`` is renamed to ``cv5*`` first, so its
keypoint branch lands where it belongs.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from mttrain._ultralytics import LOGGER, Pose, Segment, load_checkpoint_file
from mttrain.nn.head import MultiTask, MultiTask26


def read_checkpoint_model(path: str | Path, trust_weights: bool = False) -> torch.nn.Module:
    """The model inside an ultralytics/mttrain ``.pt``; a missing file fails at once (no download attempt).

    Loaded without running code from the file unless ``trust_weights`` (see ``load_checkpoint_file``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path} (mttrain never downloads weights)")
    ckpt = load_checkpoint_file(path, trust_weights=trust_weights)
    return (ckpt.get("ema") or ckpt.get("model")).float()


def _source_kind(model: torch.nn.Module) -> str:
    head = model.model[-1] if hasattr(model, "model") else None
    if isinstance(head, (MultiTask, MultiTask26)):
        return "multitask"
    if isinstance(head, Segment):
        return "segment"
    if isinstance(head, Pose):
        return "pose"
    return "detect"


def transferable_state(target: torch.nn.Module, source: torch.nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The source tensors that fit the target (same name after renaming, same shape), and the source kind."""
    kind = _source_kind(source)
    state = source.state_dict()
    if kind == "pose":  # cv4, cv4_kpts, cv4_sigma and their one2one_ copies (Pose26) -> cv5...
        head = re.escape(f"model.{len(source.model) - 1}.")
        state = {re.sub(rf"^({head}(?:one2one_)?)cv4((?:_kpts|_sigma)?\.)", r"\1cv5\2", k): v for k, v in state.items()}
    _match_keypoint_width(target, source, kind)
    own = target.state_dict()
    return {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, kind


def _match_keypoint_width(target: torch.nn.Module, source: torch.nn.Module, kind: str) -> None:
    """Rebuild the target's keypoint branch at the width of the source's, so a trained branch loads: ultralytics'
    Pose head is narrower than ours (``MultiTask.set_keypoint_width``), as are multitask checkpoints made before
    the branch was widened. Only when the branches take the same inputs (same family and scale)."""
    ours, theirs = target.model[-1], source.model[-1]
    if not isinstance(ours, MultiTask) or isinstance(theirs, MultiTask26):  # YOLO26 heads keep Pose26's width
        return
    if kind == "pose":
        branch = theirs.cv4
    elif kind == "multitask":
        branch = theirs.cv5
    else:
        return
    width, inputs = branch[0][0].conv.out_channels, [seq[0].conv.in_channels for seq in branch]
    if width != ours.keypoint_width and inputs == [seq[0].conv.in_channels for seq in ours.cv5]:
        LOGGER.info(f"keypoint branch rebuilt {width} channels wide (was {ours.keypoint_width}) to take the "
                    f"{kind} checkpoint's trained one")
        ours.set_keypoint_width(width)


def load_weights(target: torch.nn.Module, weights: torch.nn.Module | str | Path, verbose: bool = True,
                 trust_weights: bool = False) -> int:
    """Copy what fits from ``weights`` (a model or a .pt path) into ``target``; returns the tensor count."""
    source = read_checkpoint_model(weights, trust_weights) if isinstance(weights, (str, Path)) else weights
    state, kind = transferable_state(target, source)
    target.load_state_dict(state, strict=False)
    if verbose:
        LOGGER.info(f"Transferred {len(state)}/{len(target.state_dict())} tensors from a {kind} checkpoint")
    return len(state)
