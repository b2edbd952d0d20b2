"""The data.yaml files of a merge: each input's, checked for its task (:func:`read_pose_config`,
:func:`read_segment_config`), and OUT's, built from both (:func:`output_config`)."""

from __future__ import annotations

from pathlib import Path

from mtdata.errors import DatasetConfigError, InputError, why_missing
from mtdata.formats.yolo.data_yaml import DatasetConfig, load_yaml_mapping, parse_data_dict


def _yaml_path(dataset: Path, side: str) -> Path:
    dataset = Path(dataset)
    if not dataset.exists():
        raise InputError(why_missing(dataset, f"{side} dataset not found: expected a folder with data.yaml, or the data.yaml itself"), file=dataset)
    path = dataset / "data.yaml" if dataset.is_dir() else dataset
    if dataset.is_dir() and not path.is_file() and (dataset / "data.yml").is_file():
        path = dataset / "data.yml"
    if not path.is_file():
        raise DatasetConfigError(why_missing(path, f"{side} dataset has no data.yaml (it needs 'names' and the split folders)"), file=path)
    return path


def read_pose_config(dataset: Path) -> DatasetConfig:
    """The data.yaml of a pose dataset (ours with ``task: pose``, or ultralytics' without ``task``)."""
    path = _yaml_path(dataset, "KPT")
    data = load_yaml_mapping(path)
    declared = data.get("task")
    if declared not in (None, "pose"):
        raise DatasetConfigError(f"KPT must be a pose dataset, but data.yaml says task: {declared}", file=path)
    if data.get("kpt_shape") is None:
        raise DatasetConfigError("KPT needs 'kpt_shape: [K, 2 or 3]' (keypoints per object): is this a pose dataset?", file=path)
    return parse_data_dict(data, path, task="pose")


def read_segment_config(dataset: Path) -> DatasetConfig:
    """The data.yaml of a segment dataset; a pose or multitask one is refused (swapped arguments?)."""
    path = _yaml_path(dataset, "SEG")
    data = load_yaml_mapping(path)
    declared = data.get("task")
    if declared not in (None, "segment"):
        raise DatasetConfigError(f"SEG must be a segment dataset, but data.yaml says task: {declared} (KPT and SEG swapped?)", file=path)
    if declared is None and data.get("kpt_shape") is not None:
        raise DatasetConfigError("SEG has 'kpt_shape': it looks like a pose dataset (KPT and SEG swapped?)", file=path)
    return parse_data_dict(data, path, task="segment")


def _carried_extras(configs: list[DatasetConfig], notes: list[str]) -> dict:
    """Extra data.yaml keys worth keeping (SEG's first); keys that name a file of an input stay behind."""
    extra: dict = {}
    left: set[str] = set()
    for config in configs:
        for key, value in config.extra.items():
            if key in extra:
                continue
            values = value if isinstance(value, list) else [value]
            if values and all(isinstance(v, str) and v and (config.root / v).exists() for v in values):
                left.add(key)
                continue
            extra[key] = value
    if left - set(extra):
        notes.append(f"data.yaml keys {sorted(left - set(extra))} name files of the inputs; not carried over")
    return extra


def output_config(out: Path, kpt: DatasetConfig, seg: DatasetConfig, groups: dict[int, list[int]], splits: dict[str, str], notes: list[str]) -> DatasetConfig:
    """OUT's data.yaml: SEG's names, the mapped SEG classes with KPT's keypoint names and metadata."""
    k = kpt.num_keypoints
    kpt_names = {}
    for kpt_class, targets in groups.items():
        names = kpt.kpt_names.get(kpt_class) or [f"kpt{i}" for i in range(k)]
        for s in targets:
            kpt_names[s] = list(names)
    flip_idx = kpt.flip_idx
    if flip_idx is None and kpt_names:
        from mtdata.keypoints import derive_flip_idx

        names = next(iter(kpt_names.values()))
        derived, _ = derive_flip_idx(names)
        if derived != list(range(k)):
            flip_idx = derived
            notes.append(f"KPT has no flip_idx: derived {derived} from the keypoint names (left/right pairs)")
        else:
            notes.append("KPT has no flip_idx and its keypoint names have no left/right pairs: none written")
    return DatasetConfig(
        root=Path(out).resolve(),
        splits={key: [f"images/{folder}"] for key, folder in splits.items()},
        names=dict(seg.names),
        task="multitask",
        kpt_shape=(k, 3),
        kpt_names=dict(sorted(kpt_names.items())),
        flip_idx=flip_idx,
        skeleton=kpt.skeleton,
        kpt_sigmas=kpt.kpt_sigmas,
        extra=_carried_extras([seg, kpt], notes),
    )
