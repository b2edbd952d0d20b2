"""One chunk of a merge: read the label files of many images, pair poses with masks, write OUT.

Runs in a worker process for large datasets, so its inputs (:class:`MergeContext`, the jobs)
and its output (:class:`ChunkResult`) are small and picklable.

Pairing is per image and per mapped class pair. Most images need no assignment at all: when
every pose has at most one mask over the IoU threshold and every mask at most one pose, those
pairs are exactly what a maximum-IoU assignment returns, so they are taken directly (vectorized
over the whole chunk). Images where candidates compete go through
:func:`mtdata.merge.match.match_boxes` (``linear_sum_assignment`` and the keypoint preference).
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mtdata._runtime.number_text import load_reader
from mtdata._runtime.output import place_image, read_to_end, write_file
from mtdata.formats.yolo.blocks import RowBlock, absent_keypoints_text, read_pose_block, read_segment_block
from mtdata.formats.yolo.rows import LabelLayout
from mtdata.geometry import paired_iou
from mtdata.input_files import MAX_LABEL_BYTES
from mtdata.merge.match import match_boxes
from mtdata.merge.plan import JobBatch


@dataclass(frozen=True)
class MergeContext:
    """What every chunk needs.

    Attributes:
        work: the temporary output folder.
        kpt_layout, seg_layout: row layouts of the two inputs.
        keypoint_classes: SEG classes whose OUT rows carry keypoints.
        num_keypoints: K.
        groups: KPT class -> the SEG classes its poses may pair with.
        iou: minimum box IoU of a pair.
        copy: copy images instead of symlinking them.
        kpt_names, seg_names: class names for the counts.
    """

    work: str
    kpt_layout: LabelLayout
    seg_layout: LabelLayout
    keypoint_classes: frozenset[int]
    num_keypoints: int
    groups: dict[int, list[int]]
    iou: float
    copy: bool
    kpt_names: dict[int, str]
    seg_names: dict[int, str]


@dataclass
class ChunkResult:
    """Counts of a chunk, merged into the report by the caller."""

    images: int = 0
    seg_rows: Counter = field(default_factory=Counter)  # SEG class name -> rows written
    seg_matched: Counter = field(default_factory=Counter)
    kpt_rows: Counter = field(default_factory=Counter)  # KPT class name -> rows read
    kpt_matched: Counter = field(default_factory=Counter)
    kpt_unmatched: Counter = field(default_factory=Counter)  # reason -> rows
    ious: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unmatched: list[str] = field(default_factory=list)  # KPT rows without a mask, each as a JSON object (encoded here, in parallel)
    problems: list[dict] = field(default_factory=list)
    fatal: tuple[str, str] | None = None  # (file, message): the chunk stopped


@dataclass
class RowMatches:
    """Pairs made among some pose rows and mask rows of a chunk (indices are block rows)."""

    pose: np.ndarray  # (M,) pose rows
    mask: np.ndarray  # (M,) mask rows
    iou: np.ndarray  # (M,)
    best_iou: np.ndarray  # (len(p_rows),) best IoU each pose had with a mask of its image
    masks_in_image: np.ndarray  # (len(p_rows),) candidate masks in each pose's image


def match_rows(pose: RowBlock, seg: RowBlock, p_rows: np.ndarray, q_rows: np.ndarray, iou_threshold: float, n_files: int) -> RowMatches:
    """Pair pose rows ``p_rows`` with mask rows ``q_rows`` one-to-one within each image.

    Both index arrays must be ascending (block rows are in file order).
    """
    fp, fq = pose.image[p_rows], seg.image[q_rows]
    per_file = np.bincount(fq, minlength=n_files)
    first = np.cumsum(per_file) - per_file  # position in q_rows of each file's first mask
    reps = per_file[fp]
    # Every (pose, mask) pair of the same image, as positions in p_rows and q_rows.
    edge_p = np.repeat(np.arange(len(p_rows)), reps)
    edge_q = first[fp][edge_p] + np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    iou = paired_iou(pose.xyxy[p_rows[edge_p]], seg.xyxy[q_rows[edge_q]])
    best = np.zeros(len(p_rows))
    np.maximum.at(best, edge_p, iou)
    candidate = iou >= iou_threshold
    competing = np.zeros(n_files, dtype=bool)
    competing[fp[np.bincount(edge_p[candidate], minlength=len(p_rows)) > 1]] = True
    competing[fq[np.bincount(edge_q[candidate], minlength=len(q_rows)) > 1]] = True
    direct = candidate & ~competing[fp[edge_p]]
    poses, masks, ious = [p_rows[edge_p[direct]]], [q_rows[edge_q[direct]]], [iou[direct]]
    for f in np.flatnonzero(competing):
        a, b = p_rows[fp == f], q_rows[fq == f]
        result = match_boxes(
            pose.xyxy[a], seg.xyxy[b], iou_threshold,
            a_keypoints=pose.keypoints[a], b_polygons=[seg.polygon(j) for j in b],
        )
        poses.append(a[result.pairs[:, 0]])
        masks.append(b[result.pairs[:, 1]])
        ious.append(result.iou)
    return RowMatches(np.concatenate(poses), np.concatenate(masks), np.concatenate(ious), best, reps)


class _Unreadable(Exception):
    pass


READ_BYTES = 1 << 16  # label files are a few kB: one read takes a whole file


def _read(path: str | None) -> bytes | None:
    """The bytes of a label file, checked to be UTF-8. System calls, no file object: a merge reads
    40k of them. Line ends stay as they are ("\r\n" files take a slower path in merge_rows).
    As every reader of label files (:mod:`mtdata.input_files`): a regular file of at most
    MAX_LABEL_BYTES, never a FIFO (a read would wait forever) or a device (``/dev/zero``: forever)."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LABEL_BYTES:
                why = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"over {MAX_LABEL_BYTES:,} bytes"
                raise _Unreadable(path, f"cannot read this label file: {why}")
            data = os.read(fd, READ_BYTES)
            if len(data) == READ_BYTES:  # a large file: the rest follows (a shorter read ends a regular file)
                data += read_to_end(fd)  # a regular file no larger than the bound, unless it grows meanwhile
                if len(data) > MAX_LABEL_BYTES:
                    raise _Unreadable(path, f"cannot read this label file: over {MAX_LABEL_BYTES:,} bytes")
        finally:
            os.close(fd)
        if not data.isascii():
            data.decode("utf-8")
        return data
    except (OSError, UnicodeDecodeError) as e:
        raise _Unreadable(path, f"cannot read this label file: {getattr(e, 'strerror', None) or e}") from e


