"""Label files of many images, parsed at once into row blocks for ``mtdata merge``.

A merge reads two label files per image and parses every number in them; row by row through
:func:`mtdata.formats.yolo.parse_label_text` that is most of its time. Here the numbers of a
whole chunk of files are read at once (polars' or numpy's parser for plainly spaced files, ``float``
per token otherwise, as the parser does) and validated with a few numpy operations over the
chunk. The fast path is conservative: a file with any row it
cannot vouch for (a wrong count, a value outside [0, 1] that the parser would clip or reject,
a bad class or visibility) is parsed again by ``parse_label_text``, so problems, clipping and
messages are exactly the foundation's. Rows keep their text token for token (a merge does
not round anyone's coordinates again) unless the parser repaired them: those, and absent
keypoints, are written by the foundation's ``LabelLayout.format``.

Coordinates are normalized (x, y); boxes are xyxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mtdata.formats.yolo import LabelLayout, YoloRow, format_multitask_row, format_segment_row, parse_label_text
from mtdata.number_text import parse_numbers


@dataclass
class RowBlock:
    """Rows of several label files of one side, in file order then line order.

    Attributes:
        file: (R,) index of each row's file in the chunk.
        line: (R,) 1-based line number.
        class_id: (R,) class index.
        xyxy: (R, 4) box (x1, y1, x2, y2), normalized; a polygon's extent for segment rows.
        keypoints: (R, K, 3) normalized (x, y, visibility) for pose rows, else (R, 0, 3).
        text: R strings to write: the polygon values (segment) or the K ``x y v`` triples (pose).
    """

    file: np.ndarray
    line: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    keypoints: np.ndarray
    text: list[str]

    def __len__(self) -> int:
        return len(self.class_id)

    def polygon(self, row: int) -> np.ndarray:
        """(P, 2) polygon of a segment row."""
        return np.array(self.text[row].split(), dtype=np.float64).reshape(-1, 2)


def _split_lines(text: str) -> list[tuple[int, list[str]]]:
    return [(n, tokens) for n, line in enumerate(text.splitlines(), start=1) if (tokens := line.split())]


def _unit(values: np.ndarray) -> np.ndarray:
    """True where a value needs neither clipping nor rejection."""
    return (values >= 0.0) & (values <= 1.0)


def _good_classes(classes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.isfinite(classes) & (classes == np.floor(classes)) & (classes >= 0) & (classes < num_classes)


def _same(tokens: list[str], values: np.ndarray) -> bool:
    """The parser kept these tokens' values (it did not clip them)."""
    return len(tokens) == len(values) and all(float(t) == v for t, v in zip(tokens, values.tolist()))


def _keypoint_tokens(keypoints: np.ndarray) -> list[str]:
    """(K, 3) keypoints as the foundation writes them in a multitask row (absent points as zeros)."""
    keypoints = np.where(keypoints[:, 2:] > 0, keypoints, 0.0)
    row = YoloRow(0, polygon_xyn=np.zeros((3, 2)), keypoints_xyn=keypoints)
    return format_multitask_row(row).split()[1:1 + 3 * len(keypoints)]


@lru_cache(maxsize=64)
def absent_keypoints_text(num_keypoints: int) -> str:
    """K absent keypoints as the foundation writes them (``0 0 0`` triples in its number format)."""
    return " ".join(_keypoint_tokens(np.zeros((num_keypoints, 3))))


@dataclass
class _Split:
    """A chunk's rows: those the fast path may take (in file order), and the files it may not."""

    file: np.ndarray  # (R,) file of each row
    line: np.ndarray  # (R,) 1-based line number
    rows: list[str]  # R rows, tokens joined by single spaces
    counts: np.ndarray  # (R,) tokens per row
    values: np.ndarray  # all tokens as floats, row after row
    slow: set[int]  # files for parse_label_text


