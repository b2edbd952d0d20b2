"""The usable rows of many label files as one :class:`~mtdata.records.ObjectBatch`, as the object rules read them.

:func:`check_rows` builds the batch once from the files' parsed rows; the rules of
:mod:`mtdata.check.objects` then read whole columns (boxes, polygons by offsets, keypoints
(N, K, 3)). Coordinates stay normalized, as the rows hold them, so that every number a finding
prints is computed from the same values as the rows': each row carries its image's size to
measure in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtdata.errors import MtdataError
from mtdata.formats.yolo.rows import LabelLayout, ParsedLabels, rows_to_batch
from mtdata.records import ObjectBatch


@dataclass
class FileRows:
    """The usable rows of one label file, as :func:`mtdata.check.objects.object_findings_batch` takes them.

    Attributes:
        parsed: rows and their 1-based lines (from :mod:`mtdata.check.verify`).
        text_lines: the file's lines, to see values that loading clipped.
        resolution_wh: image (width, height) in pixels, or None when unknown.
        file: the label file, for the findings.
        shapes: the shapely geometry of each row's polygon (None without one) when
            :func:`mtdata.check.verify.verify_label_texts` judged the polygons already; None: judged here.
    """

    parsed: ParsedLabels
    text_lines: list[str]
    resolution_wh: tuple[int, int] | None
    file: str
    shapes: list | None = None


@dataclass(kw_only=True)
class CheckRows(ObjectBatch):
    """Rows of many label files in file order, then line order: an :class:`ObjectBatch` in normalized coordinates
    (x, y), boxes xyxy (a row's own box, else its polygon's extent), keypoints (N, K, 3) with K the layout's
    (rows without keypoints hold absent points); ``image`` is each row's file index, ``source_ids`` its 1-based line.

    Attributes:
        resolution_wh: (N, 2) float64 (width, height) in pixels of each row's image, (1, 1) where unknown:
            pixels per normalized unit.
        box_cxcywhn: (N, 4) float64 each row's own box (cx, cy, w, h) as parsed, NaN for rows without one
            (segment and multitask rows): the values loading may have clipped, and part of what makes two rows equal.
        has_keypoints: (N,) bool: the row carries K > 0 keypoints (pose rows, multitask rows of keypoint classes).
    """

    resolution_wh: np.ndarray
    box_cxcywhn: np.ndarray
    has_keypoints: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self)
        self.resolution_wh = np.asarray(self.resolution_wh, dtype=np.float64).reshape(n, 2)
        self.box_cxcywhn = np.asarray(self.box_cxcywhn, dtype=np.float64).reshape(n, 4)
        self.has_keypoints = np.asarray(self.has_keypoints, dtype=bool).reshape(-1)
        if len(self.has_keypoints) != n:
            raise MtdataError(f"CheckRows: {n} rows but {len(self.has_keypoints)} keypoint flags")

    def file_starts(self, num_files: int) -> np.ndarray:
        """(num_files,) int64 index of each file's first row (its rows are contiguous, in line order)."""
        return np.searchsorted(self.image, np.arange(num_files), side="left")


def keypoint_rows(class_id: np.ndarray, layout: LabelLayout) -> np.ndarray:
    """(N,) bool: which rows of these classes the layout gives keypoints (as :meth:`LabelLayout.parse` reads them)."""
    if layout.num_keypoints == 0 or layout.task not in ("pose", "multitask"):
        return np.zeros(len(class_id), dtype=bool)
    if layout.task == "pose":
        return np.ones(len(class_id), dtype=bool)
    return np.isin(class_id, np.array(sorted(layout.keypoint_classes), dtype=np.int64))


