"""YOLO label rows and label files: detect, segment, pose and multitask.

Rows hold normalized coordinates in [0, 1] (``xyn``, ``cxcywhn``); records hold pixels.
Row layouts (K keypoints, D = 2 or 3 values each, visibility last)::

    detect     cls cx cy w h
    segment    cls x1 y1 ... xn yn                       (n >= 3)
    pose       cls cx cy w h k1x k1y [k1v] ... kKx kKy [kKv]
    multitask  cls k1x k1y k1v ... kKx kKy kKv x1 y1 ... xn yn   (classes with keypoints)
               cls x1 y1 ... xn yn                               (other classes)

A multitask row's layout is decided by its class, never by its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdata.errors import RowError
from mtdata.input_files import MAX_LABEL_BYTES, InputFileError, read_input_file
from mtdata.records import ImageLabels, ObjectBatch

TASKS = ("detect", "segment", "pose", "multitask")
COORD_TOLERANCE = 0.01  # normalized coordinates this far outside [0, 1] are clipped, beyond it rejected


class RowProblem(RowError):
    """A row that cannot be used; ``kind`` is a stable id that ``mtdata check`` reports as its rule."""

    def __init__(self, kind: str, message: str, *, file=None, line=None):
        super().__init__(message, file=file, line=line)
        self.kind = kind


@dataclass(frozen=True)
class YoloRow:
    """One parsed row, normalized coordinates.

    Attributes:
        class_id: class index.
        polygon_xyn: (P, 2) polygon (x, y), or None for detect/pose rows.
        box_cxcywhn: (4,) box (cx, cy, w, h), or None for segment/multitask rows.
        keypoints_xyn: (K, 3) keypoints (x, y, visibility), or None for rows without keypoints.
    """

    class_id: int
    polygon_xyn: np.ndarray | None = None
    box_cxcywhn: np.ndarray | None = None
    keypoints_xyn: np.ndarray | None = None


@dataclass(frozen=True)
class LabelLayout:
    """What the rows of a dataset look like.

    Attributes:
        task: one of TASKS.
        num_classes: rows with class ids >= this are rejected.
        num_keypoints: K, keypoints per row of a keypoint class.
        keypoint_dims: 2 (x, y) or 3 (x, y, visibility); multitask is always 3.
        keypoint_classes: class ids whose multitask rows carry keypoints.
    """

    task: str
    num_classes: int
    num_keypoints: int = 0
    keypoint_dims: int = 3
    keypoint_classes: frozenset[int] = frozenset()

    def parse(self, line: str) -> YoloRow:
        """Parse one non-blank line; raises :class:`RowProblem`."""
        values, class_id = _split_row(line, self.num_classes)
        if self.task == "detect":
            return parse_detect_values(class_id, values)
        if self.task == "segment":
            return parse_segment_values(class_id, values)
        if self.task == "pose":
            return parse_pose_values(class_id, values, self.num_keypoints, self.keypoint_dims)
        has_keypoints = class_id in self.keypoint_classes
        return parse_multitask_values(class_id, values, self.num_keypoints if has_keypoints else 0)

    def format(self, row: YoloRow) -> str:
        if self.task == "detect":
            return format_detect_row(row)
        if self.task == "segment":
            return format_segment_row(row)
        if self.task == "pose":
            return format_pose_row(row, self.keypoint_dims)
        return format_multitask_row(row)


def number_values(tokens: list[str], line: str | None = None) -> list[float]:
    """The values of a row's tokens: ASCII decimal numbers (``1``, ``-0.5``, ``.5``, ``1e-3``, ``nan``, ``inf``).

    Python's ``float`` also takes digits of other scripts (``"١.٥"``) and underscores between
    digits (``"0.1_5"``); the format does not (nor do the fast readers of :mod:`mtdata._runtime.number_text`,
    which must agree with this one). Raises :class:`RowProblem` ``non_numeric`` naming the first
    token that is not such a number. ``line``: the text the tokens were split from (one test for all).
    """
    plain = line is not None and line.isascii() and "_" not in line  # one test for the whole row, mostly
    if plain or all(t.isascii() and "_" not in t for t in tokens):
        try:
            return [float(t) for t in tokens]
        except ValueError:
            pass
    bad = next(t for t in tokens if not _is_number(t))
    raise RowProblem("non_numeric", f"expected numbers, found {shown_token(bad)}")


def shown_token(token: str) -> str:
    """A token for a message: its repr, cut to 40 characters (a row may hold a megabyte of one token)."""
    return repr(token) if len(token) <= 40 else repr(token[:37]) + "..."


def _split_row(line: str, num_classes: int) -> tuple[np.ndarray, int]:
    tokens = line.split()
    if not tokens:
        raise RowProblem("wrong_count", "expected a class id and its values, found an empty row")
    numbers = number_values(tokens, line)
    cls = numbers[0]
    if not math.isfinite(cls) or cls != int(cls) or cls < 0:
        raise RowProblem("class_not_integer", f"class must be a non-negative integer, found {shown_token(tokens[0])}")
    if int(cls) >= num_classes:
        raise RowProblem("class_out_of_range", f"class {shown_token(tokens[0])} is not in names (0..{num_classes - 1})")
    values = np.array(numbers[1:], dtype=np.float64)
    if not np.isfinite(values).all():
        raise RowProblem("not_finite", "values must be finite, found NaN or inf")
    return values, int(cls)


def _is_number(token: str) -> bool:
    if not token.isascii() or "_" in token:
        return False
    try:
        float(token)
    except ValueError:
        return False
    return True


def _checked_coords(coords: np.ndarray, what: str) -> np.ndarray:
    """Clip coordinates within COORD_TOLERANCE of [0, 1]; reject the row beyond it."""
    if not coords.size:
        return coords
    lo, hi = coords.min(), coords.max()
    if lo < -COORD_TOLERANCE or hi > 1 + COORD_TOLERANCE:
        worst = lo if -lo > hi - 1 else hi
        if what == "keypoint":  # a kind of its own: check's rule kpt_out_of_image, not coord_out_of_bounds
            raise RowProblem("kpt_out_of_bounds", f"{what} coordinate {worst:.6g} is outside [0, 1]")
        raise RowProblem("out_of_bounds", f"{what} coordinate {worst:.6g} is outside [0, 1]")
    return np.clip(coords, 0.0, 1.0) if lo < 0 or hi > 1 else coords  # most rows need no clipping copy


def _polygon(values: np.ndarray, expected: str) -> np.ndarray:
    if len(values) % 2:
        raise RowProblem("wrong_count", f"expected {expected}; found an odd count of {len(values)} polygon values")
    if len(values) < 6:
        raise RowProblem("too_few_points", f"a polygon needs at least 3 points, found {len(values) // 2}")
    return _checked_coords(values, "polygon").reshape(-1, 2)


def _keypoints(values: np.ndarray, num_keypoints: int, dims: int) -> np.ndarray:
    kpts = values.reshape(num_keypoints, dims)
    if dims == 2:
        kpts = np.concatenate([kpts, np.full((num_keypoints, 1), 2.0)], axis=1)  # 2-D points count as visible
    visibility = kpts[:, 2]
    valid = (visibility == 0) | (visibility == 1) | (visibility == 2)  # np.isin is 5x slower on K values
    if not valid.all():
        bad = visibility[~valid][0]
        raise RowProblem("bad_visibility", f"keypoint visibility must be 0, 1 or 2, found {bad:g}")
    labeled = visibility > 0
    kpts[labeled, :2] = _checked_coords(kpts[labeled, :2], "keypoint")
    return kpts


def _box(values: np.ndarray) -> np.ndarray:
    box = _checked_coords(values[:4], "box")
    if box[2] <= 0 or box[3] <= 0:
        raise RowProblem("zero_area", f"box width and height must be > 0, found {box[2]:g} x {box[3]:g}")
    return box


def parse_detect_values(class_id: int, values: np.ndarray) -> YoloRow:
    if len(values) != 4:
        raise RowProblem("wrong_count", f"expected cls cx cy w h (4 values after the class), found {len(values)}")
    return YoloRow(class_id, box_cxcywhn=_box(values))


def parse_segment_values(class_id: int, values: np.ndarray) -> YoloRow:
    return YoloRow(class_id, polygon_xyn=_polygon(values, "an even number of polygon values"))


def parse_pose_values(class_id: int, values: np.ndarray, num_keypoints: int, dims: int) -> YoloRow:
    expected = 4 + num_keypoints * dims
    if len(values) != expected:
        raise RowProblem(
            "wrong_count",
            f"expected 4 box + {num_keypoints}x{dims} keypoint values = {expected} after the class, found {len(values)}",
        )
    return YoloRow(class_id, box_cxcywhn=_box(values), keypoints_xyn=_keypoints(values[4:], num_keypoints, dims))


def parse_multitask_values(class_id: int, values: np.ndarray, num_keypoints: int) -> YoloRow:
    """``num_keypoints`` is K for keypoint classes and 0 for the others."""
    n_kpt = 3 * num_keypoints
    if num_keypoints:
        expected = f"{n_kpt} keypoint values (class {class_id} has {num_keypoints} keypoints) + an even polygon of >= 6"
    else:
        expected = f"an even polygon of >= 6 values (class {class_id} has no keypoints)"
    if num_keypoints and len(values) < n_kpt + 6:  # which part is short is ambiguous: name both
        raise RowProblem("wrong_count", f"expected {expected}; found {len(values)} values after the class")
    keypoints = _keypoints(values[:n_kpt], num_keypoints, 3) if num_keypoints else None
    return YoloRow(class_id, polygon_xyn=_polygon(values[n_kpt:], expected), keypoints_xyn=keypoints)


def parse_row(line: str, layout: LabelLayout) -> YoloRow:
    """Parse one row; raises :class:`RowProblem` naming what was expected and found."""
    return layout.parse(line)


DECIMALS = 6  # coordinates are written as %.6f ("0.479492"), classes and visibility as integers
_SCALE = 10**DECIMALS
# Look-up tables for coordinate_chars: the 8 bytes of "d.dddddd" as one little-endian word,
# summed from its integer digit (with the dot) and its two groups of three decimals.
_DIGITS3 = np.array([int.from_bytes(f"{i:03d}".encode(), "little") for i in range(1000)], dtype="<u8")
_HIGH3 = _DIGITS3 << np.uint64(16)
_LOW3 = _DIGITS3 << np.uint64(40)
_WHOLE = np.array([ord("0") + d + (ord(".") << 8) for d in range(10)], dtype="<u8")


def coordinate_text(value: float) -> str:
    """One coordinate as rows write it: 6 decimals, rounded half up (as :func:`coordinate_chars`)."""
    if not math.isfinite(value):
        return str(value)
    q = math.floor(abs(value) * _SCALE + 0.5)
    whole, frac = divmod(q, _SCALE)
    return f"{'-' if value < 0 and q else ''}{whole}.{frac:06d}"


def coordinate_chars(values: np.ndarray) -> np.ndarray:
    """(N,) values in [0, 10) -> (N, 9) ASCII: ``d.dddddd`` and a space, as :func:`coordinate_text` spells them.

    Built with a few whole-array operations instead of one ``%`` per number: label files of
    a COCO-sized dataset hold ~10M numbers.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    # int32 arithmetic: numpy divides int32 by a constant several times faster than int64
    q = (np.clip(values, 0.0, 9.9999994) * _SCALE + 0.5).astype(np.int32)
    whole = q // np.int32(_SCALE)
    frac = q - whole * np.int32(_SCALE)
    high = frac // np.int32(1000)
    words = np.take(_HIGH3, high)
    words += np.take(_LOW3, frac - high * np.int32(1000))
    words += np.take(_WHOLE, whole)
    out = np.empty((len(values), DECIMALS + 3), dtype=np.uint8)
    out[:, :8] = words.view(np.uint8).reshape(-1, 8)
    out[:, 8] = ord(" ")
    return out