# Texts without these (and ASCII) split into lines and tokens exactly like str.splitlines() and
# str.split(), so their numbers can be read by one parser call per chunk.
def _is_plain(text: str) -> bool:
    """ASCII with single spaces between tokens and no other whitespace than newlines.

    Such a text splits into lines and tokens exactly as ``str.splitlines`` and ``str.split`` do,
    and a row's token count is its spaces + 1 (spaces at the ends of a line are caught by
    :func:`_file_rows`). Plain ``in`` tests are C searches; a regex here costs 10x more.
    """
    return (
        text.isascii() and "  " not in text and "\t" not in text and "\r" not in text
        and "\x0b" not in text and "\x0c" not in text and "\x1c" not in text and "\x1d" not in text and "\x1e" not in text
    )


_SPACE_TO_NEWLINE = bytes.maketrans(b" ", b"\n")


def _plain_values(texts: list[str], count: int) -> np.ndarray | None:
    """The ``count`` numbers of plain ``texts``, read at once; None when a token is not a number or the count differs."""
    blob = "\n".join(texts).encode("ascii").translate(_SPACE_TO_NEWLINE)  # one number a line
    return parse_numbers(blob, b"\n", count, skip_empty=True)


def _file_rows(text: str, plain: bool) -> tuple[list[int], list[str], list[int]] | None:
    """Line numbers, single-spaced rows and token counts of the non-blank lines of one file.

    None when a ``plain`` text has a line that starts or ends with a space after all.
    """
    numbers, rows, sizes = [], [], []
    if plain:
        for n, line in enumerate(text.split("\n"), start=1):
            if line:
                if line[0] == " " or line[-1] == " ":
                    return None
                numbers.append(n)
                rows.append(line)
                sizes.append(line.count(" ") + 1)
        return numbers, rows, sizes
    for n, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if tokens:
            numbers.append(n)
            rows.append(" ".join(tokens))
            sizes.append(len(tokens))
    return numbers, rows, sizes


def _gather(texts: list[str | None], cols: int | None) -> _Split:
    """Tokenize and convert every file; ``cols``: tokens per row (pose), None: odd and >= 7 (segment).

    Plain files (:func:`_is_plain`) are read by one :func:`mtdata.number_text.parse_numbers`
    over the chunk (polars, else numpy), the others token by token with ``float`` as the
    foundation parser does. In plain files the token count is exact, and the reader either
    reads one number per token or refuses (then every file goes through ``float``); a token
    numpy reads as two numbers ("0.5-0.3") changes the count, which sends the chunk through
    ``float`` too. A value a reader takes and ``float`` refuses ("nan(1)") is not finite, so
    validation sends its file to the foundation parser.
    """
    present = [f for f, text in enumerate(texts) if text]
    per_file = {}
    plain = set()
    for f in present:
        rows = _file_rows(texts[f], True) if _is_plain(texts[f]) else None
        if rows is not None:
            plain.add(f)
        per_file[f] = rows if rows is not None else _file_rows(texts[f], False)
    plain_values = _plain_values([texts[f] for f in sorted(plain)], sum(sum(per_file[f][2]) for f in plain)) if plain else None
    offsets: dict[int, int] = {}
    at = 0
    for f in sorted(plain):
        offsets[f] = at
        at += sum(per_file[f][2])

    files: list[int] = []
    lines: list[int] = []
    rows: list[str] = []
    counts: list[int] = []
    arrays: list[np.ndarray] = []
    slow: set[int] = set()
    for f in present:
        numbers, file_rows, sizes = per_file[f]
        if not file_rows:
            continue
        shaped = min(sizes) == max(sizes) == cols if cols is not None else min(sizes) >= 7 and all(n & 1 for n in sizes)
        values = None
        if shaped and f in plain and plain_values is not None:
            values = plain_values[offsets[f]:offsets[f] + sum(sizes)]
        elif shaped:
            flat = [t for row in file_rows for t in row.split(" ")]
            try:
                values = np.fromiter(map(float, flat), dtype=np.float64, count=len(flat))
            except ValueError:
                values = None
        if values is None:
            slow.add(f)
            continue
        arrays.append(values)
        files.extend([f] * len(file_rows))
        lines.extend(numbers)
        rows.extend(file_rows)
        counts.extend(sizes)
    return _Split(
        np.array(files, dtype=np.int64), np.array(lines, dtype=np.int64), rows, np.array(counts, dtype=np.int64),
        np.concatenate(arrays) if arrays else np.zeros(0), slow,
    )


