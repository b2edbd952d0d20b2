"""COCO annotations as columns: the fast reader and converter behind ``read_coco`` and ``mtdata convert``.

A COCO file of 120k annotations holds ~10M numbers. ``json.load`` turns each into a Python
float, which alone costs more than a whole conversion should. Here msgspec parses the
file's structure and hands each ``segmentation`` and ``keypoints`` over as raw JSON text;
the texts that are plain lists of numbers are checked with a few whole-array operations and
parsed in one call per column (:func:`mtdata._runtime.number_text.parse_numbers`). Anything else (RLE
dicts, odd nesting, strings, empty lists) is parsed one annotation at a time with json and goes through
:func:`mtdata.formats.coco.read.annotation_object`, so its checks and messages stay the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from mtdata._runtime.number_text import parse_numbers
from mtdata.formats.coco.checks import MAX_ID
from mtdata.formats.coco.types import CocoAnnotation, compact_annotation

# What COCO says an id is (mtdata.formats.coco.checks.is_id): anything else sends the file to
# json, whose reader names the entry and what it holds.
_Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


class _Annotation(msgspec.Struct):
    id: _Id
    image_id: _Id
    category_id: _Id
    iscrowd: Literal[0, 1] | bool = 0
    bbox: list[float] | None = None
    segmentation: msgspec.Raw = msgspec.Raw(b"null")
    keypoints: msgspec.Raw = msgspec.Raw(b"null")


class _CocoFile(msgspec.Struct):
    images: list[Any]
    annotations: list[_Annotation]
    categories: list[Any]


# Character classes of JSON text that holds only lists of numbers.
_SPACE, _NUMBER, _COMMA, _OPEN, _CLOSE, _OTHER = range(6)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[list(b" \t\r\n")] = _SPACE
_CLASS[list(b"0123456789.+-eE")] = _NUMBER
_CLASS[ord(",")], _CLASS[ord("[")], _CLASS[ord("]")] = _COMMA, _OPEN, _CLOSE
_NOT_NUMBERS = b"[] \t\r\n"
_CHUNK = 1 << 24


@dataclass
class AnnotationTable(Sequence):
    """All annotations of a COCO file, column by column; indexing gives a :class:`CocoAnnotation`.

    Attributes:
        ids, image_ids, category_ids: (N,) int64.
        iscrowd: (N,) bool.
        bbox_xywh: (N, 4) float64, NaN where ``has_bbox`` is False (absent or not 4 numbers).
        part_counts: (N,) polygon parts of each row parsed in bulk (0 for the others).
        part_sizes: (P,) number of values of each of those parts, row after row.
        polygon_values: (sum(part_sizes),) the parts' values (x, y, x, y, ...).
        keypoint_counts: (N,) values in each row's bulk-parsed keypoint list (0 for none).
        keypoint_values: (sum(keypoint_counts),) x, y, v triples.
        slow: row -> annotation parsed one by one (segmentation or keypoints not plain numbers).
    """

    ids: np.ndarray
    image_ids: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray
    bbox_xywh: np.ndarray
    has_bbox: np.ndarray
    part_counts: np.ndarray
    part_sizes: np.ndarray
    polygon_values: np.ndarray
    keypoint_counts: np.ndarray
    keypoint_values: np.ndarray
    slow: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _firsts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first part of each row, first value of each part, first keypoint value of each row)."""
        exclusive = lambda counts: (np.cumsum(counts) - counts).astype(np.int64)
        return exclusive(self.part_counts), exclusive(self.part_sizes), exclusive(self.keypoint_counts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]
        if i in self.slow:
            return self.slow[i]
        part_of_row, value_of_part, kpt_of_row = self._firsts
        part_first = int(part_of_row[i])
        parts = []
        for part in range(part_first, part_first + int(self.part_counts[i])):
            start = int(value_of_part[part])
            parts.append(self.polygon_values[start : start + int(self.part_sizes[part])].copy())
        k_first = int(kpt_of_row[i])
        k_count = int(self.keypoint_counts[i])
        return CocoAnnotation(
            id=int(self.ids[i]), image_id=int(self.image_ids[i]), category_id=int(self.category_ids[i]),
            iscrowd=bool(self.iscrowd[i]), bbox_xywh=self.bbox_xywh[i].copy() if self.has_bbox[i] else None,
            segmentation=parts or None, keypoints=self.keypoint_values[k_first : k_first + k_count].copy() if k_count else None,
            raw_keypoint_count=k_count,
        )

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def take(self, rows: np.ndarray) -> AnnotationTable:
        """The table of ``rows`` (ascending, no repeats), in that order; slow rows keep their annotations."""
        if len(rows) == len(self):
            return self
        mask = np.zeros(len(self), dtype=bool)
        mask[rows] = True
        part_mask = np.repeat(mask, self.part_counts)
        renumber = np.full(len(self), -1, dtype=np.int64)
        renumber[rows] = np.arange(len(rows))
        return AnnotationTable(
            self.ids[rows], self.image_ids[rows], self.category_ids[rows], self.iscrowd[rows], self.bbox_xywh[rows],
            self.has_bbox[rows], self.part_counts[rows], self.part_sizes[part_mask],
            self.polygon_values[np.repeat(part_mask, self.part_sizes)], self.keypoint_counts[rows],
            self.keypoint_values[np.repeat(mask, self.keypoint_counts)],
            {int(renumber[i]): annotation for i, annotation in self.slow.items() if mask[i]},
        )

    @classmethod
    def from_annotations(cls, annotations: list) -> AnnotationTable:
        """A table whose rows are all :class:`CocoAnnotation` objects (files json had to read)."""
        n = len(annotations)
        boxes = np.full((n, 4), np.nan)
        has_bbox = np.array([a.bbox_xywh is not None for a in annotations], dtype=bool)
        for i in np.flatnonzero(has_bbox):
            boxes[i] = annotations[i].bbox_xywh
        return cls(  # ids checked by the reader: integers from 0 to MAX_ID
            ids=np.array([a.id for a in annotations], dtype=np.int64),
            image_ids=np.array([a.image_id for a in annotations], dtype=np.int64),
            category_ids=np.array([a.category_id for a in annotations], dtype=np.int64),
            iscrowd=np.array([a.iscrowd for a in annotations], dtype=bool),
            bbox_xywh=boxes, has_bbox=has_bbox,
            part_counts=np.zeros(n, dtype=np.int64), part_sizes=np.zeros(0, dtype=np.int64), polygon_values=np.zeros(0),
            keypoint_counts=np.zeros(n, dtype=np.int64), keypoint_values=np.zeros(0),
            slow=dict(enumerate(annotations)),
        )


