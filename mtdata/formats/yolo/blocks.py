"""Label files of many images, parsed at once into row blocks for ``mtdata merge``.

A merge reads two label files per image and parses every number in them; row by row through
:func:`mtdata.formats.yolo.rows.parse_label_text` that is most of its time. Here a whole chunk of
files is split into lines and tokens by numpy over the joined bytes, its numbers are read by
one parser call (polars', else numpy's; ``float`` per token when they refuse, as the parser
does), and they are validated with a few numpy operations over the chunk. Rows stay bytes
from the files until they are written. The fast path is conservative: a file with any row it
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

from mtdata._runtime.number_text import parse_numbers
from mtdata.formats.yolo.rows import LabelLayout, YoloRow, format_multitask_row, format_segment_row, parse_label_text
from mtdata.geometry import polygon_xyxy
from mtdata.records import ObjectBatch


@dataclass(kw_only=True)
class RowBlock(ObjectBatch):
    """Rows of several label files of one side, in file order then line order: an :class:`ObjectBatch` in normalized
    coordinates (x, y), boxes xyxy (a polygon's extent for segment rows), polygons for segment rows, keypoints
    (R, K, 3) for pose rows, else (R, 0, 3); ``image`` is each row's file index in the chunk, ``source_ids`` its
    1-based line number.

    Attributes:
        text: R ASCII texts to write: the polygon values (segment) or the K ``x y v`` triples (pose), token
            for token as the file holds them, so a merge writes back unchanged what it did not change.
    """

    text: list[bytes]


def _split_lines(text: str) -> list[tuple[int, list[str]]]:
    return [(n, tokens) for n, line in enumerate(text.splitlines(), start=1) if (tokens := line.split())]


def _unit(values: np.ndarray) -> np.ndarray:
    """True where a value needs neither clipping nor rejection (NaN and infinities are False)."""
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
class _Tokens:
    """The non-blank lines of a chunk's files that one number reader could take, in file then line order.

    Byte offsets point into ``blob``, where every such file's text sits (whitespace normalized
    when it was not plain), each followed by a newline.
    """

    blob: bytes
    file: np.ndarray  # (R,) file of each row
    line: np.ndarray  # (R,) 1-based line number
    counts: np.ndarray  # (R,) tokens per row
    values: np.ndarray  # all tokens as floats, row after row
    end: np.ndarray  # (R,) offset of the newline that ends each row
    spaces: np.ndarray  # offsets of every space in blob
    first_space: np.ndarray  # (R,) index in ``spaces`` of each row's first space
    slow: set[int]  # files for parse_label_text

    def tail(self, rows: np.ndarray, skip: int) -> list[bytes]:
        """The text of each of ``rows`` after its first ``skip`` tokens (rows must have more than ``skip``)."""
        starts = (self.spaces[self.first_space[rows] + (skip - 1)] + 1).tolist()
        blob = self.blob
        return [blob[a:b] for a, b in zip(starts, self.end[rows].tolist())]


_PRINTABLE = bytes(range(0x20, 0x80)) + b"\n"  # ASCII that can stand in a plain text: no control byte but the newline


def _is_plain(text: bytes) -> bool:
    """ASCII without control bytes but newlines, tokens split by single spaces, no space at either end of a line.

    Such a text splits into lines and tokens exactly as ``str.splitlines`` and ``str.split``
    do, and a row's token count is its spaces + 1. (The rule of :func:`_is_plain_blob`, for one file.)
    """
    return (
        text.isascii() and not text.translate(None, _PRINTABLE) and not text.startswith(b" ") and not text.endswith(b" ")
        and b"  " not in text and b" \n" not in text and b"\n " not in text
    )


def _is_plain_blob(blob: bytes, u8: np.ndarray, spaces: np.ndarray, ends: np.ndarray) -> bool:
    """:func:`_is_plain` for a whole chunk that ends in a newline, from the offsets of its spaces and
    newlines that the tokenizer needs anyway: a few numpy passes instead of searches over the text."""
    if not blob.isascii() or np.count_nonzero(u8 < 32) != len(ends):  # a control byte other than a newline
        return False
    if not len(spaces):
        return True
    if spaces[0] == 0 or (np.diff(spaces) == 1).any():  # a line starts with a space; two spaces in a row
        return False
    return not (u8[ends - 1] == 32).any() and not (u8[ends[:-1] + 1] == 32).any()  # a space at either end of a line


def _normalized(text: bytes) -> bytes:
    """An ASCII text with the same lines (numbered alike) and tokens, made plain."""
    return "\n".join(" ".join(line.split()) for line in text.decode("ascii").splitlines()).encode("ascii")


_SPACE_TO_NEWLINE = bytes.maketrans(b" ", b"\n")


def _layout(parts: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The parts joined, each followed by a newline: (blob, its bytes, offsets of its spaces, of its newlines, of each part)."""
    blob = b"\n".join(parts) + b"\n" if parts else b""
    u8 = np.frombuffer(blob, dtype=np.uint8)
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + 1
    return blob, u8, np.flatnonzero(u8 == 32), np.flatnonzero(u8 == 10), np.cumsum(lengths) - lengths