def check_rows(files: list[FileRows], layout: LabelLayout) -> CheckRows:
    """The usable rows of ``files`` as one batch (see :class:`CheckRows`), parsed with ``layout``."""
    rows = [r for f in files for r in f.parsed.rows]
    lines = [ln for f in files for ln in f.parsed.lines]
    # resolution (1, 1): the batch keeps the rows' normalized values exactly (times 1.0)
    flat = rows_to_batch(rows, (1, 1), layout.num_keypoints, lines)
    image = np.repeat(np.arange(len(files)), [len(f.parsed.rows) for f in files])
    wh = np.array([f.resolution_wh or (1, 1) for f in files], dtype=np.float64).reshape(-1, 2)
    box = np.full((len(rows), 4), np.nan)
    boxed = [i for i, r in enumerate(rows) if r.box_cxcywhn is not None]
    if boxed:
        box[boxed] = np.stack([rows[i].box_cxcywhn for i in boxed])
    return CheckRows(image, flat.class_id, flat.xyxy, flat.polygon_offsets, flat.polygon_xy, flat.keypoints,
                     flat.source_ids, resolution_wh=wh[image], box_cxcywhn=box,
                     has_keypoints=keypoint_rows(flat.class_id, layout))


def on_edge(rows: CheckRows) -> np.ndarray:
    """(N,) bool: the row holds a coordinate exactly on 0 or 1 (a polygon point, its own box, a labeled keypoint).

    Clipping on load only ever produces exact 0s and 1s: only these rows can have been clipped
    (:func:`mtdata.check.objects.was_clipped` then reads their text again). One pass over the columns.
    """
    on = np.concatenate([[0], np.cumsum((rows.polygon_xy % 1 == 0).any(axis=1))])
    offsets = rows.polygon_offsets
    edge = on[offsets[1:]] > on[offsets[:-1]]  # a polygon point on an edge
    edge |= (rows.box_cxcywhn % 1 == 0).any(axis=1)  # NaN (no box) is not
    kpts = rows.keypoints
    edge |= ((kpts[..., :2] % 1 == 0) & (kpts[..., 2:] > 0)).any(axis=(1, 2))  # absent points are not looked at
    return edge


def exact_repeats(rows: CheckRows, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(E,) bool: rows ``a[e]`` and ``b[e]`` hold the same values bit for bit: class, box, keypoints and polygon
    (what :func:`mtdata.check.verify.row_key` compares, so -0.0 and 0.0 differ as they do there)."""
    # Column by column over the pairs still equal, the polygons' first points before their whole runs: a crowded
    # file has ~N x cap candidate pairs (20,000 jittered rows: ~1.3M), and gathering every pair's box and polygon
    # at once took its check from 158 to 236 MB of peak memory.
    offsets = rows.polygon_offsets
    sizes = np.diff(offsets)
    live = np.flatnonzero((rows.class_id[a] == rows.class_id[b]) & (sizes[a] == sizes[b]))
    box = np.ascontiguousarray(rows.box_cxcywhn).view(np.int64)  # NaN (no box) has one bit pattern here
    kpts = np.ascontiguousarray(rows.keypoints).view(np.int64).reshape(len(rows.keypoints), -1)
    points = np.ascontiguousarray(rows.polygon_xy).view(np.int64)
    first = np.full((len(sizes), 2), -1, dtype=np.int64)  # rows without a polygon: equal sizes (0) already
    first[sizes > 0] = points[offsets[:-1][sizes > 0]]
    for column in (*box.T, *kpts.T, *first.T):
        live = live[column[a[live]] == column[b[live]]]
    same = np.zeros(len(a), dtype=bool)
    same[live] = True
    pick = live[sizes[a[live]] > 1]  # one point: compared already
    if len(pick):  # polygons of equal length: compare them point by point, all pairs at once
        counts = sizes[a[pick]]
        pair = np.repeat(np.arange(len(pick)), counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        equal = (points[offsets[a[pick]][pair] + within] == points[offsets[b[pick]][pair] + within]).all(axis=1)
        same[pick[np.bincount(pair[~equal], minlength=len(pick)) > 0]] = False
    return same
