"""The size of an image from its header, and the one limit on how large an image may be.

A 20,000 x 20,000 PNG of one colour is a few hundred kilobytes and decodes to 1.2 GB: a
decompression bomb. Every command that opens an image (check, the trainer's scan, export,
view) reads its header here first and refuses images over MAX_IMAGE_PIXELS, with the same
one-line reason, before anything decodes them. Headers are read with Pillow (lazily: only the
header); a format Pillow cannot read but OpenCV can is decoded by OpenCV, whose own limit is
2^30 pixels, and measured against the same limit afterwards (:func:`check_pixels`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from mtdata.errors import InputError
from mtdata.input_files import MAX_IMAGE_BYTES, open_input_file
from mtdata.limits import MAX_IMAGE_PIXELS

_EXIF_ORIENTATION = 0x0112  # 274; values 2..8 flip or rotate, 5..8 swap width and height


class ImageTooLarge(InputError):
    """An image over MAX_IMAGE_PIXELS; ``reason`` is the message without the file name."""

    def __init__(self, reason: str, *, file: str | Path | None = None):
        super().__init__(reason, file=file)
        self.reason = reason


def too_large_reason(width: int, height: int) -> str:
    return (f"the image is {width} x {height} = {width * height:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
            "(a decompression bomb?): not decoded")


def check_pixels(width: int, height: int, file: str | Path | None = None) -> None:
    """Raise :class:`ImageTooLarge` when ``width x height`` is over MAX_IMAGE_PIXELS."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(too_large_reason(width, height), file=file)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says.

    Attributes:
        stored_wh: (width, height) as stored.
        orientation: EXIF orientation (1: as stored; 5..8 swap width and height when loaded).
        format: Pillow's format name ("JPEG", "PNG", ...).
        bands: channels ("RGB" -> 3).
        mime_type: e.g. "image/jpeg", or None.
    """

    stored_wh: tuple[int, int]
    orientation: int = 1
    format: str | None = None
    bands: int = 3
    mime_type: str | None = None

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(width, height) as the image loads (EXIF orientations 5..8 swap the stored sides, as cv2.imread does)."""
        w, h = self.stored_wh
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


