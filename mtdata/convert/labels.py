"""One split's annotation table -> its label files, in one process or, on large splits, two.

After the COCO file is read, converting a split is numpy work per annotation (validate, join
polygons, spell the rows) and writing one file per image, ~1 s for 20k images. None of it
threads (the GIL), so a split of 4096+ images is cut into two ranges of images that run on the
one :class:`mtdata._runtime.parallel.WorkerPool` of mtdata: this process converts the first range
while one forked worker converts the second from its inherited copy of the table (``shared``:
nothing pickled on the way in); each hands back what the report needs (skips, rows per class).

Measured when it replaced a purpose-built forked child (``ForkedCall``) on the 20k-image convert
benchmark, 9 interleaved runs on an idle 2-core machine: wall 0.95x, CPU 0.98x, peak memory 1.00x
of the forked child (medians 2.00 vs 2.10 s, 387 MB both; earlier runs under load ranged 0.90-1.08x),
outputs byte-identical. What the second process earns over none: peak ~395 vs 461 MB and ~2.45 ->
~2.1 s when it came in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mtdata._runtime.forking import can_fork
from mtdata._runtime.parallel import WorkerPool
from mtdata.convert.files import LabelTexts, SplitFiles, write_labels
from mtdata.formats.coco.columns import AnnotationTable
from mtdata.formats.coco.objects import ObjectColumns, lookup, table_objects

PARALLEL_MIN_IMAGES = 4096  # below this, a second process costs more than it saves
WORKERS = 2  # this process and one forked worker, a range of images each


@dataclass(frozen=True)
class ObjectRules:
    """How annotations become rows: class mapping, keypoints, crowd, task."""

    class_of_category: dict[int, int]
    keypoints_of_category: dict[int, int]
    num_keypoints: int  # K of the rows (0 for segment rows)
    include_crowd: bool
    task: str  # what was asked: multitask, segment or pose
    yolo_task: str  # what is written (multitask without keypoint classes writes segment rows)
    keypoint_classes: frozenset[int]
    num_classes: int


@dataclass
class SplitOutcome:
    """What converting a split's labels did.

    Attributes:
        written: (images,) bool: the image was found and its label file written.
        skips: annotations left out (crowd, invalid, unknown image, and those the task's rows
            cannot hold: no_mask, no_keypoints), in file order; those of images not written are
            left out (they were neither converted nor reported).
        skip_rows: the table row of each skip (their order).
        rows_per_class: (num_classes,) rows written.
        crowd: image position -> (1-based lines of its crowd rows, blake2b-128 hex of its label
            text), for the written images with crowd rows (``--crowd include``): what export needs
            to write them back with ``iscrowd: 1``.
        lossy_joins: {annotation_id, image_id, iou} of objects whose overlapping parts were joined
            into an outline that loses more than 5% of their mask, in file order.
    """

    written: np.ndarray
    skips: list = field(default_factory=list)
    skip_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rows_per_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    crowd: dict = field(default_factory=dict)
    lossy_joins: list = field(default_factory=list)
    lossy_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # the table row of each


_LEFT_OUT = {
    "no_mask": "has no segmentation: {task} rows need a mask",
    "no_keypoints": "has no labeled keypoint: pose rows need one",
}


def rows_for_task(objects: ObjectColumns, rules: ObjectRules) -> tuple[np.ndarray, str]:
    """((M,) bool: the objects a task can write, the reason the others are left out)."""
    has_polygon = np.diff(objects.polygon_offsets) >= 3
    if rules.task in ("multitask", "segment"):
        return has_polygon, "no_mask"
    is_kpt_class = np.isin(objects.class_id, np.array(sorted(rules.keypoint_classes), dtype=np.int64))
    labeled = (objects.keypoints[..., 2] > 0).any(axis=1) if objects.keypoints.shape[1] else np.zeros(len(is_kpt_class), bool)
    return is_kpt_class & labeled, "no_keypoints"


class _Part:
    """The objects and label texts of the annotations of images ``first..last-1`` of a split.

    Annotations of images missing from the split (skipped as unknown_image) go with the first part.
    """

    def __init__(self, table: AnnotationTable, rows: np.ndarray, image_position: np.ndarray, images: dict,
                 rules: ObjectRules, first: int, last: int):
        self.first, self.last, self.rules, self.rows = first, last, rules, rows
        self.objects = table_objects(table.take(rows), images, rules.class_of_category, rules.keypoints_of_category,
                                     rules.num_keypoints, rules.include_crowd)
        self.keep, self.left_out_reason = rows_for_task(self.objects, rules)
        self.image_index = image_position[rows][self.objects.rows]  # each object's image, in the split's order
        wh = np.array([(im.width, im.height) for im in images.values()], dtype=np.float64).reshape(-1, 2)
        self.texts = LabelTexts(rules.yolo_task, self.objects, self.keep, self.image_index, wh, rules.keypoint_classes)
        self.crowd_lines: dict[int, list[int]] = {}
        if rules.include_crowd:  # the line of each crowd row in its image's file (rows keep annotation order)
            crowd = table.iscrowd[rows][self.objects.rows]
            if (crowd & self.keep).any():
                order, image_of = self.texts.order, self.texts.image_of
                lines = np.arange(len(order)) - np.searchsorted(image_of, image_of) + 1
                for image, line in zip(image_of[crowd[order]].tolist(), lines[crowd[order]].tolist()):
                    self.crowd_lines.setdefault(image, []).append(line)

    def write(self, split_files: SplitFiles, written: np.ndarray, written_ids: set[int], progress) -> SplitOutcome:
        """Write the part's label files (of the images found) and count what was written."""
        from mtdata.formats.coco.read import Skip

        indices = (np.flatnonzero(written[self.first:self.last]) + self.first).tolist()
        write_labels(split_files, self.texts, indices, progress)
        crowd = {i: (lines, hashlib.blake2b(self.texts.of_image(i), digest_size=16).hexdigest())
                 for i, lines in sorted(self.crowd_lines.items()) if written[i]}
        o = self.objects
        on_written = written[self.image_index]
        counted = self.keep & on_written
        # annotations of images that were not found are neither converted nor reported
        reported = np.array([s.reason == "unknown_image" or s.image_id in written_ids for s in o.skips], dtype=bool)
        left = np.flatnonzero(~self.keep & on_written)
        why = _LEFT_OUT[self.left_out_reason].format(task=self.rules.task)
        left_skips = [Skip(int(annotation_id), int(image_id), self.left_out_reason, why)
                      for annotation_id, image_id in zip(o.source_ids[left].tolist(), o.image[left].tolist())]
        skips = [s for s, r in zip(o.skips, reported) if r] + left_skips
        skip_rows = np.concatenate([o.skip_rows[reported], o.rows[left]]).astype(np.int64)
        order = np.argsort(skip_rows, kind="stable")
        lossy = o.lossy[on_written[o.lossy]]
        return SplitOutcome(
            written=written,
            skips=[skips[i] for i in order.tolist()],
            skip_rows=self.rows[skip_rows[order]],
            rows_per_class=np.bincount(o.class_id[counted], minlength=self.rules.num_classes),
            lossy_joins=[{"annotation_id": int(o.source_ids[j]), "image_id": int(o.image[j]), "iou": round(float(iou), 4)}
                         for j, iou in zip(lossy.tolist(), o.lossy_iou[on_written[o.lossy]].tolist())],
            lossy_rows=self.rows[o.rows[lossy]],
            crowd=crowd,
        )


