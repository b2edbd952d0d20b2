"""The row repairs of ``mtdata check --fix``: one label file's rows as one batch, fixed column by column.

:func:`fix_label_text` parses the file's rows one by one (the parser's rules, with invalid keypoints
set to 0 0 0 when that saves a row), puts them in one :class:`~mtdata.check.batch.CheckRows` (normalized
coordinates, ``source_ids`` the 1-based lines), and repairs the batch: clipped rows and unlabeled
keypoints with coordinates are found over whole columns, polygons are judged in one
:func:`~mtdata.check.polygons.polygon_defects` call and repaired one by one (shapely), and repeated rows
are found by their values' bytes. Changed rows are written back with the layout's row writer; the
other rows keep their text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from mtdata.check.batch import CheckRows, FileRows, check_rows, on_edge
from mtdata.check.objects import was_clipped
from mtdata.check.polygons import polygon_defects
from mtdata.check.verify import rule_of_problem
from mtdata.formats.yolo.rows import COORD_TOLERANCE, LabelLayout, ParsedLabels, RowProblem, YoloRow, number_values
from mtdata.geometry import join_polygons


@dataclass
class FixChange:
    """One change: ``file`` relative to the dataset root, 1-based ``line`` (None: whole file)."""

    file: str
    line: int | None
    rule: str | None
    action: str


def _keypoint_slots(class_id: int, layout: LabelLayout) -> int | None:
    """Index of the first keypoint value in a row's values (after the class), or None."""
    if layout.task == "multitask" and class_id in layout.keypoint_classes:
        return 0
    if layout.task == "pose" and layout.keypoint_dims == 3:
        return 4
    return None


def _zero_bad_keypoints(line: str, layout: LabelLayout) -> tuple[str, list[int]] | None:
    """The line with invalid keypoints (bad visibility, labeled outside the image) set to 0 0 0."""
    tokens = line.split()
    try:
        values = number_values(tokens, line)  # the parser's own number rule
    except RowProblem:
        return None
    if not values or not math.isfinite(values[0]) or values[0] != int(values[0]) or not 0 <= values[0] < layout.num_classes:
        return None
    start = _keypoint_slots(int(values[0]), layout)
    k = layout.num_keypoints
    if start is None or len(values) < 1 + start + 3 * k:
        return None
    bad = []
    for j in range(k):
        at = 1 + start + 3 * j
        x, y, v = values[at:at + 3]
        outside = not (-COORD_TOLERANCE <= x <= 1 + COORD_TOLERANCE and -COORD_TOLERANCE <= y <= 1 + COORD_TOLERANCE)
        if v not in (0.0, 1.0, 2.0) or (v > 0 and outside):
            bad.append(j)
            tokens[at:at + 3] = ["0", "0", "0"]
    return (" ".join(tokens), bad) if bad else None


def _parse_salvaging_keypoints(line: str, layout: LabelLayout, notes: list) -> YoloRow:
    """Parse a row; when it fails, try again with its invalid keypoints set to 0 0 0."""
    try:
        return layout.parse(line)
    except RowProblem as problem:
        salvaged = _zero_bad_keypoints(line, layout)
        if salvaged is None:
            raise
        row = layout.parse(salvaged[0])  # may raise the row's next problem: then it is dropped
        notes.append((rule_of_problem(problem), f"set keypoints {', '.join(map(str, salvaged[1]))} to 0 0 0"))
        return row


def _repair_polygon(polygon: np.ndarray) -> np.ndarray | None:
    """A polygon with the same filled area that does not cross itself, or None if nothing is left."""
    fixed = shapely.make_valid(shapely.Polygon(polygon))
    parts = [np.asarray(g.exterior.coords)[:-1] for g in getattr(fixed, "geoms", [fixed]) if g.geom_type == "Polygon" and g.area > 0]
    joined = join_polygons(parts)
    return joined if len(joined) >= 3 else None


@dataclass
class _Fixing:
    """One file's rows while they are fixed: the batch, and per row its notes (rule, action) in the order they are
    made, or the (rule, action) that drops it."""

    rows: CheckRows
    parsed: list[YoloRow]
    notes: list[list[tuple[str, str]]]
    dropped: list[tuple[str, str] | None]


