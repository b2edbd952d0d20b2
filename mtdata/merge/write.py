"""Writing OUT: :func:`write_outputs` runs the chunks of a merge plan (in worker processes when the
pool has them) and writes the merged labels, ``data.yaml`` and ``unmatched.json`` into the temporary
folder that becomes OUT."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdata._runtime.parallel import WorkerPool
from mtdata.errors import InputError, MtdataError
from mtdata.formats.yolo.data_yaml import DatasetConfig, write_data_yaml
from mtdata.merge.chunk import MergeContext, merge_chunk
from mtdata.merge.config import output_config
from mtdata.merge.plan import ImageJob, JobBatch, MergePlan
from mtdata.merge.report import UNMATCHED_REASONS, MergeReport

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MergeInputs:
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


def write_outputs(work: Path, plan: MergePlan, pool: WorkerPool, inputs: MergeInputs, report: MergeReport, progress: Progress | None) -> None:
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