def _row_text(class_id: int, values: np.ndarray, integer_columns: np.ndarray | None = None) -> str:
    """``cls v1 v2 ...``; values flagged in ``integer_columns`` (keypoint visibility) are written as integers."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    ints = np.zeros(len(values), dtype=bool) if integer_columns is None else integer_columns
    tokens = [str(int(v)) if is_int and float(v).is_integer() else coordinate_text(float(v)) for v, is_int in zip(values.tolist(), ints)]
    return " ".join([str(int(class_id)), *tokens])


def _visibility_columns(num_keypoints: int, dims: int, before: int = 0, after: int = 0) -> np.ndarray:
    flags = np.zeros(before + num_keypoints * dims + after, dtype=bool)
    if dims == 3:
        flags[before + 2 : before + 3 * num_keypoints : 3] = True
    return flags


def format_detect_row(row: YoloRow) -> str:
    return _row_text(row.class_id, row.box_cxcywhn)


def format_segment_row(row: YoloRow) -> str:
    return _row_text(row.class_id, row.polygon_xyn.reshape(-1))


def format_pose_row(row: YoloRow, keypoint_dims: int = 3) -> str:
    kpts = row.keypoints_xyn[:, :keypoint_dims].reshape(-1)
    flags = _visibility_columns(len(row.keypoints_xyn), keypoint_dims, before=4)
    return _row_text(row.class_id, np.concatenate([row.box_cxcywhn, kpts]), flags)


def format_multitask_row(row: YoloRow) -> str:
    if row.keypoints_xyn is None:
        return _row_text(row.class_id, row.polygon_xyn.reshape(-1))
    flags = _visibility_columns(len(row.keypoints_xyn), 3, after=row.polygon_xyn.size)
    return _row_text(row.class_id, np.concatenate([row.keypoints_xyn.reshape(-1), row.polygon_xyn.reshape(-1)]), flags)


@dataclass
class ParsedLabels:
    """Rows of one label file with their 1-based line numbers, and the rows that failed."""

    rows: list[YoloRow]
    lines: list[int]
    problems: list[RowProblem]


def parse_label_text(text: str, layout: LabelLayout, file: str | Path | None = None) -> ParsedLabels:
    """Parse every non-blank line; failures are collected, each naming its file and line."""
    rows, lines, problems = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(layout.parse(line))
            lines.append(number)
        except RowProblem as problem:
            problem.file, problem.line = (str(file) if file is not None else None), number
            problems.append(problem)
    return ParsedLabels(rows, lines, problems)


def read_label_text(path: str | Path) -> str:
    """A label file's text: UTF-8 (a BOM allowed, as ultralytics reads), a regular file of at most MAX_LABEL_BYTES.

    Raises:
        FileNotFoundError: no such file.
        InputFileError: anything else that keeps it from being read, ``reason`` saying what.
    """
    data = read_input_file(path, MAX_LABEL_BYTES, "label file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(f"not UTF-8 text: {e.reason} at byte {e.start}", file=path) from e


def read_label_file(path: Path, layout: LabelLayout) -> ParsedLabels:
    """Read (:func:`read_label_text`) and parse one label file."""
    return parse_label_text(read_label_text(path), layout, path)


# --- rows <-> records -------------------------------------------------------------------


def rows_to_batch(rows: list[YoloRow], resolution_wh: tuple[int, int], num_keypoints: int,
                  lines: list[int] | None = None) -> ObjectBatch:
    """Rows of one file (normalized) as a batch of image 0 (pixels of ``resolution_wh``); boxes come from the polygons
    of rows without a box; keypoints padded with absent points (or cut) to ``num_keypoints``.

    Args:
        lines: the rows' 1-based lines, kept as ``source_ids`` (-1 without).
    """
    w, h = resolution_wh
    scale = np.array([w, h], dtype=np.float64)
    n = len(rows)
    polygons = [row.polygon_xyn for row in rows if row.polygon_xyn is not None]
    sizes = np.array([0 if row.polygon_xyn is None else len(row.polygon_xyn) for row in rows], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    polygon_xy = np.concatenate(polygons) * scale if polygons else np.zeros((0, 2))
    xyxy = np.zeros((n, 4))
    with_polygon = np.flatnonzero(sizes > 0)
    if len(with_polygon):  # every polygon has >= 3 points: runs of present polygons are back to back
        xyxy[with_polygon, :2] = np.minimum.reduceat(polygon_xy, offsets[with_polygon], axis=0)
        xyxy[with_polygon, 2:] = np.maximum.reduceat(polygon_xy, offsets[with_polygon], axis=0)
    boxed = [i for i, row in enumerate(rows) if row.box_cxcywhn is not None]
    if boxed:  # a row's box wins over its polygon's extent
        cx, cy, bw, bh = np.array([rows[i].box_cxcywhn for i in boxed], dtype=np.float64).T
        xyxy[boxed] = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=1)
    keypoints = np.zeros((n, num_keypoints, 3))
    for i, row in enumerate(rows):
        if row.keypoints_xyn is not None:
            k = min(num_keypoints, len(row.keypoints_xyn))
            keypoints[i, :k, :2] = row.keypoints_xyn[:k, :2] * scale
            keypoints[i, :k, 2] = row.keypoints_xyn[:k, 2]
    return ObjectBatch(np.zeros(n, dtype=np.int64), [r.class_id for r in rows], xyxy, offsets, polygon_xy, keypoints, lines)


def rows_to_labels(rows: list[YoloRow], resolution_wh: tuple[int, int], num_keypoints: int) -> ImageLabels:
    """Rows (normalized) to one record (pixels): the per-image view of :func:`rows_to_batch`."""
    return rows_to_batch(rows, resolution_wh, num_keypoints).for_image(0, resolution_wh)
