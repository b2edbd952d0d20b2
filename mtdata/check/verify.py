"""Verification of one image and one label file, shared by ``mtdata check``, export and the trainer.

The contract: the trainer's dataset loader and ``mtdata export`` call :func:`verify_image` (or
its header rule, :mod:`mtdata.image_header`) and :func:`verify_label_file` and use nothing
else to decide what to keep, so check, export and training cannot drift apart.

- An image the trainer drops is an error finding here: it drops the image when
  ``ImageCheck.ok`` is False (unreadable, corrupt, zero size, too small, too large) or when its label
  file gives ``label_unreadable``.
- A row the trainer drops is an error finding here: ``ParsedLabels.rows`` are the usable rows
  and every other non-blank line has an error finding at its 1-based line: rows that do not
  parse, and rows whose polygon has zero area or crosses itself (:mod:`mtdata.check.polygons`);
  a repeated row is an error too (``row_duplicate``; :func:`duplicate_rows` gives the trainer
  its indices).
- Warnings (EXIF rotation, ...) never make the trainer drop anything.

Images are decoded with OpenCV, as ultralytics' ``imread`` (and so the trainer) reads them.

Both functions are small and quick (no rich, no typer); the dataset-wide rules (sizes,
near-duplicates, keypoints, duplicates across splits) live in :mod:`mtdata.check.dataset`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mtdata.check.polygons import polygon_defects
from mtdata.check.rules import finding
from mtdata.errors import Finding, InputError, Severity
from mtdata.formats.yolo.rows import LabelLayout, ParsedLabels, RowProblem, YoloRow, parse_label_text, read_label_text
from mtdata.image_header import (
    MAX_IMAGE_PIXELS,
    ImageHeader,
    ImageTooLarge,
    check_pixels,
    header_of,
    may_have_exif,
    quick_stored_wh,
    too_large_reason,
)
from mtdata.input_files import MAX_IMAGE_BYTES, InputFileError, read_input_file

MIN_IMAGE_SIDE = 10  # ultralytics' check_image rejects images under 10 pixels on a side

# RowProblem.kind (mtdata.formats.yolo.rows) -> rule id (mtdata.check.rules)
RULE_OF_KIND = {
    "non_numeric": "row_non_numeric",
    "class_not_integer": "row_class_not_integer",
    "class_out_of_range": "row_class_out_of_range",
    "not_finite": "row_not_finite",
    "wrong_count": "row_wrong_count",
    "too_few_points": "row_too_few_points",
    "out_of_bounds": "coord_out_of_bounds",
    "kpt_out_of_bounds": "kpt_out_of_image",
    "bad_visibility": "kpt_bad_visibility",
    "zero_area": "zero_area",
    "self_intersecting": "polygon_self_intersecting",
}


@dataclass
class ImageCheck:
    """What :func:`verify_image` learned about one image.

    Attributes:
        resolution_wh: (width, height) in pixels as the image loads (EXIF orientation applied,
            as ``cv2.imread`` does), or None when it cannot be decoded.
        findings: image_* findings; errors mean the trainer drops the image.
        digest: hex content hash (blake2b-128 of the file bytes) when asked for, else None.
    """

    resolution_wh: tuple[int, int] | None
    findings: list[Finding] = field(default_factory=list)
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


def verify_image(path: str | Path, digest: bool = False) -> ImageCheck:
    """Read and fully decode one image (not just its header) and read its EXIF orientation.

    The decoder is the trainer's: OpenCV's ``imdecode`` (ultralytics' ``imread``), which applies
    the EXIF orientation and refuses truncated data. When OpenCV fails, Pillow tells why (unknown
    format, bad header, truncated data). The header is read first: an image over
    :data:`mtdata.image_header.MAX_IMAGE_PIXELS` is never decoded (``image_too_large``).

    Returns:
        ``ImageCheck``: ``resolution_wh`` as the image loads (EXIF applied), image_* findings
        (``ok`` is False on any error: the trainer drops the image), and the digest if asked.

    Args:
        path: image file.
        digest: also hash the file's bytes (``mtdata check`` uses it to find leakage).
    """
    try:
        data = read_input_file(path, MAX_IMAGE_BYTES, "image")
    except FileNotFoundError as e:
        return ImageCheck(None, [finding("image_unreadable", path, None, f"cannot read the file: {e.strerror or e}")])
    except InputFileError as e:
        rule = "image_too_large" if "over the limit" in e.reason else "image_unreadable"
        return ImageCheck(None, [finding(rule, path, None, e.reason)])
    hexdigest = hashlib.blake2b(data, digest_size=16).hexdigest() if digest else None
    if not data:
        return ImageCheck(None, [finding("image_zero_size", path, None, "the file is empty (0 bytes)")], hexdigest)
    exif = may_have_exif(data)
    quick = None if exif else quick_stored_wh(data)  # most images: no Pillow before the decoder
    try:
        if quick is not None:
            check_pixels(*quick, path)
            header = ImageHeader(quick)
        else:
            header = header_of(data, path, exif=exif)
    except ImageTooLarge as e:
        return ImageCheck(None, [finding("image_too_large", path, None, e.reason)], hexdigest)
    except InputError:  # Pillow cannot read the header: OpenCV decides, Pillow explains if it fails too
        header = None
    # Grayscale output still entropy-decodes every byte of the pixel data (where truncation and
    # corruption show) and applies the EXIF orientation; it skips only the colour conversion.
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        return ImageCheck(None, [_why_undecodable(path, data)], hexdigest)
    height, width = pixels.shape[:2]
    if width * height > MAX_IMAGE_PIXELS:  # a format only OpenCV reads: measured after decoding
        return ImageCheck(None, [finding("image_too_large", path, None, too_large_reason(width, height))], hexdigest)
    findings = []
    orientation = header.orientation if header is not None else 1
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        findings.append(finding(
            "image_exif_rotated", path, None,
            f"EXIF orientation {orientation}: the image loads rotated/flipped as {width}x{height}; labels must match that view",
        ))
    if min(width, height) < MIN_IMAGE_SIDE:
        findings.append(finding("image_too_small", path, None, f"the image is {width}x{height}, under {MIN_IMAGE_SIDE} pixels on a side"))
    return ImageCheck((width, height), findings, hexdigest)


def _why_undecodable(path: str | Path, data: bytes) -> Finding:
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, ImportError):
        # ImportError: ultralytics replaces Image.open with one that asks for pi-heif on unknown data
        return finding("image_unreadable", path, None, f"not an image format that can be decoded ({len(data)} bytes)")
    except (OSError, SyntaxError, ValueError) as e:
        return finding("image_unreadable", path, None, f"the image header cannot be read: {e}")
    if 0 in image.size:
        return finding("image_zero_size", path, None, f"the image is {image.size[0]}x{image.size[1]} pixels")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        return finding("image_corrupt", path, None, f"decoding failed ({image.format}): {e}")
    return finding("image_corrupt", path, None, f"OpenCV, which the trainer reads images with, cannot decode this {image.format} file")


def rule_of_problem(problem: RowProblem) -> str:
    """The rule id of a row that failed to parse: its kind's (``RULE_OF_KIND``), ``row_invalid`` for an unknown kind."""
    return RULE_OF_KIND.get(problem.kind, "row_invalid")


def row_key(row: YoloRow) -> tuple:
    """A hashable key of a row's values: equal keys are duplicate rows."""
    parts = (row.polygon_xyn, row.box_cxcywhn, row.keypoints_xyn)
    return (row.class_id, *(None if a is None else a.tobytes() for a in parts))


def duplicate_rows(parsed: ParsedLabels) -> list[tuple[int, int]]:
    """(index, index of the first equal row) for every row that repeats an earlier one."""
    first: dict[tuple, int] = {}
    out = []
    for i, row in enumerate(parsed.rows):
        j = first.setdefault(row_key(row), i)
        if j != i:
            out.append((i, j))
    return out


def _drop_bad_polygons(parsed: list[ParsedLabels]) -> list[list]:
    """Move rows whose polygon has zero area or crosses itself (:mod:`mtdata.check.polygons`) from
    ``rows`` to ``problems``, in place; returns each file's remaining rows' shapely geometries
    (None for rows without a polygon). One shapely pass over the rows of every file."""
    where = [(f, i) for f, p in enumerate(parsed) for i, row in enumerate(p.rows) if row.polygon_xyn is not None]
    defects, geometries = polygon_defects([parsed[f].rows[i].polygon_xyn for f, i in where])
    shapes = [[None] * len(p.rows) for p in parsed]
    dropped: dict[int, set[int]] = {}
    for (f, i), defect, geometry in zip(where, defects, geometries):
        shapes[f][i] = geometry
        if defect is not None:
            kind = "zero_area" if defect[0] == "zero_area" else "self_intersecting"
            parsed[f].problems.append(RowProblem(kind, defect[1], line=parsed[f].lines[i]))
            dropped.setdefault(f, set()).add(i)
    for f, gone in dropped.items():
        p = parsed[f]
        keep = [i for i in range(len(p.rows)) if i not in gone]
        p.rows, p.lines = [p.rows[i] for i in keep], [p.lines[i] for i in keep]
        p.problems.sort(key=lambda problem: problem.line)
        shapes[f] = [shapes[f][i] for i in keep]
    return shapes


def verify_label_texts(texts: list[tuple[str, str | Path]], layout: LabelLayout) -> list[tuple[ParsedLabels, list[Finding], list]]:
    """Parse and verify many label texts at once (see :func:`verify_label_text`).

    Args:
        texts: (text, file) of each label file.

    Returns:
        per file: (usable rows with their lines and the problems of the others, error findings
        at their lines, the shapely geometry of each usable row's polygon or None).
    """
    parsed = [parse_label_text(text, layout, file) for text, file in texts]
    shapes = _drop_bad_polygons(parsed)
    out = []
    for p, s, (_, file) in zip(parsed, shapes, texts):
        for problem in p.problems:
            problem.file = str(file)  # the geometry problems too
        findings = [finding(rule_of_problem(problem), file, problem.line, problem.message) for problem in p.problems]
        for i, j in duplicate_rows(p):
            findings.append(finding("row_duplicate", file, p.lines[i], f"repeats line {p.lines[j]}"))
        out.append((p, findings, s))
    return out


def verify_label_text(text: str, layout: LabelLayout, file: str | Path) -> tuple[ParsedLabels, list[Finding]]:
    """Parse label text; every unusable row and every duplicate row gives an error finding at its line.

    Unusable: a row that does not parse (:func:`mtdata.formats.yolo.rows.parse_label_text`), or whose
    polygon has zero area or crosses itself (:func:`mtdata.check.polygons.polygon_defects`).
    Those rows are not in ``rows``; a repeated row is (:func:`duplicate_rows` names it).
    """
    parsed, findings, _ = verify_label_texts([(text, file)], layout)[0]
    return parsed, findings


def verify_label_file(path: str | Path, layout: LabelLayout) -> tuple[ParsedLabels, list[Finding]]:
    """Read (UTF-8, BOM allowed, as ultralytics reads) and verify one label file.

    Returns:
        (parsed rows with their lines, findings); an unreadable file gives no rows and one
        ``label_unreadable`` finding.
    """
    path = Path(path)
    try:
        text = read_label_text(path)
    except FileNotFoundError as e:
        return ParsedLabels([], [], []), [finding("label_unreadable", path, None, f"cannot read: {e.strerror or e}")]
    except InputFileError as e:
        return ParsedLabels([], [], []), [finding("label_unreadable", path, None, e.reason)]
    return verify_label_text(text, layout, path)