def _counts(class_ids: np.ndarray, names: dict[int, str]) -> Counter:
    counts = np.bincount(class_ids, minlength=len(names)) if len(class_ids) else np.zeros(0, dtype=np.int64)
    return Counter({names[c]: int(n) for c, n in enumerate(counts.tolist()) if n})


def prepare_worker() -> None:
    """Ready a fresh worker process (:class:`mtdata._runtime.parallel.WorkerPool`'s ``setup``) before the parent has
    planned its work: import polars. (shapely waits for the first crowded image: 10-20 ms of CPU that a merge
    without one never pays.)"""
    # One thread for polars (unless the user chose): the workers fill the cores already, and
    # polars' own threads only contend with them and grow the memory a worker faults in
    # (a 20k-image merge on 2 cores: 1-4% less CPU, 1k-3k fewer page faults).
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    load_reader()


def merge_chunk(context: MergeContext, jobs: JobBatch) -> ChunkResult:
    """Merge the label files of ``jobs`` into ``context.work`` and count what happened."""
    acc = ChunkResult()
    try:
        kpt_texts = [_read(path) for path in jobs.kpt_label]
        seg_texts = [_read(path) for path in jobs.seg_label]  # None where SEG has no label file
    except _Unreadable as e:
        acc.fatal = (e.args[0], e.args[1])
        return acc
    pose = read_pose_block(kpt_texts, jobs.kpt_label, context.kpt_layout, acc.problems)
    seg = read_segment_block(seg_texts, jobs.seg_label, context.seg_layout, acc.problems)

    in_seg = np.array(jobs.in_seg, dtype=bool)
    reason = np.where(in_seg[pose.image], "class_not_mapped", "image_not_in_seg").astype(object)
    best = np.zeros(len(pose))
    partner = np.full(len(seg), -1, dtype=np.int64)
    ious = []
    for kpt_class, targets in context.groups.items():
        p_rows = np.flatnonzero((pose.class_id == kpt_class) & in_seg[pose.image])
        if not len(p_rows):
            continue
        q_rows = np.flatnonzero(np.isin(seg.class_id, targets))
        m = match_rows(pose, seg, p_rows, q_rows, context.iou, len(jobs))
        best[p_rows] = m.best_iou
        reason[p_rows] = np.where(m.masks_in_image == 0, "no_mask", np.where(m.best_iou >= context.iou, "mask_taken", "below_iou"))
        reason[m.pose] = "matched"
        partner[m.mask] = m.pose
        ious.append(m.iou)
    acc.ious = np.concatenate(ious) if ious else np.zeros(0)

    _write(context, jobs, pose, seg, partner)  # an OSError reaches the parent, which names the path in OUT
    acc.images = len(jobs)
    acc.seg_rows = _counts(seg.class_id, context.seg_names)
    acc.seg_matched = _counts(seg.class_id[partner >= 0], context.seg_names)
    acc.kpt_rows = _counts(pose.class_id, context.kpt_names)
    matched = reason == "matched"
    acc.kpt_matched = _counts(pose.class_id[matched], context.kpt_names)
    acc.kpt_unmatched = Counter(reason[~matched].tolist())
    for i in np.flatnonzero(~matched).tolist():
        f = int(pose.image[i])
        acc.unmatched.append(json.dumps({
            "split": jobs.split[f], "image": jobs.name[f], "file": jobs.kpt_label[f], "line": int(pose.source_ids[i]),
            "class": context.kpt_names[int(pose.class_id[i])],
            "box_xyxyn": [round(v, 6) for v in pose.xyxy[i].tolist()], "best_iou": round(float(best[i]), 4),
            "reason": reason[i],
        }))
    return acc


def _write(context: MergeContext, jobs: JobBatch, pose: RowBlock, seg: RowBlock, partner: np.ndarray) -> None:
    """OUT label file of every job SEG has (in SEG's row order), and its image."""
    absent = absent_keypoints_text(context.num_keypoints).encode("ascii")
    classes, partners = seg.class_id.tolist(), partner.tolist()
    heads = {c: (f"{c} ".encode("ascii"), c in context.keypoint_classes) for c in set(classes)}
    pose_text = pose.text
    lines = [
        b"".join((head, pose_text[p] if p >= 0 else absent, b" ", text, b"\n")) if with_keypoints else b"".join((head, text, b"\n"))
        for (head, with_keypoints), p, text in zip(map(heads.__getitem__, classes), partners, seg.text)
    ]
    ends = np.cumsum(np.bincount(seg.image, minlength=len(jobs))).tolist()
    work = context.work + os.sep
    start = 0
    for out_label, out_image, image, end in zip(jobs.out_label, jobs.out_image, jobs.image, ends):
        if out_label is not None:  # the image is in SEG
            write_file(work + out_label, b"".join(lines[start:end]))
            if out_image is not None:
                place_image(image, work + out_image, context.copy)
        start = end