def _problems(parsed, side: str) -> list[dict]:
    return [{"side": side, "file": p.file, "line": p.line, "kind": p.kind, "message": p.message} for p in parsed.problems]


def _assemble(parts: list[tuple], k: int) -> RowBlock:
    """Concatenate (file, line, class, xyxy, keypoints, text) parts and sort them into file order."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return RowBlock(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, k, 3)), [])
    file, line, classes, xyxy, keypoints = (np.concatenate([p[i] for p in parts]) for i in range(5))
    text = [t for p in parts for t in p[5]]
    order = np.lexsort((line, file))
    return RowBlock(file[order], line[order], classes[order].astype(np.int64), xyxy[order], keypoints[order], [text[i] for i in order.tolist()])


def _cxcywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    cx, cy, w, h = box.T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


# --- pose ---------------------------------------------------------------------------------


def _pose_keypoints(values: np.ndarray, k: int, dims: int) -> np.ndarray:
    """(R, K * dims) values -> (R, K, 3); 2-D rows: (0, 0) is absent, anything else visible."""
    kpts = values.reshape(len(values), k, dims)
    if dims == 3:
        return kpts.copy()
    labeled = np.any(kpts != 0, axis=2)
    return np.concatenate([kpts, np.where(labeled, 2.0, 0.0)[..., None]], axis=2)


def _pose_text(tokens: list[str], keypoints: np.ndarray, dims: int) -> str:
    """``x y v`` triples from a row's keypoint tokens (x, y kept); unlabeled points are written absent."""
    absent = absent_keypoints_text(1)
    parts = []
    for j, v in enumerate(keypoints[:, 2].tolist()):
        parts.append(absent if v == 0 else f"{tokens[dims * j]} {tokens[dims * j + 1]} {int(v)}")
    return " ".join(parts)


def read_pose_block(texts: list[str | None], files: list[str | None], layout: LabelLayout, problems: list[dict]) -> RowBlock:
    """Pose rows of ``texts`` (None: no file); malformed rows are skipped and added to ``problems``."""
    k, dims = layout.num_keypoints, layout.keypoint_dims
    cols = 5 + k * dims
    split = _gather(texts, cols)
    table = split.values.reshape(-1, cols)
    classes, box = table[:, 0], table[:, 1:5]
    keypoints = _pose_keypoints(table[:, 5:], k, dims)
    labeled = keypoints[..., 2] > 0
    ok = (
        _good_classes(classes, layout.num_classes)
        & np.isfinite(table).all(axis=1)
        & _unit(box).all(axis=1) & (box[:, 2] > 0) & (box[:, 3] > 0)
        & np.isin(keypoints[..., 2], (0.0, 1.0, 2.0)).all(axis=1)
        & (_unit(keypoints[..., :2]).all(axis=2) | ~labeled).all(axis=1)
    )
    slow = split.slow | set(split.file[~ok].tolist())
    keep = ~np.isin(split.file, list(slow))
    # Unlabeled points written with coordinates, and 2-D rows, need their triples rebuilt.
    rebuild = np.ones(len(table), bool) if dims == 2 else ((keypoints[..., 2] == 0) & (keypoints[..., :2] != 0).any(axis=2)).any(axis=1)
    text = [
        _pose_text(row.split(" ")[5:], kp, dims) if again else row.split(" ", 5)[5]
        for row, kp, again, kept in zip(split.rows, keypoints, rebuild.tolist(), keep.tolist()) if kept
    ]
    parts = [(split.file[keep], split.line[keep], classes[keep], _cxcywh_to_xyxy(box[keep]), keypoints[keep], text)]
    for f in sorted(slow):
        parts.append(_slow_pose(texts[f], files[f], f, layout, problems))
    return _assemble(parts, k)


