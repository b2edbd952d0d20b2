"""Labelme JSON (one file per image) -> :class:`~mtdata.formats.tool_objects.ToolImage`.

A Labelme file: ``{"shapes": [{"label", "points": [[x, y], ...], "shape_type", "group_id", "mask"}],
"imagePath", "imageData", "imageWidth", "imageHeight"}``, pixel coordinates. ``polygon``, ``rectangle``
(two corners), ``circle`` (centre, a point on the circle) and ``mask`` (two corners and a base64 PNG of
the crop between them) are objects; ``point`` shapes are keypoints.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mtdata.errors import InputError, MtdataError
from mtdata.formats.coco.checks import MAX_IMAGE_SIDE, describe, is_int
from mtdata.formats.tool_objects import (
    ToolImage,
    ToolObject,
    ToolPoint,
    ToolProblem,
    ellipse_xy,
    finite_number,
    mask_object,
    merge_objects,
    polygon_object,
    rectangle_xy,
    split_label,
)
from mtdata.input_files import read_input_file
from mtdata.limits import MAX_IMAGE_PIXELS

MAX_LABELME_BYTES = 512 << 20  # one image's file, its embedded image included
SHAPE_TYPES = ("polygon", "rectangle", "circle", "mask", "point")


def load_json(path: Path, limit: int, what: str) -> Any:
    """A JSON file of at most ``limit`` bytes, parsed; file-level problems as one-line :class:`InputError`."""
    data = read_input_file(path, limit, what)
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON (truncated?) at line {e.lineno} column {e.colno}: {e.msg}", file=path) from e
    except UnicodeDecodeError as e:
        raise InputError("not a UTF-8 JSON file", file=path) from e
    except RecursionError as e:
        raise InputError(f"JSON nested too deeply to be a {what}", file=path) from e


def is_labelme(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("shapes"), list) and ("imagePath" in data or "imageData" in data)


def read_labelme(path: str | Path) -> ToolImage:
    """One Labelme file as a ToolImage (shapes that cannot be objects or points are listed in ``problems``).

    Raises:
        InputError: not a Labelme file, no usable image size, no image named and none embedded.
    """
    path = Path(path)
    data = load_json(path, MAX_LABELME_BYTES, "Labelme file")
    if not is_labelme(data):
        found = f"an object with keys {describe(sorted(data))}" if isinstance(data, dict) else type(data).__name__
        raise InputError(f"not a Labelme file: expected an object with 'shapes' and 'imagePath', found {found}", file=path)
    width, height = data.get("imageWidth"), data.get("imageHeight")
    if not (is_int(width) and is_int(height) and 0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise InputError(f"imageWidth and imageHeight must be integers from 1 to {MAX_IMAGE_SIDE}, found "
                         f"{describe(width)} x {describe(height)}", file=path)
    ref, embedded = data.get("imagePath"), data.get("imageData")
    if ref is not None and not isinstance(ref, str):
        raise InputError(f"imagePath must be a path, found {describe(ref)}", file=path)
    if embedded is not None and not isinstance(embedded, str):
        raise InputError(f"imageData must be base64 text or null, found {describe(embedded)}", file=path)
    ref = (ref or "").replace("\\", "/")  # Labelme on Windows writes backslashes
    file_name = ref.rsplit("/", 1)[-1]
    if not file_name:
        if not embedded:
            raise InputError("imagePath is empty and there is no imageData: the file names no image", file=path)
        file_name = path.stem + (".jpg" if embedded.startswith("/9j/") else ".png")
    image = ToolImage(path, path.name, file_name, ref, width, height, embedded=bool(embedded))
    objects = []
    for i, shape in enumerate(data["shapes"]):
        found = _shape(i, shape, width, height)
        if isinstance(found, ToolPoint):
            image.points.append(found)
        elif isinstance(found, ToolObject):
            objects.append(found)
        else:
            image.problems.append(found)
    image.objects = merge_objects(objects, width, height)
    return image


def _points(value: Any) -> np.ndarray | None:
    """[[x, y], ...] as a finite (P, 2) array, or None."""
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        return None
    if not all(finite_number(v) for p in value for v in p):
        return None
    return np.array(value, dtype=np.float64).reshape(-1, 2)


def _shape(i: int, shape: Any, width: int, height: int) -> ToolObject | ToolPoint | ToolProblem:
    if not isinstance(shape, dict):
        return ToolProblem(i, "", "bad_polygon", f"shape is not an object: {describe(shape)}")
    label = shape.get("label")
    if not isinstance(label, str) or not label.strip():
        return ToolProblem(i, str(label), "bad_polygon", f"label must be a name, found {describe(label)}")
    kind = shape.get("shape_type") or "polygon"
    group = shape.get("group_id")
    group = group if is_int(group) else None
    xy = _points(shape.get("points"))
    if kind not in SHAPE_TYPES:
        return ToolProblem(i, label, "bad_polygon", f"shape_type {describe(kind)} is none of {', '.join(SHAPE_TYPES)}: left out")
    if xy is None:
        return ToolProblem(i, label, "bad_polygon", f"points must be [[x, y], ...] of finite numbers, found {describe(shape.get('points'))}")
    if kind == "point":
        if len(xy) != 1:
            return ToolProblem(i, label, "bad_keypoints", f"a point shape holds one point, found {len(xy)}")
        x, y = xy[0]
        if not (0 <= x <= width and 0 <= y <= height):
            return ToolProblem(i, label, "out_of_image", f"point ({x:g}, {y:g}) is outside the {width} x {height} image")
        cls, name = split_label(label)
        return ToolPoint(i, label, name, cls, xy[0], group)
    if kind == "polygon":
        if len(xy) < 3:
            return ToolProblem(i, label, "bad_polygon", f"polygon needs at least 3 points, found {len(xy)}")
        return polygon_object(i, label, xy, group)
    if len(xy) != 2:
        return ToolProblem(i, label, "bad_polygon", f"a {kind} shape holds 2 points, found {len(xy)}")
    if kind == "rectangle":
        return polygon_object(i, label, rectangle_xy(xy[0], xy[1]), group)
    if kind == "circle":
        radius = float(np.hypot(*(xy[1] - xy[0])))
        if radius <= 0:
            return ToolProblem(i, label, "bad_polygon", "circle has radius 0")
        return polygon_object(i, label, ellipse_xy(xy[0], radius, radius), group)
    return _mask_shape(i, label, xy, shape.get("mask"), width, height, group)


def _mask_shape(i: int, label: str, xy: np.ndarray, encoded: Any, width: int, height: int, group: Any) -> ToolObject | ToolProblem:
    """A ``mask`` shape: the PNG crop in ``encoded`` placed at the top-left corner of ``xy``."""
    from PIL import Image, UnidentifiedImageError

    from mtdata.image_header import header_of

    if width * height > MAX_IMAGE_PIXELS:
        return ToolProblem(i, label, "bad_rle", f"a mask of a {width} x {height} image is over the {MAX_IMAGE_PIXELS:,} pixels allowed")
    if not isinstance(encoded, str):
        return ToolProblem(i, label, "bad_rle", f"mask must be a base64 PNG, found {describe(encoded)}")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return ToolProblem(i, label, "bad_rle", "mask is not base64 text")
    try:
        header = header_of(data, exif=False)
    except MtdataError as e:
        return ToolProblem(i, label, "bad_rle", f"mask: {e.message}")
    crop_wh = header.stored_wh if header is not None else (0, 0)
    if header is None or crop_wh[0] > width + 1 or crop_wh[1] > height + 1:
        size = "not an image" if header is None else f"{crop_wh[0]} x {crop_wh[1]}"
        return ToolProblem(i, label, "bad_rle", f"mask must be an image of at most the {width} x {height} image, found {size}")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            crop = np.asarray(picture.convert("L")) > 0
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return ToolProblem(i, label, "bad_rle", f"mask cannot be decoded: {e}")
    x0, y0 = (int(np.floor(v)) for v in xy.min(axis=0))
    found = mask_object(i, label, crop, x0, y0, width, height, group)
    return found if found is not None else ToolProblem(i, label, "bad_rle", "mask sets no pixel inside the image")


def embedded_image(path: Path) -> bytes:
    """The image a Labelme file embeds (``imageData``), decoded; :class:`InputError` when it is not an image."""
    from mtdata.image_header import header_of

    data = load_json(path, MAX_LABELME_BYTES, "Labelme file")
    try:
        raw = base64.b64decode(data["imageData"], validate=True)
    except (binascii.Error, ValueError, TypeError, KeyError) as e:
        raise InputError("imageData is not base64 text", file=path) from e
    if header_of(raw, path, exif=False) is None:
        raise InputError("imageData does not hold an image (PNG, JPEG, ...)", file=path)
    return raw
