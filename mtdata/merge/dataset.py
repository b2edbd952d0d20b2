"""A YOLO pose dataset + a YOLO segment dataset of the same images -> one multitask dataset.

``merge_datasets`` is the library entry point behind ``mtdata merge``. Per split, image and
mapped class pair, pose rows are paired one-to-one with masks by box IoU
(:func:`mtdata.merge.match.match_boxes`). Nothing is lost: every mask row is written once (with its
pose's keypoints, or absent ``0 0 0`` keypoints when none matched), and every pose row that
found no mask is listed in ``OUT/unmatched.json`` with the reason.

Everything is computed in normalized coordinates: box IoU and keypoint containment do not
change when the axes are scaled, so no image is opened. The work is split into chunks of
images (:mod:`mtdata.merge.chunk`), run in worker processes when there are many.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtdata._runtime.output import atomic_output_dir, check_output_dir
from mtdata._runtime.parallel import WorkerPool
from mtdata.errors import DatasetConfigError, InputError, MtdataError, why_missing
from mtdata.formats.yolo.data_yaml import DatasetConfig, load_yaml_mapping, parse_data_dict, write_data_yaml
from mtdata.merge.chunk import MergeContext, merge_chunk, prepare_worker
from mtdata.merge.plan import ImageJob, JobBatch, MergePlan, build_jobs, count_seg_labels

Progress = Callable[[int, int], None]
PARALLEL_MIN_IMAGES = 2000  # below this, starting worker processes costs more than it saves
IOU_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
UNMATCHED_REASONS = {
    "below_iou": "no mask of the mapped classes reached --iou",
    "mask_taken": "its best masks went to poses with higher IoU",
    "no_mask": "the image has no mask of the mapped classes",
    "image_not_in_seg": "SEG has neither the image nor its label file",
    "class_not_mapped": "its class maps to no SEG class",
}


@dataclass
class MergeReport:
    """What a merge did: images per split, rows per class and side, IoUs of the matches."""

    out: Path
    kpt: Path
    seg: Path
    iou_threshold: float
    class_map: dict[str, list[str]] = field(default_factory=dict)  # KPT class -> SEG classes
    images: dict[str, Counter] = field(default_factory=dict)  # split -> both / seg_only / kpt_only / written
    seg_rows: Counter = field(default_factory=Counter)  # SEG class -> rows written
    seg_matched: Counter = field(default_factory=Counter)  # SEG class -> rows that got keypoints
    kpt_rows: Counter = field(default_factory=Counter)  # KPT class -> rows read
    kpt_matched: Counter = field(default_factory=Counter)
    kpt_unmatched: Counter = field(default_factory=Counter)  # reason -> KPT rows
    ious: np.ndarray = field(default_factory=lambda: np.zeros(0))
    problems: list[dict] = field(default_factory=list)  # malformed rows: side, file, line, kind, message
    unmatched_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.ious)

    def iou_histogram(self) -> list[tuple[float, float, int]]:
        """(low, high, count) bins of the matched pairs' IoU, from the threshold up to 1."""
        edges = sorted({self.iou_threshold, *[e for e in IOU_BINS if e > self.iou_threshold]})
        if len(edges) == 1:
            edges = [edges[0], 1.0]
        counts, _ = np.histogram(np.clip(self.ious, edges[0], edges[-1]), bins=edges)
        return [(edges[i], edges[i + 1], int(c)) for i, c in enumerate(counts)]

    def iou_quantiles(self, qs: list[float]) -> list[float]:
        """Quantiles of the matched pairs' IoU, as ``np.quantile`` (linear) computes them.

        By hand because ``np.quantile`` and ``np.median`` import ``numpy.ma`` (14 ms) on every run.
        """
        ious = np.sort(self.ious)
        position = np.asarray(qs, dtype=np.float64) * (len(ious) - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, len(ious) - 1)
        return (ious[low] + (ious[high] - ious[low]) * (position - low)).tolist()

    def to_dict(self) -> dict:
        q = [round(v, 4) for v in self.iou_quantiles([0.0, 0.05, 0.5])] if self.matched else [None] * 3
        return {
            "out": str(self.out),
            "kpt": str(self.kpt),
            "seg": str(self.seg),
            "iou_threshold": self.iou_threshold,
            "class_map": self.class_map,
            "images": {split: dict(c) for split, c in self.images.items()},
            "matched": self.matched,
            "seg_rows": dict(self.seg_rows),
            "seg_matched": dict(self.seg_matched),
            "seg_unmatched": {c: self.seg_rows[c] - self.seg_matched[c] for c in self.keypoint_seg_classes()},
            "kpt_rows": dict(self.kpt_rows),
            "kpt_matched": dict(self.kpt_matched),
            "kpt_unmatched_by_reason": dict(self.kpt_unmatched),
            "iou": {
                "min": q[0], "p05": q[1], "median": q[2],
                "mean": round(float(self.ious.mean()), 4) if self.matched else None,
                "histogram": [{"from": lo, "to": hi, "pairs": n} for lo, hi, n in self.iou_histogram()],
            },
            "malformed_rows": self.problems,
            "unmatched_file": str(self.unmatched_file) if self.unmatched_file else None,
            "notes": self.notes,
        }

    def keypoint_seg_classes(self) -> list[str]:
        return sorted({s for targets in self.class_map.values() for s in targets})