@dataclass(frozen=True)
class _Split:
    """What every part of a split reads (a WorkerPool's ``shared`` value: forked workers inherit it)."""

    table: AnnotationTable
    images: dict
    rules: ObjectRules
    split_files: SplitFiles
    position: np.ndarray  # (annotations,) each one's image position in the split, -1 when not in images
    written: np.ndarray  # (images,) bool: the image was found (its label file exists)
    written_ids: set[int]


def _convert_range(split: _Split, first: int, last: int, progress: Callable[[int], None] | None = None) -> SplitOutcome:
    """Convert and write the labels of images ``first..last-1``; the first range also takes the annotations of
    images that are not in the split (they become unknown_image skips)."""
    inside = (split.position >= first) & (split.position < last)
    if first == 0:
        inside |= split.position < 0
    part = _Part(split.table, np.flatnonzero(inside), split.position, split.images, split.rules, first, last)
    return part.write(split.split_files, split.written, split.written_ids, progress)


def _image_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    cuts = np.linspace(0, n, parts + 1).round().astype(int).tolist()
    return list(zip(cuts[:-1], cuts[1:]))


def write_split_labels(table: AnnotationTable, images: dict, rules: ObjectRules, split_files: SplitFiles,
                       progress: Callable[[int], None] | None = None) -> SplitOutcome:
    """Convert a split's annotations and write its label files (the images found get one each).

    Args:
        table: the split's annotations.
        images: image id -> CocoImage, in the order of the label files of ``split_files``.
        progress: called with how many images are written (an estimate while a worker writes).
    """
    n = len(images)
    position = lookup(table.image_ids, {image_id: i for i, image_id in enumerate(images)}, -1)  # -1: not in images
    image_ids = np.fromiter(images, dtype=np.int64, count=n)
    written = split_files.wait()
    split = _Split(table, images, rules, split_files, position, written, set(image_ids[written].tolist()))
    if n < PARALLEL_MIN_IMAGES or not can_fork():
        return _convert_range(split, 0, n, progress)
    firsts, lasts = zip(*_image_ranges(n, WORKERS))
    # the first range runs here (works_too), so only it is handed a progress callback (it is never pickled):
    # its count times the number of ranges estimates the whole while the worker writes
    estimate = None if progress is None else lambda k: progress(min(WORKERS * k, n))
    callbacks = [estimate] + [None] * (WORKERS - 1)
    with WorkerPool(WORKERS, shared=split, works_too=True) as pool:
        outcomes = list(pool.map(_convert_range, firsts, lasts, callbacks))
    if progress is not None:
        progress(int(written.sum()))
    return _joined(outcomes, written)


def _joined(parts: list[SplitOutcome], written: np.ndarray) -> SplitOutcome:
    """One outcome of the parts of a split (skips and lossy joins back in the table's order)."""
    skip_rows = np.concatenate([p.skip_rows for p in parts])
    order = np.argsort(skip_rows, kind="stable")
    skips = [s for p in parts for s in p.skips]
    lossy = [j for p in parts for j in p.lossy_joins]
    lossy_rows = np.concatenate([p.lossy_rows for p in parts])
    return SplitOutcome(
        written=written,
        skips=[skips[i] for i in order.tolist()],
        skip_rows=skip_rows[order],
        rows_per_class=sum(p.rows_per_class for p in parts),
        lossy_joins=[lossy[i] for i in np.argsort(lossy_rows, kind="stable").tolist()],
        lossy_rows=np.sort(lossy_rows, kind="stable"),
        crowd={image: lines for p in parts for image, lines in p.crowd.items()},
    )
