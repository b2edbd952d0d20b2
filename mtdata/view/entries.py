"""The images of a split read for ``mtdata view``: header metadata and label rows, one ``ImageEntry`` each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtdata.errors import InputError
from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.formats.yolo.rows import RowProblem, read_label_file, rows_to_labels
from mtdata.formats.yolo.splits import split_entries
from mtdata.image_header import read_image_header
from mtdata.input_files import InputFileError
from mtdata.records import ImageLabels


@dataclass
class ImageEntry:
    """One image of a split with its labels, ready to become a sample.

    Attributes:
        split: split key (train, val, test).
        image: image path.
        label_file: its label file, or None when it has none (background image).
        resolution_wh: image (width, height) after EXIF rotation, or None when unreadable.
        metadata: ``fo.ImageMetadata`` fields read from the header, or None when unreadable.
        labels: objects in pixels; normalized ((1, 1) resolution) when the image is unreadable.
        lines: 1-based line of each object in ``label_file``.
        problems: rows that could not be parsed.
        image_error: why the image could not be read, or None.
    """

    split: str
    image: Path
    label_file: Path | None
    resolution_wh: tuple[int, int] | None
    metadata: dict | None
    labels: ImageLabels
    lines: list[int] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    image_error: str | None = None


def image_info(path: Path) -> dict:
    """``ImageMetadata`` fields from the header: width and height as seen after EXIF rotation
    (as YOLO labels are), channels, file size and MIME type."""
    header = read_image_header(path)  # the one size limit of every command (mtdata.image_header)
    width, height = header.resolution_wh
    return {"size_bytes": path.stat().st_size, "mime_type": header.mime_type, "width": width, "height": height,
            "num_channels": header.bands}


def _split_images(config: DatasetConfig, split: str) -> list[tuple[Path, Path]]:
    """(image, label file) pairs of a split, sorted by image path; label files may not exist."""
    pairs = []
    for entry in split_entries(config, split):
        if entry.kind == "missing":
            raise InputError(f"split '{split}' folder not found: {entry.path}", file=config.file)
        pairs += [(Path(image), Path(label)) for image, label in zip(entry.images, entry.labels)]
    return sorted(pairs)


def iter_split(config: DatasetConfig, split: str, pairs: list[tuple[Path, Path]] | None = None) -> Iterator[ImageEntry]:
    """Read every image header and label file of one split (``pairs``: its (image, label file) list, if known)."""
    layout = config.layout()
    k = config.num_keypoints
    for image, label_file in _split_images(config, split) if pairs is None else pairs:
        try:
            metadata, error = image_info(image), None
            resolution = (metadata["width"], metadata["height"])
        except (OSError, InputError) as e:
            metadata, resolution, error = None, None, e.message if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        if not label_file.is_file():
            yield ImageEntry(split, image, None, resolution, metadata, ImageLabels.empty(resolution or (1, 1), k), image_error=error)
            continue
        try:
            parsed = read_label_file(label_file, layout)
        except InputFileError as e:
            raise InputError(f"cannot read label file: {e.reason}", file=label_file) from e
        except OSError as e:
            raise InputError(f"cannot read label file: {e.strerror or e}", file=label_file) from e
        labels = rows_to_labels(parsed.rows, resolution or (1, 1), k)
        yield ImageEntry(split, image, label_file, resolution, metadata, labels, parsed.lines, parsed.problems, error)