def _tokenize(texts: list[bytes | None]) -> _Tokens:
    """Lines, tokens and numbers of every file, read at once with numpy over the joined bytes.

    Files that are not ASCII go to the foundation parser (``slow``); other files with odd
    whitespace are normalized first. The numbers are read by one
    :func:`mtdata._runtime.number_text.parse_numbers` call (polars, else numpy). When it refuses (a token
    that is not a number), each row is read token by token with ``float``, as the foundation
    parser does, and files it refuses go to the foundation parser. A value a reader takes and
    ``float`` refuses ("nan(1)") is not finite, so validation sends its file there too.
    """
    files = [f for f, text in enumerate(texts) if text]
    slow: set[int] = set()
    blob, u8, spaces, ends, file_starts = _layout([texts[f] for f in files])
    if not _is_plain_blob(blob, u8, spaces, ends):  # rare: look at each file
        parts = []
        for f in files:
            text = texts[f]
            if not _is_plain(text):
                if not text.isascii():
                    slow.add(f)
                    continue
                text = _normalized(text)
            parts.append(text)
        files = [f for f in files if f not in slow]
        blob, u8, spaces, ends, file_starts = _layout(parts)
    if not files:
        empty = np.zeros(0, np.int64)
        return _Tokens(b"", empty, empty, empty, np.zeros(0), empty, empty, empty, slow)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    part = np.searchsorted(file_starts, starts, side="right") - 1  # each line's file, as an index in ``files``
    line = np.arange(len(starts)) - np.searchsorted(starts, file_starts)[part] + 1
    rows = np.flatnonzero(ends > starts)  # blank lines hold no row
    first_space = np.searchsorted(spaces, starts[rows])
    counts = np.searchsorted(spaces, ends[rows]) - first_space + 1
    values = parse_numbers(blob.translate(_SPACE_TO_NEWLINE), b"\n", int(counts.sum()), skip_empty=True) if len(rows) else np.zeros(0)
    file = np.asarray(files, dtype=np.int64)[part[rows]]
    if values is None:
        values = _float_values(blob, starts[rows], ends[rows], file, slow)
    return _Tokens(blob, file, line[rows], counts, values, ends[rows], spaces, first_space, slow)


def _float_values(blob: bytes, starts: np.ndarray, ends: np.ndarray, file: np.ndarray, slow: set[int]) -> np.ndarray:
    """Every token of every row read with ``float``; a file with a token it refuses, or that the format refuses
    and ``float`` takes (an underscore; the blob is ASCII), goes to ``slow`` (its values NaN)."""
    values = []
    for a, b, f in zip(starts.tolist(), ends.tolist(), file.tolist()):
        tokens = blob[a:b].split(b" ")
        try:
            if b"_" in blob[a:b]:  # float takes "0.1_5", the format does not (yolo.number_values)
                raise ValueError
            values.append(np.array([float(t) for t in tokens]))
        except ValueError:
            slow.add(f)
            values.append(np.full(len(tokens), np.nan))
    return np.concatenate(values) if values else np.zeros(0)


def _file_has(rows_bad: np.ndarray, file: np.ndarray, slow: set[int]) -> set[int]:
    """``slow`` plus the files of the rows flagged in ``rows_bad``."""
    return slow | set(np.unique(file[rows_bad]).tolist())