def decode_coco(path) -> tuple[list, list, Callable[[], AnnotationTable]] | None:
    """(images, categories, a function that builds the annotation table) of a COCO file.

    The table is built on demand so that a caller can start on the images first (building
    it is most of the read). None means msgspec refused the text: not strict JSON (NaN), or
    a key of another type than COCO's (a string image id, ...). The caller then reads the
    file with json, which also words the file-level errors.
    """
    data = Path(path).read_bytes()
    try:
        parsed = msgspec.json.decode(data, type=_CocoFile)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    images, categories, held = parsed.images, parsed.categories, [parsed.annotations]
    del parsed, data  # the raw texts still reference the bytes, until the table is built

    def build() -> AnnotationTable:
        columns = _columns(held.pop())  # dropped here: the file's bytes and the structs can go
        return _table_from_columns(*columns)

    return images, categories, build


_NULL = msgspec.Raw(b"null")


def _joined(raws: list) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The texts other than ``null`` joined by commas, and each text's (start, end) there.

    A ``null`` text is left out: its start equals its end.
    """
    n = len(raws)
    present = np.fromiter((raw != _NULL for raw in raws), dtype=bool, count=n)
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n) * present
    steps = lengths + present  # a present text and the comma after it
    starts = (np.cumsum(steps) - steps).astype(np.int64)
    return b",".join(compress(raws, present)), starts, starts + lengths


_LIST_CHARACTERS = b"0123456789.+-eE,[] \t\r\n"


def _scan(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of brackets, of commas and of characters that cannot be in a list of numbers."""
    data = np.frombuffer(blob, dtype=np.uint8)
    index = np.int32 if len(data) < 2**31 else np.int64
    # one C pass tells whether anything but list characters is there (the usual answer: no)
    has_others = bool(blob.translate(None, _LIST_CHARACTERS))
    brackets, commas, others = [], [], []
    for start in range(0, len(data), _CHUNK):  # chunks keep the temporaries small
        chunk = data[start : start + _CHUNK]
        brackets.append(np.flatnonzero((chunk == ord("[")) | (chunk == ord("]"))).astype(index) + index(start))
        commas.append(np.flatnonzero(chunk == ord(",")).astype(index) + index(start))
        if has_others:
            others.append(np.flatnonzero(_CLASS[chunk] == _OTHER).astype(index) + index(start))
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=index)
    return join(brackets), join(commas), join(others)


