"""A YOLO pose dataset + a YOLO segment dataset of the same images -> one multitask dataset.

``merge_datasets`` is the library entry point behind ``mtdata merge``. Per split, image and
mapped class pair, pose rows are paired one-to-one with masks by box IoU
(:func:`mtdata.merge.match.match_boxes`). Nothing is lost: every mask row is written once (with its
pose's keypoints, or absent ``0 0 0`` keypoints when none matched), and every pose row that
found no mask is listed in ``OUT/unmatched.json`` with the reason.

Everything is computed in normalized coordinates: box IoU and keypoint containment do not
change when the axes are scaled, so no image is opened. The work is split into chunks of
images (:mod:`mtdata.merge.chunk`), run in worker processes when there are many. The steps live
in their own modules: ``config`` (the data.yaml files), ``classes`` (which classes pair),
``plan`` (which files pair), ``write`` (running the chunks, writing OUT), ``report``.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path

from mtdata._runtime.output import atomic_output_dir, check_output_dir
from mtdata._runtime.parallel import WorkerPool
from mtdata.errors import MtdataError
from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.merge.chunk import prepare_worker
from mtdata.merge.classes import class_groups
from mtdata.merge.config import read_pose_config, read_segment_config
from mtdata.merge.plan import build_jobs, count_seg_labels
from mtdata.merge.report import MergeReport
from mtdata.merge.write import MergeInputs, Progress, write_outputs

PARALLEL_MIN_IMAGES = 2000  # below this, starting worker processes costs more than it saves


def _workers(images: int, workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    if images < PARALLEL_MIN_IMAGES:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def _start_pool(workers: int) -> WorkerPool:
    """The merge's worker processes, started now: they import their libraries while the parent plans."""
    return WorkerPool(workers, setup=prepare_worker).start()


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


def _start_report(out: Path, kpt_path: Path, seg_path: Path, kpt: DatasetConfig, seg: DatasetConfig,
                  groups: dict[int, list[int]], iou: float) -> MergeReport:
    """The report before any row is read: the inputs, the class map and a note on unmapped KPT classes."""
    report = MergeReport(out=Path(out).resolve(), kpt=kpt_path.resolve(), seg=seg_path.resolve(), iou_threshold=iou)
    report.class_map = {kpt.names[k]: [seg.names[s] for s in targets] for k, targets in groups.items()}
    unmapped = [name for k, name in kpt.names.items() if k not in groups]
    if unmapped:
        report.notes.append(f"KPT classes {unmapped} map to no SEG class: their rows are listed in unmatched.json")
    return report


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
    report = _start_report(out, kpt_path, seg_path, kpt, seg, groups, iou)

    with _no_cyclic_gc():
        pool = _start_pool(_workers(count_seg_labels(seg), workers))
        try:
            plan = build_jobs(kpt, seg, report.notes)
            if not pool.parallel:  # the quick count missed nested folders
                pool = _start_pool(_workers(len(plan.jobs), workers))
            with atomic_output_dir(out, overwrite, sources) as work:
                try:
                    write_outputs(work, plan, pool, MergeInputs(kpt, seg, groups, iou, copy, strict), report, progress)
                finally:  # no worker may still write into ``work`` while it is removed (after an error) or renamed
                    pool.close()
        finally:
            pool.close()
    report.unmatched_file = report.out / "unmatched.json"
    return report