def _problems(parsed, side: str) -> list[dict]:
    return [{"side": side, "file": p.file, "line": p.line, "kind": p.kind, "message": p.message} for p in parsed.problems]


def _assemble(parts: list[tuple], k: int) -> RowBlock:
    """Concatenate (file, line, class, xyxy, keypoints, text, points per row, polygon points) parts and sort them into
    file order."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return RowBlock(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(1, np.int64), np.zeros((0, 2)),
                        np.zeros((0, k, 3)), np.zeros(0, np.int64), text=[])
    if len(parts) == 1:  # no file needed the foundation parser: already in file order
        file, line, classes, xyxy, keypoints, text, sizes, points = parts[0]
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return RowBlock(file, classes.astype(np.int64), xyxy, offsets, points, keypoints, line, text=text)
    file, line, classes, xyxy, keypoints, sizes, points = (np.concatenate([p[i] for p in parts]) for i in (0, 1, 2, 3, 4, 6, 7))
    text = [t for p in parts for t in p[5]]
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    order = np.lexsort((line, file))
    block = ObjectBatch(file, classes, xyxy, offsets, points, keypoints, line).select(order)
    return RowBlock(block.image, block.class_id, block.xyxy, block.polygon_offsets, block.polygon_xy, block.keypoints,
                    block.source_ids, text=[text[i] for i in order.tolist()])


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


def _kept_rows(tokens: _Tokens, shaped: np.ndarray) -> tuple[set[int], np.ndarray, np.ndarray]:
    """Files with a row of the wrong shape join ``slow``; returns (slow, rows left, their values)."""
    slow = _file_has(~shaped, tokens.file, tokens.slow)
    if len(slow) == len(tokens.slow) and shaped.all():
        return slow, np.arange(len(shaped)), tokens.values
    keep = shaped & ~np.isin(tokens.file, list(slow))
    return slow, np.flatnonzero(keep), tokens.values[np.repeat(keep, tokens.counts)]


def read_pose_block(texts: list[bytes | None], files: list[str | None], layout: LabelLayout, problems: list[dict]) -> RowBlock:
    """Pose rows of ``texts`` (None: no file); malformed rows are skipped and added to ``problems``."""
    k, dims = layout.num_keypoints, layout.keypoint_dims
    cols = 5 + k * dims
    tokens = _tokenize(texts)
    slow, rows, values = _kept_rows(tokens, tokens.counts == cols)
    table = values.reshape(-1, cols)
    classes, box = table[:, 0], table[:, 1:5]
    keypoints = _pose_keypoints(table[:, 5:], k, dims)
    visibility = keypoints[..., 2]
    labeled = visibility > 0
    ok = (
        _good_classes(classes, layout.num_classes)
        & np.isfinite(table).all(axis=1)
        & _unit(box).all(axis=1) & (box[:, 2] > 0) & (box[:, 3] > 0)
        & ((visibility == 0.0) | (visibility == 1.0) | (visibility == 2.0)).all(axis=1)
        & (_unit(keypoints[..., :2]).all(axis=2) | ~labeled).all(axis=1)
    )
    slow = _file_has(~ok, tokens.file[rows], slow)
    keep = ~np.isin(tokens.file[rows], list(slow)) if len(slow) else np.ones(len(rows), bool)
    rows, keypoints = rows[keep], keypoints[keep]
    text = tokens.tail(rows, 5)
    # Unlabeled points written with coordinates, and 2-D rows, need their triples rebuilt.
    rebuild = np.ones(len(rows), bool) if dims == 2 else ((keypoints[..., 2] == 0) & (keypoints[..., :2] != 0).any(axis=2)).any(axis=1)
    for i in np.flatnonzero(rebuild).tolist():
        text[i] = _pose_text(text[i].decode("ascii").split(" "), keypoints[i], dims).encode("ascii")
    parts = [(tokens.file[rows], tokens.line[rows], classes[keep], _cxcywh_to_xyxy(box[keep]), keypoints, text,
              np.zeros(len(rows), np.int64), np.zeros((0, 2)))]
    for f in sorted(slow):
        parts.append(_slow_pose(texts[f], files[f], f, layout, problems))
    return _assemble(parts, k)


def _slow_pose(data: bytes, path: str | None, f: int, layout: LabelLayout, problems: list[dict]) -> tuple:
    k, dims = layout.num_keypoints, layout.keypoint_dims
    text = data.decode("utf-8")
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
            text_out.append(_pose_text(tokens, kp, dims).encode("utf-8"))
        else:  # clipped by the parser: written as the foundation formats it
            text_out.append(" ".join(_keypoint_tokens(kp)).encode("ascii"))
    n_rows = len(parsed.rows)
    return (
        np.full(n_rows, f, dtype=np.int64), np.array(parsed.lines, dtype=np.int64),
        np.array([row.class_id for row in parsed.rows]), _cxcywh_to_xyxy(np.array([row.box_cxcywhn for row in parsed.rows])),
        keypoints, text_out, np.zeros(n_rows, np.int64), np.zeros((0, 2)),
    )


# --- segment ------------------------------------------------------------------------------


def read_segment_block(texts: list[bytes | None], files: list[str | None], layout: LabelLayout, problems: list[dict]) -> RowBlock:
    """Segment rows of ``texts`` (None: no file); malformed rows are skipped and added to ``problems``."""
    tokens = _tokenize(texts)
    slow, rows, values = _kept_rows(tokens, (tokens.counts >= 7) & (tokens.counts % 2 == 1))
    counts = tokens.counts[rows]
    starts = np.cumsum(counts) - counts
    classes = values[starts]
    if len(counts):
        inside = _unit(values)
        inside[starts] = True  # class ids are checked on their own
        coord_ok = np.logical_and.reduceat(inside, starts)
        points = np.delete(values, starts).reshape(-1, 2)  # (x, y) of every row, row after row
        point_starts = (starts - np.arange(len(starts))) // 2  # each row's first point among all points
        xyxy = np.concatenate([np.minimum.reduceat(points, point_starts), np.maximum.reduceat(points, point_starts)], axis=1)
    else:
        coord_ok, xyxy, points = np.zeros(0, bool), np.zeros((0, 4)), np.zeros((0, 2))
    ok = _good_classes(classes, layout.num_classes) & coord_ok
    slow = _file_has(~ok, tokens.file[rows], slow)
    keep = ~np.isin(tokens.file[rows], list(slow)) if len(slow) else np.ones(len(rows), bool)
    sizes = (counts - 1) // 2
    if not keep.all():
        points, sizes = points[np.repeat(keep, sizes)], sizes[keep]
    rows = rows[keep]
    parts = [(tokens.file[rows], tokens.line[rows], classes[keep], xyxy[keep], np.zeros((len(rows), 0, 3)), tokens.tail(rows, 1),
              sizes, points)]
    for f in sorted(slow):
        parts.append(_slow_segment(texts[f], files[f], f, layout, problems))
    return _assemble(parts, 0)


def _slow_segment(data: bytes, path: str | None, f: int, layout: LabelLayout, problems: list[dict]) -> tuple:
    text = data.decode("utf-8")
    parsed = parse_label_text(text, layout, path)
    problems.extend(_problems(parsed, "seg"))
    if not parsed.rows:
        return (np.zeros(0, np.int64),)
    tokens_of = dict(_split_lines(text))
    text_out = []
    for n, row in zip(parsed.lines, parsed.rows):
        flat, tokens = row.polygon_xyn.reshape(-1), tokens_of[n][1:]
        text_out.append((" ".join(tokens) if _same(tokens, flat) else format_segment_row(row).split(" ", 1)[1]).encode("utf-8"))
    n_rows = len(parsed.rows)
    return (
        np.full(n_rows, f, dtype=np.int64), np.array(parsed.lines, dtype=np.int64),
        np.array([row.class_id for row in parsed.rows]),
        np.array([polygon_xyxy(row.polygon_xyn) for row in parsed.rows]),
        np.zeros((n_rows, 0, 3)), text_out, np.array([len(row.polygon_xyn) for row in parsed.rows], dtype=np.int64),
        np.concatenate([row.polygon_xyn for row in parsed.rows]),
    )