# --- inputs -----------------------------------------------------------------------------


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


def _class_id(token: str, names: dict[int, str], side: str, file: Path | None) -> int:
    by_name = {v: k for k, v in names.items()}
    if token in by_name:
        return by_name[token]
    if token.isdigit() and int(token) in names:
        return int(token)
    raise InputError(f"--map names {side} class {token!r}, which is not among its classes {list(names.values())}", file=file)


def class_groups(kpt: DatasetConfig, seg: DatasetConfig, mapping: list[str] | None = None) -> dict[int, list[int]]:
    """KPT class id -> the SEG class ids whose masks its poses may pair with.

    Classes pair by equal names; each ``KPTCLASS=SEGCLASS`` entry (names or ids) replaces what
    that KPT class maps to (several entries for one KPT class give it several SEG classes).
    A SEG class takes poses from one KPT class at most.
    """
    groups: dict[int, list[int]] = {}
    by_seg_name = {v: k for k, v in seg.names.items()}
    for k, name in kpt.names.items():
        if name in by_seg_name:
            groups[k] = [by_seg_name[name]]
    overridden: set[int] = set()
    for entry in mapping or []:
        left, sep, right = entry.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise InputError(f"--map expects KPTCLASS=SEGCLASS, found {entry!r}")
        k = _class_id(left.strip(), kpt.names, "KPT", kpt.file)
        s = _class_id(right.strip(), seg.names, "SEG", seg.file)
        if k not in overridden:
            groups[k] = []
            overridden.add(k)
        if s not in groups[k]:
            groups[k].append(s)
    groups = {k: sorted(v) for k, v in sorted(groups.items()) if v}
    owner: dict[int, int] = {}
    for k, targets in groups.items():
        for s in targets:
            if s in owner:
                raise InputError(
                    f"SEG class {seg.names[s]!r} would take poses from two KPT classes, "
                    f"{kpt.names[owner[s]]!r} and {kpt.names[k]!r}: pass --map to choose one"
                )
            owner[s] = k
    if not groups:
        raise InputError(
            f"no KPT class has the name of a SEG class (KPT: {list(kpt.names.values())}, SEG: {list(seg.names.values())}): "
            "pass --map KPTCLASS=SEGCLASS"
        )
    return groups


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


# --- the merge --------------------------------------------------------------------------