def _list_texts(blob: bytes, starts: np.ndarray, ends: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_numeric_lists` over the texts of a :func:`_joined` blob; the numbers of those that pass.

    Returns:
        (ok (N,) bool, parts per text (N,), values per part (P,), values (V,)).
    """
    n = len(starts)
    ok = np.zeros(n, dtype=bool)
    parts = np.zeros(n, dtype=np.int64)
    present = np.flatnonzero(ends > starts)
    lists = present[np.frombuffer(blob, dtype=np.uint8)[starts[present]] == ord("[")]
    if not len(lists):
        return ok, parts, np.zeros(0, np.int64), np.zeros(0)
    # Texts that are not lists (RLE dicts, ...) are blanked out first, so that the scan finds
    # only list characters and the parser one run of numbers, without a copy of each text.
    text = _blanked(blob, starts, ends, np.setdiff1d(present, lists)) if len(lists) < len(present) else blob
    text_ok, text_parts, sizes = _numeric_lists(text, starts[lists], depth)
    ok[lists], parts[lists] = text_ok, text_parts
    if not text_ok.all():
        text = _blanked(text, starts, ends, lists[~text_ok])
    values = parse_numbers(text, b",", int(sizes.sum()), drop=_NOT_NUMBERS)
    if values is None:  # cannot happen for valid JSON; never convert silently wrong numbers
        raise RuntimeError(f"bulk number parse did not read the {sizes.sum()} values it expected")
    return ok, parts, sizes, values


def _blanked(blob: bytes | bytearray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray) -> bytearray:
    """``blob`` with the texts of ``rows``, and one comma beside each, overwritten by spaces."""
    text = blob if isinstance(blob, bytearray) else bytearray(blob)
    for a, b in zip(starts[rows].tolist(), ends[rows].tolist()):
        a, b = (a, b + 1) if b < len(text) else (max(a - 1, 0), b)
        text[a:b] = b" " * (b - a)
    return text


def _numeric_lists(blob: bytes, starts: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which texts are lists nested ``depth`` deep holding only numbers (2: polygons, 1: keypoints).

    The texts are valid JSON (msgspec checked them), so brackets balance and numbers are
    well formed: a list of numbers is told by its characters, bracket depths and commas.
    Empty lists and one-number parts are left to the slow path.

    Returns:
        (ok (N,) bool, parts per text (N,), values per part of the ok texts (P,)).
    """
    n = len(starts)
    data = np.frombuffer(blob, dtype=np.uint8)
    brackets, commas, others = _scan(blob)
    ok = np.ones(n, dtype=bool)
    ok[np.searchsorted(starts, others, side="right") - 1] = False
    ok &= data[starts] == ord("[")
    opens = data[brackets] == ord("[")
    steps = np.where(opens, 1, -1)
    owner = np.searchsorted(starts, brackets, side="right") - 1
    # depth within each text (a bracket inside a string must not shift the texts after it)
    depth_after = np.cumsum(steps)
    first = np.searchsorted(owner, owner, side="left")
    depth_after -= depth_after[first] - steps[first]
    commas_before = np.searchsorted(commas, brackets)
    commas_after = np.diff(np.append(commas_before, len(commas)))  # up to the next bracket
    deepest = np.zeros(n, dtype=np.int64)
    np.maximum.at(deepest, owner, depth_after)
    ok &= deepest == depth
    part_open = opens & (depth_after == depth)
    parts = np.bincount(owner[part_open], minlength=n)
    # a part with no comma is empty or a single number: invalid, or worth a precise message
    ok &= np.bincount(owner[part_open & (commas_after == 0)], minlength=n) == 0
    if depth == 2:  # commas between parts, and no number outside them
        outer = depth_after == 1
        outer_commas = np.bincount(owner[outer], weights=commas_after[outer], minlength=n)
        ok &= outer_commas == parts - 1
    ok &= parts > 0
    sizes = commas_after[part_open & ok[owner]] + 1
    return ok, np.where(ok, parts, 0), sizes


def _columns(annotations: list[_Annotation]) -> tuple:
    n = len(annotations)
    ids = np.fromiter((a.id for a in annotations), dtype=np.int64, count=n)
    image_ids = np.fromiter((a.image_id for a in annotations), dtype=np.int64, count=n)
    category_ids = np.fromiter((a.category_id for a in annotations), dtype=np.int64, count=n)
    iscrowd = np.fromiter((bool(a.iscrowd) for a in annotations), dtype=bool, count=n)
    has_bbox = np.fromiter((a.bbox is not None and len(a.bbox) == 4 for a in annotations), dtype=bool, count=n)
    boxes = np.full((n, 4), np.nan)
    with_box = np.flatnonzero(has_bbox)
    if len(with_box):
        boxes[with_box] = np.array([annotations[i].bbox for i in with_box.tolist()], dtype=np.float64)
    seg_blob, seg_starts, seg_ends = _joined([a.segmentation for a in annotations])
    kpt_blob, kpt_starts, kpt_ends = _joined([a.keypoints for a in annotations])
    bbox_lists = {i: annotations[i].bbox for i in np.flatnonzero(~has_bbox).tolist() if annotations[i].bbox is not None}
    return ids, image_ids, category_ids, iscrowd, boxes, has_bbox, seg_blob, seg_starts, seg_ends, kpt_blob, kpt_starts, kpt_ends, bbox_lists


def _table_from_columns(ids, image_ids, category_ids, iscrowd, boxes, has_bbox, seg_blob, seg_starts, seg_ends,
                        kpt_blob, kpt_starts, kpt_ends, bbox_lists) -> AnnotationTable:
    n = len(ids)
    seg_null, kpt_null = seg_starts == seg_ends, kpt_starts == kpt_ends
    seg_ok, part_counts, part_sizes, polygon_values = _list_texts(seg_blob, seg_starts, seg_ends, 2)
    kpt_ok, _, kpt_sizes, keypoint_values = _list_texts(kpt_blob, kpt_starts, kpt_ends, 1)
    fast = (seg_ok | seg_null) & (kpt_ok | kpt_null)
    fast[list(bbox_lists)] = False  # a bbox of other than 4 numbers: named by the per-annotation checks
    if not fast.all():  # drop the parsed numbers of rows that go slow whole (their other text was odd)
        part_fast = np.repeat(fast[seg_ok], part_counts[seg_ok])
        polygon_values = polygon_values[np.repeat(part_fast, part_sizes)]
        part_sizes = part_sizes[part_fast]
        kpt_fast = fast[kpt_ok]
        keypoint_values = keypoint_values[np.repeat(kpt_fast, kpt_sizes)]
        kpt_sizes = kpt_sizes[kpt_fast]
    part_counts = np.where(fast, part_counts, 0)
    keypoint_counts = np.zeros(n, dtype=np.int64)
    keypoint_counts[fast & kpt_ok] = kpt_sizes

    slow = {}
    for i in np.flatnonzero(~fast).tolist():
        raw = {"id": int(ids[i]), "image_id": int(image_ids[i]), "category_id": int(category_ids[i]), "iscrowd": bool(iscrowd[i]),
               "bbox": boxes[i].tolist() if has_bbox[i] else bbox_lists.get(i),
               "segmentation": None if seg_null[i] else json.loads(seg_blob[seg_starts[i] : seg_ends[i]]),
               "keypoints": None if kpt_null[i] else json.loads(kpt_blob[kpt_starts[i] : kpt_ends[i]])}
        slow[i] = compact_annotation(raw)
    return AnnotationTable(ids, image_ids, category_ids, iscrowd, boxes, has_bbox, part_counts, part_sizes,
                           polygon_values, keypoint_counts, keypoint_values, slow)