_HEAD_BYTES = 1 << 20  # where a frame header may be, after EXIF and ICC segments of 64 KB each
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0..SOF15 but DHT, JPG, DAC
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quick_stored_wh(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored in a PNG's IHDR or a JPEG's frame header, or None for anything else.

    Speed plumbing for ``mtdata check`` (which reads every image): Pillow's header reader costs
    ~31 us an image (JpegImagePlugin walks the markers in Python), ~10% of check's time per
    image; this costs ~2 us. It follows the decoders: libpng needs IHDR first; libjpeg takes the
    first frame header (SOFn) before the first scan, walking segments by their lengths. Anything
    it does not recognise returns None, and Pillow reads the header instead.
    """
    if data[:8] == _PNG_SIGNATURE:
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    if data[:2] != b"\xff\xd8":
        return None
    at, end = 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None  # not at a marker: let Pillow (and its tolerance) decide
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _JPEG_FRAME_MARKERS:
            if length < 8 or at + 9 > end:
                return None
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        if length < 2:
            return None
        at += 2 + length
    return None


def may_have_exif(data: bytes) -> bool:
    """Look for EXIF only where each format keeps it, so that Pillow parses EXIF only then.

    JPEG: an APP1 "Exif" segment before the first scan; PNG: an eXIf chunk anywhere (OpenCV, and so
    the trainer, reads one after the image data too; Pillow's ``getexif`` decodes the whole PNG to
    look there: 34-45 ms for a 1920 x 1080 image, against 0.1 ms for its header); WebP: the extended
    header's EXIF flag. Other formats (TIFF, ...): always ask Pillow.
    """
    if data[:2] == b"\xff\xd8":
        end = data.find(b"\xff\xda")
        return data.find(b"Exif", 0, end if end > 0 else len(data)) >= 0
    if data[:8] == _PNG_SIGNATURE:
        found = _png_has_exif(lambda at: data[at:at + 8])
        return data.find(b"eXIf") >= 0 if found is None else found  # damaged: any such bytes, and Pillow decides
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x08)
    return data[:2] != b"BM"  # BMP carries no EXIF


def _png_has_exif(chunk_header) -> bool | None:
    """Walk a PNG's chunks by their lengths (``chunk_header(at)``: the 8 bytes at ``at``) to an eXIf chunk or IEND;
    None when the bytes end first. ~500 steps for a 4 MB PNG: searching its bytes instead costs 6-10% of decoding it."""
    at = len(_PNG_SIGNATURE)
    while len(header := chunk_header(at)) == 8:
        kind = header[4:]
        if kind == b"eXIf":
            return True
        if kind == b"IEND":
            return False
        at += 12 + int.from_bytes(header[:4], "big")  # length, type, data, CRC
    return None


def _file_may_have_exif(source: BinaryIO, head: bytes) -> bool:
    """:func:`may_have_exif` of an open file whose first bytes are ``head``, reading on only where it must."""
    if len(head) < _HEAD_BYTES:
        return may_have_exif(head)
    if head[:2] == b"\xff\xd8":
        return may_have_exif(head) or head.find(b"\xff\xda") < 0  # no scan in the head: Pillow looks (cheap: a JPEG)
    if head[:8] != _PNG_SIGNATURE:
        return may_have_exif(head)

    def chunk_header(at: int) -> bytes:
        if at + 8 <= len(head):
            return head[at:at + 8]
        source.seek(at)
        return source.read(8)

    found = _png_has_exif(chunk_header)
    source.seek(0)
    return found is not False  # damaged or cut short: Pillow decides


def _open(source):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides, below
        return Image.open(source)


def header_of(data: bytes | BinaryIO, file: str | Path | None = None, exif: bool = True) -> ImageHeader | None:
    """The header of an image, or None when Pillow does not know the format.

    Args:
        data: the file's bytes, or the open file.
        exif: also read the EXIF orientation (where :func:`may_have_exif` finds the format keeps it).

    Raises:
        ImageTooLarge: over MAX_IMAGE_PIXELS.
        InputError: Pillow knows the format but cannot read the header.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        source, head = io.BytesIO(data), bytes(data[:_HEAD_BYTES])
        exif = exif and may_have_exif(bytes(data))
    else:
        source, head = data, data.read(_HEAD_BYTES)
        data.seek(0)
        exif = exif and _file_may_have_exif(data, head)
    quick = quick_stored_wh(head)
    if quick is not None:
        check_pixels(*quick, file)  # the reason verify_image gives
    try:
        image = _open(source)
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: refused before we see the size
        raise ImageTooLarge(f"the image is over the limit of {MAX_IMAGE_PIXELS:,} pixels ({e}): not decoded", file=file) from e
    except (UnidentifiedImageError, ImportError):
        # ImportError: ultralytics replaces Image.open with one that asks for pi-heif on unknown data
        return None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"the image header cannot be read: {e}", file=file) from e
    with image:
        width, height = image.size
        check_pixels(width, height, file)
        orientation = 1
        if exif:
            try:
                orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
            except (OSError, SyntaxError, ValueError, TypeError, EOFError):
                orientation = 1
        mime = image.get_format_mimetype() if hasattr(image, "get_format_mimetype") else None
        return ImageHeader((width, height), orientation, image.format, len(image.getbands()), mime)


def read_image_header(path: str | Path) -> ImageHeader:
    """The header of an image file (only the header is read; the file is at most MAX_IMAGE_BYTES).

    Raises:
        ImageTooLarge: over MAX_IMAGE_PIXELS.
        InputError: missing, not a regular file, over MAX_IMAGE_BYTES, not an image Pillow can read.
    """
    try:
        f = open_input_file(path, MAX_IMAGE_BYTES, "image")
    except FileNotFoundError as e:
        raise InputError("the image does not exist", file=path) from e
    with f:
        header = header_of(f, path)
    if header is None:
        raise InputError("not an image format that can be read", file=path)
    return header