def _workers(images: int, workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    if images < PARALLEL_MIN_IMAGES:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def _start_pool(workers: int) -> WorkerPool:
    """The merge's worker processes, started now: they import their libraries while the parent plans."""
    return WorkerPool(workers, setup=prepare_worker).start()


def _batches(jobs: list[ImageJob], size: int) -> list[JobBatch]:
    return [JobBatch.of(jobs[i:i + size]) for i in range(0, len(jobs), size)]


def _json_rows(data: dict, encoded: frozenset[str] = frozenset()) -> str:
    """JSON with each element of a list on its own line: greppable, and diffable between runs.

    ``encoded`` names the lists whose elements are JSON texts already (the workers encode rows).
    """
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n".join("  " + (v if key in encoded else json.dumps(v)) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _run_chunks(context: MergeContext, jobs: list[ImageJob], pool: WorkerPool, report: MergeReport, progress: Progress | None) -> list[str]:
    """Merge every job, in chunks (in the pool's processes when it has any); fills ``report``, returns the unmatched rows (JSON texts)."""
    size = max(64, min(2000, len(jobs) // (pool.workers * 8) + 1))
    chunks = _batches(jobs, size)
    unmatched: list[str] = []
    ious: list[np.ndarray] = []
    done = 0
    if progress is not None:
        progress(0, len(jobs))
    for result in pool.map(merge_chunk, [context] * len(chunks), chunks):
        if result.fatal:
            raise InputError(result.fatal[1], file=result.fatal[0])
        done += result.images
        for counts, more in (
            (report.seg_rows, result.seg_rows), (report.seg_matched, result.seg_matched), (report.kpt_rows, result.kpt_rows),
            (report.kpt_matched, result.kpt_matched), (report.kpt_unmatched, result.kpt_unmatched),
        ):
            counts.update(more)
        report.problems.extend(result.problems)
        unmatched.extend(result.unmatched)
        ious.append(result.ious)
        if progress is not None:
            progress(done, len(jobs))
    report.ious = np.concatenate(ious) if ious else np.zeros(0)
    return unmatched


@dataclass(frozen=True)
class _Inputs:
    """What a merge pairs and how: both datasets, the class groups and the options."""

    kpt: DatasetConfig
    seg: DatasetConfig
    groups: dict[int, list[int]]  # KPT class -> the SEG classes its poses may pair with
    iou: float
    copy: bool
    strict: bool

    def chunk_context(self, work: Path) -> MergeContext:
        kpt, seg = self.kpt, self.seg
        return MergeContext(
            work=str(work), kpt_layout=kpt.layout(), seg_layout=seg.layout(),
            keypoint_classes=frozenset(s for targets in self.groups.values() for s in targets),
            num_keypoints=kpt.num_keypoints, groups=self.groups, iou=self.iou, copy=self.copy,
            kpt_names=dict(kpt.names), seg_names=dict(seg.names),
        )


def _write_outputs(work: Path, plan: MergePlan, pool: WorkerPool, inputs: _Inputs, report: MergeReport, progress: Progress | None) -> None:
    """Everything OUT holds, written into the temporary folder ``work``."""
    for folder in plan.folders():
        (work / "labels" / folder).mkdir(parents=True, exist_ok=True)
        if plan.has_images:
            (work / "images" / folder).mkdir(parents=True, exist_ok=True)
    for parent in plan.parent_dirs():
        (work / parent).mkdir(parents=True, exist_ok=True)
    unmatched_rows = _run_chunks(inputs.chunk_context(work), plan.jobs, pool, report, progress)
    if inputs.strict and report.problems:
        first = report.problems[0]
        raise MtdataError(
            f"--strict: {len(report.problems)} malformed label rows (first: {first['file']}:{first['line']}: "
            f"{first['message']}); nothing written"
        )
    report.images = plan.image_counts()
    config = output_config(report.out, inputs.kpt, inputs.seg, inputs.groups, plan.split_folders, report.notes)
    write_data_yaml(config, work / "data.yaml")
    unmatched = {
        "iou_threshold": inputs.iou,
        "reasons": UNMATCHED_REASONS,
        "kpt_rows": unmatched_rows,
        "kpt_only_images": [f"{job.split}/{job.name}" for job in plan.kpt_only],
        "seg_only_images": plan.seg_only_names(),
    }
    (work / "unmatched.json").write_text(_json_rows(unmatched, encoded=frozenset({"kpt_rows"})))


@contextlib.contextmanager
def _no_cyclic_gc():
    """Pause Python's cycle collector while a merge runs.

    A merge makes ~100k small containers (plan entries, rows, report entries) and no reference
    cycles; each collector pass walks every object of the process, and in forked workers it writes
    into inherited pages, copying them. Measured on the 20k-image merge benchmark (2 cores, 3 runs
    alternated): without the pause the merge took 28% more CPU (2.53 -> 3.24 s, median) and 21% more
    time. Reference counting still frees everything; the collector resumes (if it ran before) when
    the merge ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def merge_datasets(
    kpt_dataset: Path,
    seg_dataset: Path,
    out: Path,
    *,
    iou: float = 0.5,
    mapping: list[str] | None = None,
    copy: bool = False,
    overwrite: bool = False,
    strict: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> MergeReport:
    """Merge a pose dataset and a segment dataset of the same images into a multitask dataset.

    Args:
        kpt_dataset: pose dataset folder (or its data.yaml): rows ``cls cx cy w h kpts``.
        seg_dataset: segment dataset folder (or its data.yaml): rows ``cls x1 y1 ... xn yn``.
        out: output folder, written atomically; must be empty or absent unless ``overwrite``.
        iou: minimum box IoU between a pose box and a polygon's box to pair them, in (0, 1].
        mapping: ``KPTCLASS=SEGCLASS`` entries (names or ids); equal names pair by default.
        copy: copy images instead of symlinking them.
        strict: any malformed label row fails the merge and nothing is written.
        workers: processes (default: one per core for large datasets, else 1).
        progress: called with (images done, images total).

    Raises:
        MtdataError: bad inputs or output, or malformed rows with ``strict``.
    """
    if not 0 < iou <= 1:
        raise MtdataError(f"--iou must be in (0, 1], found {iou}")
    kpt_path, seg_path = Path(kpt_dataset), Path(seg_dataset)
    kpt = read_pose_config(kpt_path)
    seg = read_segment_config(seg_path)
    sources = [kpt_path, seg_path, kpt.root, seg.root]
    check_output_dir(out, overwrite, sources)  # before the long part
    groups = class_groups(kpt, seg, mapping)
    report = MergeReport(out=Path(out).resolve(), kpt=kpt_path.resolve(), seg=seg_path.resolve(), iou_threshold=iou)
    report.class_map = {kpt.names[k]: [seg.names[s] for s in targets] for k, targets in groups.items()}
    unmapped = [name for k, name in kpt.names.items() if k not in groups]
    if unmapped:
        report.notes.append(f"KPT classes {unmapped} map to no SEG class: their rows are listed in unmatched.json")

    with _no_cyclic_gc():
        pool = _start_pool(_workers(count_seg_labels(seg), workers))
        try:
            plan = build_jobs(kpt, seg, report.notes)
            if not pool.parallel:  # the quick count missed nested folders
                pool = _start_pool(_workers(len(plan.jobs), workers))
            with atomic_output_dir(out, overwrite, sources) as work:
                try:
                    _write_outputs(work, plan, pool, _Inputs(kpt, seg, groups, iou, copy, strict), report, progress)
                finally:  # no worker may still write into ``work`` while it is removed (after an error) or renamed
                    pool.close()
        finally:
            pool.close()
    report.unmatched_file = report.out / "unmatched.json"
    return report