def _slow_pose(text: str, path: str | None, f: int, layout: LabelLayout, problems: list[dict]) -> tuple:
    k, dims = layout.num_keypoints, layout.keypoint_dims
    parsed = parse_label_text(text, layout, path)
    problems.extend(_problems(parsed, "kpt"))
    if not parsed.rows:
        return (np.zeros(0, np.int64),)
    tokens_of = dict(_split_lines(text))
    raw = np.array([row.keypoints_xyn[:, :dims].reshape(-1) for row in parsed.rows])
    keypoints = _pose_keypoints(raw, k, dims)
    text_out = []
    for n, values, kp in zip(parsed.lines, raw, keypoints):
        tokens = tokens_of[n][5:]
        if _same(tokens, values):
            text_out.append(_pose_text(tokens, kp, dims))
        else:  # clipped by the parser: written as the foundation formats it
            text_out.append(" ".join(_keypoint_tokens(kp)))
    n_rows = len(parsed.rows)
    return (
        np.full(n_rows, f, dtype=np.int64), np.array(parsed.lines, dtype=np.int64),
        np.array([row.class_id for row in parsed.rows]), _cxcywh_to_xyxy(np.array([row.box_cxcywhn for row in parsed.rows])),
        keypoints, text_out,
    )


# --- segment ------------------------------------------------------------------------------


def read_segment_block(texts: list[str | None], files: list[str | None], layout: LabelLayout, problems: list[dict]) -> RowBlock:
    """Segment rows of ``texts`` (None: no file); malformed rows are skipped and added to ``problems``."""
    split = _gather(texts, None)
    counts = split.counts
    starts = np.cumsum(counts) - counts
    values = split.values
    classes = values[starts]
    is_coord = np.ones(len(values), dtype=bool)
    is_coord[starts] = False
    coords = values[is_coord]
    point_starts = (starts - np.arange(len(starts))) // 2  # each row's first point among all points
    if len(counts):
        coord_ok = np.logical_and.reduceat(np.isfinite(coords) & _unit(coords), point_starts * 2)
        x, y = coords[0::2], coords[1::2]
        xyxy = np.stack([
            np.minimum.reduceat(x, point_starts), np.minimum.reduceat(y, point_starts),
            np.maximum.reduceat(x, point_starts), np.maximum.reduceat(y, point_starts),
        ], axis=1)
    else:
        coord_ok, xyxy = np.zeros(0, bool), np.zeros((0, 4))
    ok = _good_classes(classes, layout.num_classes) & coord_ok
    slow = split.slow | set(split.file[~ok].tolist())
    keep = ~np.isin(split.file, list(slow))
    text = [row.partition(" ")[2] for row, kept in zip(split.rows, keep.tolist()) if kept]
    parts = [(split.file[keep], split.line[keep], classes[keep], xyxy[keep], np.zeros((int(keep.sum()), 0, 3)), text)]
    for f in sorted(slow):
        parts.append(_slow_segment(texts[f], files[f], f, layout, problems))
    return _assemble(parts, 0)


def _slow_segment(text: str, path: str | None, f: int, layout: LabelLayout, problems: list[dict]) -> tuple:
    parsed = parse_label_text(text, layout, path)
    problems.extend(_problems(parsed, "seg"))
    if not parsed.rows:
        return (np.zeros(0, np.int64),)
    tokens_of = dict(_split_lines(text))
    text_out = []
    for n, row in zip(parsed.lines, parsed.rows):
        flat, tokens = row.polygon_xyn.reshape(-1), tokens_of[n][1:]
        text_out.append(" ".join(tokens) if _same(tokens, flat) else format_segment_row(row).split(" ", 1)[1])
    n_rows = len(parsed.rows)
    return (
        np.full(n_rows, f, dtype=np.int64), np.array(parsed.lines, dtype=np.int64),
        np.array([row.class_id for row in parsed.rows]),
        np.array([np.concatenate([row.polygon_xyn.min(0), row.polygon_xyn.max(0)]) for row in parsed.rows]),
        np.zeros((n_rows, 0, 3)), text_out,
    )