def _parse_rows(lines: list[str], layout: LabelLayout, file: str) -> tuple[_Fixing, dict[int, tuple[str, str]]]:
    """The file's rows as a batch (blank lines skipped), and {line: (rule, action)} for rows that cannot be parsed."""
    rows, numbers, notes, unparsed = [], [], [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row_notes: list[tuple[str, str]] = []
        try:
            rows.append(_parse_salvaging_keypoints(line, layout, row_notes))
        except RowProblem as left:
            unparsed[number] = (rule_of_problem(left), f"dropped the row: {left.message}")
            continue
        numbers.append(number)
        notes.append(row_notes)
    batch = check_rows([FileRows(ParsedLabels(rows, numbers, []), lines, None, file)], layout)
    return _Fixing(batch, rows, notes, [None] * len(rows)), unparsed


def _note_clipped(fixing: _Fixing, lines: list[str], layout: LabelLayout) -> None:
    """Note the rows that loading clipped (rows whose keypoints were salvaged are rewritten anyway)."""
    rows = fixing.rows
    for i in np.flatnonzero(on_edge(rows)).tolist():
        line = lines[int(rows.source_ids[i]) - 1]
        if not fixing.notes[i] and was_clipped(line, fixing.parsed[i], layout):
            fixing.notes[i].append(("coord_clipped", "clipped coordinates to [0, 1]"))


def _zero_unlabeled_keypoints(fixing: _Fixing) -> None:
    """Unlabeled keypoints (visibility 0) with non-zero coordinates get (0, 0), in the batch, all rows at once."""
    kpts = fixing.rows.keypoints  # (N, K, 3); rows without keypoints hold (0, 0, 0)
    stray = (kpts[..., 2] == 0) & ((kpts[..., 0] != 0) | (kpts[..., 1] != 0))
    kpts[..., :2][stray] = 0.0
    for i in np.flatnonzero(stray.any(axis=1)).tolist():
        fixing.notes[i].append(("kpt_unlabeled_nonzero", f"zeroed unlabeled keypoints {', '.join(map(str, np.flatnonzero(stray[i])))}"))


def _fix_polygons(fixing: _Fixing) -> None:
    """Drop rows whose polygon has zero area or cannot be repaired; repair (and note) those that cross themselves.

    The verdicts are :func:`~mtdata.check.polygons.polygon_defects`' (check's, export's and the trainer's), one call
    for the file's polygons and one for the repaired ones; the repair is shapely ``make_valid`` per polygon, its parts
    joined by :func:`mtdata.geometry.join_polygons` and clipped to [0, 1].
    """
    rows = fixing.rows
    index = np.flatnonzero(np.diff(rows.polygon_offsets) > 0).tolist()  # rows with a polygon (segment, multitask)
    defects, _ = polygon_defects([rows.polygon(i) for i in index])
    repaired: dict[int, np.ndarray] = {}
    for i, defect in zip(index, defects):
        if defect is not None and defect[0] == "zero_area":
            fixing.dropped[i] = ("zero_area", "dropped: the polygon encloses no area")
        elif defect is not None:
            polygon = _repair_polygon(rows.polygon(i))
            if polygon is None:
                fixing.dropped[i] = ("polygon_self_intersecting", "dropped: nothing is left of the polygon after repair")
            else:
                repaired[i] = polygon
    clipped = {i: np.clip(p, 0.0, 1.0) for i, p in repaired.items()}
    again, _ = polygon_defects(list(clipped.values()))
    kept = {}
    for (i, polygon), defect in zip(clipped.items(), again):
        if defect is not None:  # clipping folded it again
            fixing.dropped[i] = ("polygon_self_intersecting", "dropped: the repaired polygon is still not usable")
        else:
            fixing.notes[i].append(("polygon_self_intersecting", f"repaired the polygon ({len(rows.polygon(i))} -> {len(polygon)} points)"))
            kept[i] = polygon
    if kept:
        fixing.rows = _with_polygons(rows, kept)


def _with_polygons(rows: CheckRows, polygons: dict[int, np.ndarray]) -> CheckRows:
    """The batch with the polygons of rows ``i`` replaced by ``polygons[i]`` ((P, 2) normalized)."""
    parts = [polygons[i] if i in polygons else rows.polygon(i) for i in range(len(rows))]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    points = np.concatenate(parts)
    xyxy = rows.xyxy.copy()
    changed = np.array(sorted(i for i in polygons if np.isnan(rows.box_cxcywhn[i, 0])), dtype=np.int64)
    if len(changed):  # a row without its own box is boxed by its polygon's extent
        xyxy[changed] = [[*polygons[i].min(axis=0), *polygons[i].max(axis=0)] for i in changed.tolist()]
    return CheckRows(rows.image, rows.class_id, xyxy, offsets, points, rows.keypoints, rows.source_ids,
                     resolution_wh=rows.resolution_wh, box_cxcywhn=rows.box_cxcywhn, has_keypoints=rows.has_keypoints)


def _duplicate_of(rows: CheckRows, candidates: np.ndarray) -> np.ndarray:
    """(len(candidates),) for each candidate row, the first earlier candidate holding the same values bit for bit
    (what :func:`mtdata.check.verify.row_key` compares: class, box, keypoints and polygon, so -0.0 and 0.0
    differ), -1 for none. ``candidates``: ascending row indices."""
    box = np.ascontiguousarray(rows.box_cxcywhn)  # NaN (no box) has one bit pattern
    kpts = np.ascontiguousarray(rows.keypoints)
    first: dict[tuple, int] = {}
    out = np.full(len(candidates), -1, dtype=np.int64)
    for n, i in enumerate(candidates.tolist()):
        key = (int(rows.class_id[i]), box[i].tobytes(), kpts[i].tobytes(), rows.polygon(i).tobytes())
        j = first.setdefault(key, i)
        if j != i:
            out[n] = j
    return out


def _drop_duplicates(fixing: _Fixing) -> None:
    """Drop the rows that repeat an earlier kept row after the repairs, naming its line."""
    kept = np.array([i for i, d in enumerate(fixing.dropped) if d is None], dtype=np.int64)
    for i, j in zip(kept.tolist(), _duplicate_of(fixing.rows, kept).tolist()):
        if j >= 0:
            fixing.dropped[i] = ("row_duplicate", f"dropped: repeats line {int(fixing.rows.source_ids[j])}")


def _batch_row(rows: CheckRows, i: int) -> YoloRow:
    """Row ``i`` of the batch as the layout's row writer takes it (normalized; the parts its layout has)."""
    box = rows.box_cxcywhn[i]
    return YoloRow(int(rows.class_id[i]), polygon_xyn=rows.polygon(i) if rows.polygon_offsets[i + 1] > rows.polygon_offsets[i] else None,
                   box_cxcywhn=None if np.isnan(box[0]) else box, keypoints_xyn=rows.keypoints[i] if rows.has_keypoints[i] else None)


def fix_label_text(text: str, layout: LabelLayout, file: str) -> tuple[str, list[FixChange]]:
    """Fix the rows of one label file; unchanged rows (and blank lines) are kept verbatim.

    Returns:
        (text, changes): the fixed file's text (each line ending in ``\\n``) and its changes in line order.
    """
    lines = text.splitlines()
    fixing, unparsed = _parse_rows(lines, layout, file)
    _note_clipped(fixing, lines, layout)
    _zero_unlabeled_keypoints(fixing)
    _fix_polygons(fixing)
    _drop_duplicates(fixing)
    rows = fixing.rows
    at = {int(n): i for i, n in enumerate(rows.source_ids.tolist())}
    out, changes = [], []
    for number, line in enumerate(lines, start=1):
        if number in unparsed:
            changes.append(FixChange(file, number, *unparsed[number]))
        elif number not in at:  # a blank line
            out.append(line)
        elif fixing.dropped[at[number]] is not None:
            changes.append(FixChange(file, number, *fixing.dropped[at[number]]))
        else:
            notes = fixing.notes[at[number]]
            changes += [FixChange(file, number, rule, action) for rule, action in notes]
            out.append(layout.format(_batch_row(rows, at[number])) if notes else line)
    return "".join(line + "\n" for line in out), changes
