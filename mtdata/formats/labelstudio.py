"""Label Studio JSON exports (``JSON`` and ``JSON-MIN``) -> :class:`~mtdata.formats.tool_objects.ToolImage`.

``JSON``: ``[{"data": {"image": ...}, "annotations": [{"result": [{"id", "type", "value", "original_width",
"original_height", "parentID"}]}]}]``. ``JSON-MIN``: ``[{"image": ..., "<control name>": [{**value,
"original_width", "original_height"}]}]``. Coordinates are percent of the image (x of its width, y of its
height); brush masks are Label Studio's RLE of the RGBA image (:func:`decode_brush_rle`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from mtdata.errors import InputError
from mtdata.formats.coco.checks import MAX_IMAGE_SIDE, describe, is_int
from mtdata.formats.labelme import load_json
from mtdata.formats.tool_objects import (
    ToolImage,
    ToolObject,
    ToolPoint,
    ToolProblem,
    ellipse_xy,
    finite_number,
    mask_object,
    polygon_object,
    rectangle_xy,
    split_label,
)
from mtdata.limits import MAX_IMAGE_PIXELS

MAX_EXPORT_BYTES = 2 << 30  # one project's export (brush masks make them large)
REGION_TYPES = ("polygonlabels", "rectanglelabels", "brushlabels", "keypointlabels", "ellipselabels")
# Results that are no region of the image (a class of the whole task, text, a relation): not shapes, passed over.
NOT_REGIONS = frozenset({"choices", "textarea", "rating", "number", "datetime", "taxonomy", "relation", "pairwise", "ranker", "labels"})
_META = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "drafts", "predictions"})


def is_labelstudio(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(t, dict) for t in data)


def read_labelstudio(path: str | Path) -> list[ToolImage]:
    """The tasks of an export, one ToolImage each (the first annotation of a task that was not cancelled).

    Raises:
        InputError: not a list of tasks, or a task that names no image.
    """
    path = Path(path)
    data = load_json(path, MAX_EXPORT_BYTES, "Label Studio export")
    if not is_labelstudio(data):
        raise InputError(f"not a Label Studio export: expected a list of tasks, found {describe(data)}", file=path)
    images = []
    for t, task in enumerate(data):
        where = f"{path.name}[{t}]"
        others = 0
        if "data" in task or "annotations" in task:
            ref, results, others = _full_task(task, where, path)
        else:
            ref, results = _min_task(task, where, path)
        images.append(_task_image(path, where, ref, results))
        images[-1].other_annotations = others
    return images


def _full_task(task: dict, where: str, path: Path) -> tuple[str, list, int]:
    """(the image, the results of the first annotation not cancelled, how many more were not cancelled)."""
    data, annotations = task.get("data"), task.get("annotations", [])
    if not isinstance(data, dict) or not isinstance(annotations, list):
        raise InputError(f"{where}: a task holds 'data' (an object) and 'annotations' (a list), found "
                         f"{describe(data)} and {describe(annotations)}", file=path)
    kept = [i for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")]
    results = annotations[kept[0]].get("result", []) if kept else []
    if not isinstance(results, list):
        raise InputError(f"{where}: annotations[{kept[0]}].result must be a list, found {describe(results)}", file=path)
    return _image_ref(data, where, path), results, max(len(kept) - 1, 0)


def _min_task(task: dict, where: str, path: Path) -> tuple[str, list]:
    """JSON-MIN: each region list under its control's name, each region its value plus the image size."""
    results, data = [], {}
    for key, value in task.items():
        regions = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
        if key not in _META and regions and all(isinstance(r, dict) for r in regions):
            labelled = [r for r in regions if any(k in r for k in REGION_TYPES)]
            for region in labelled:
                kind = next(k for k in REGION_TYPES if k in region)
                results.append({"type": kind, "value": region, "original_width": region.get("original_width"),
                                "original_height": region.get("original_height")})
        elif key not in _META:
            data[key] = value
    return _image_ref(data, where, path), results


def _image_ref(data: dict, where: str, path: Path) -> str:
    """The task's image: ``data.image``, else its one text field that names a file."""
    ref = data.get("image")
    if not isinstance(ref, str):
        texts = [v for v in data.values() if isinstance(v, str) and ("/" in v or "." in v)]
        ref = texts[0] if len(texts) == 1 else None
    if not ref:
        raise InputError(f"{where}: the task names no image (expected data.image, a path or URL)", file=path)
    return ref


def image_file_name(ref: str) -> str:
    """The file name of a Label Studio image reference: ``/data/upload/3/1a2b3c4d-a.jpg``, ``s3://b/x/a.jpg``,
    ``/data/local-files/?d=x/a.jpg``, ``https://host/a.jpg?sig=...`` -> the last part of the path."""
    parsed = urlparse(ref)
    local = parse_qs(parsed.query).get("d")
    where = local[0] if local else unquote(parsed.path)
    return where.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _size(result: dict) -> tuple[int, int] | None:
    w, h = result.get("original_width"), result.get("original_height")
    if is_int(w) and is_int(h) and 0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE:
        return w, h
    return None


def _task_image(path: Path, where: str, ref: str, results: list) -> ToolImage:
    sizes = [s for s in (_size(r) for r in results if isinstance(r, dict)) if s is not None]
    width, height = sizes[0] if sizes else (1, 1)  # a task without regions: an empty label file, no size needed
    file_name = image_file_name(ref) or f"{path.stem}_{where.rsplit('[', 1)[-1].rstrip(']')}.jpg"
    image = ToolImage(path, where, file_name, ref, width, height, shapes_key="result")
    point_of: dict[str, int] = {}  # result id -> index into image.points
    for i, result in enumerate(results):
        found = _result(i, result, width, height)
        if found is None:
            continue
        if isinstance(found, ToolPoint):
            if isinstance(result.get("id"), str):
                point_of.setdefault(result["id"], len(image.points))
            image.points.append(found)
        elif isinstance(found, ToolObject):
            image.objects.append(found)
        else:
            image.problems.append(found)
    _join_related(image, results, point_of)
    return image


def _join_related(image: ToolImage, results: list, point_of: dict[str, int]) -> None:
    """A ``relation`` result between a keypoint without parentID and a region makes the region its parent."""
    regions = {o.group for o in image.objects if o.group is not None}
    for r in results:
        if not (isinstance(r, dict) and r.get("type") == "relation"):
            continue
        ends = (r.get("from_id"), r.get("to_id"))
        for point_id, region_id in (ends, ends[::-1]):
            at = point_of.get(point_id) if isinstance(point_id, str) else None
            if at is not None and image.points[at].group is None and region_id in regions:
                image.points[at] = replace(image.points[at], group=region_id)


def _result(i: int, result: Any, width: int, height: int) -> ToolObject | ToolPoint | ToolProblem | None:
    """One result as an object, a point, a problem, or None (not a region: choices, text, relations)."""
    if not isinstance(result, dict):
        return ToolProblem(i, "", "bad_polygon", f"result is not an object: {describe(result)}")
    kind, value = result.get("type"), result.get("value")
    if (isinstance(kind, str) and kind in NOT_REGIONS) or (kind is None and not isinstance(value, dict)):
        return None
    if not isinstance(value, dict):
        return ToolProblem(i, "", "bad_polygon", f"value must be an object, found {describe(value)}")
    labels = value.get(kind) if isinstance(kind, str) else None
    label = labels[0] if isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str) else None
    if kind not in REGION_TYPES:
        return ToolProblem(i, str(label or ""), "bad_polygon", f"type {describe(kind)} is none of {', '.join(REGION_TYPES)}: left out")
    if label is None or not label.strip():
        return ToolProblem(i, "", "bad_polygon", f"{kind} must name one label, found {describe(labels)}")
    size = _size(result)
    if size is None:
        return ToolProblem(i, label, "bad_polygon", "original_width and original_height must be positive integers: percent "
                           f"coordinates cannot be scaled without them, found {describe(result.get('original_width'))} x "
                           f"{describe(result.get('original_height'))}")
    if size != (width, height):
        return ToolProblem(i, label, "bad_polygon", f"its image is {size[0]} x {size[1]}, another result's {width} x {height}")
    region_id = result.get("id") if isinstance(result.get("id"), str) else None
    if kind == "brushlabels":
        return _brush(i, label, value, width, height, region_id)
    return _geometry(i, label, kind, value, width, height, region_id, result.get("parentID"))


def _numbers(value: dict, keys: tuple[str, ...]) -> list[float] | None:
    found = [value.get(k, 0.0 if k == "rotation" else None) for k in keys]
    if not all(finite_number(v) for v in found):
        return None
    return [float(v) for v in found]


def _geometry(i: int, label: str, kind: str, value: dict, width: int, height: int, region_id: Any,
              parent: Any) -> ToolObject | ToolPoint | ToolProblem:
    scale = np.array([width / 100.0, height / 100.0])
    if kind == "polygonlabels":
        points = value.get("points")
        ok = isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 and all(finite_number(v) for v in p)
                                              for p in points)
        xy = np.array(points, dtype=np.float64).reshape(-1, 2) if ok else None
        if xy is None:
            return ToolProblem(i, label, "bad_polygon", f"points must be [[x, y], ...] of finite numbers, found {describe(points)}")
        if len(xy) < 3:
            return ToolProblem(i, label, "bad_polygon", f"polygon needs at least 3 points, found {len(xy)}")
        return polygon_object(i, label, xy * scale, region_id)
    if kind == "keypointlabels":
        xy = _numbers(value, ("x", "y"))
        if xy is None:
            return ToolProblem(i, label, "bad_keypoints", f"keypoint needs finite x and y, found {describe(value)}")
        if not (0 <= xy[0] <= 100 and 0 <= xy[1] <= 100):
            return ToolProblem(i, label, "out_of_image", f"point ({xy[0]:g}%, {xy[1]:g}%) is outside the image")
        cls, name = split_label(label)
        return ToolPoint(i, label, name, cls, np.array(xy) * scale, parent if isinstance(parent, str) else None)
    keys = ("x", "y", "radiusX", "radiusY", "rotation") if kind == "ellipselabels" else ("x", "y", "width", "height", "rotation")
    numbers = _numbers(value, keys)
    if numbers is None or numbers[2] <= 0 or numbers[3] <= 0:
        return ToolProblem(i, label, "bad_polygon", f"{kind} needs finite {', '.join(keys[:4])} (sizes > 0), found {describe(value)}")
    x, y, a, b, rotation = numbers
    if kind == "ellipselabels":
        ring = ellipse_xy((0, 0), a * scale[0], b * scale[1], rotation) + (x * scale[0], y * scale[1])
        return polygon_object(i, label, ring, region_id)
    corners = rectangle_xy((0, 0), (a * scale[0], b * scale[1]))  # rotated about its top-left corner, as Label Studio does
    t = np.deg2rad(rotation)
    turned = corners @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) + (x * scale[0], y * scale[1])
    return polygon_object(i, label, turned, region_id)


def _brush(i: int, label: str, value: dict, width: int, height: int, region_id: Any) -> ToolObject | ToolProblem:
    rle = value.get("rle")
    if value.get("format", "rle") != "rle" or not isinstance(rle, list) or not rle:
        return ToolProblem(i, label, "bad_rle", f"brush must hold format 'rle' and an rle list, found {describe(value)}")
    if width * height > MAX_IMAGE_PIXELS:
        return ToolProblem(i, label, "bad_rle", f"a mask of a {width} x {height} image is over the {MAX_IMAGE_PIXELS:,} pixels allowed")
    try:
        rgba = decode_brush_rle(rle, width * height * 4)
    except ValueError as e:
        return ToolProblem(i, label, "bad_rle", f"brush rle: {e}")
    mask = rgba.reshape(height, width, 4)[:, :, 3] >= 128  # the painted pixels: alpha, anti-aliased edges halfway
    found = mask_object(i, label, mask, 0, 0, width, height, region_id)
    return found if found is not None else ToolProblem(i, label, "bad_rle", "brush paints no pixel")


def decode_brush_rle(rle: list, expected: int) -> np.ndarray:
    """Label Studio's brush RLE (its ``value.rle``) -> the (expected,) uint8 RGBA values of the image, row-major.

    The encoding is thi.ng/rle-pack's, which Label Studio's frontend uses (``LabelStudio/web/.../utils/rle``;
    label-studio-converter ``brush.decode_rle`` decodes it): a bit stream, most significant bit first, of a
    32-bit count of values, 5 bits of word size - 1, four 4-bit run-length widths - 1, then runs: 1 bit
    (1: one word repeated, 0: literal words), 2 bits choosing a width, that many bits of run length - 1,
    then the repeated word or the literal words.

    Raises:
        ValueError: bytes that are not 0..255, a count other than ``expected``, or a stream that ends early
            or runs past the count.
    """
    if not all(type(v) is int and 0 <= v <= 255 for v in rle):
        raise ValueError("values must be bytes (integers 0..255)")
    data = bytes(rle) + b"\0\0\0\0\0"  # zero padding: a field read near the end never indexes past it
    size = len(rle) * 8
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))  # for literal runs, read as a block
    weights = 1 << np.arange(7, -1, -1, dtype=np.int64)
    at = 0

    def take(n: int) -> int:
        """The next n <= 32 bits as an integer (int.from_bytes: a run costs a few of these, no numpy call)."""
        nonlocal at
        if at + n > size:
            raise ValueError("the stream ends before its last run")
        first = at >> 3
        chunk = int.from_bytes(data[first:first + 5], "big")  # 40 bits hold any 32 that start in the first byte
        at += n
        return (chunk >> (40 - (at - 8 * first))) & ((1 << n) - 1)

    count = take(32)
    if count != expected:
        raise ValueError(f"holds {count} values, its image's RGBA needs {expected}")
    word = take(5) + 1
    if word > 8:
        raise ValueError(f"words of {word} bits cannot be the bytes of an RGBA image")
    widths = [take(4) + 1 for _ in range(4)]
    out = np.zeros(count, dtype=np.uint8)
    done = 0
    while done < count:
        repeat = take(1)
        run = take(widths[take(2)]) + 1
        if done + run > count:
            raise ValueError(f"a run of {run} goes past the {count} values")
        if repeat:
            out[done:done + run] = take(word)
        else:
            if at + run * word > size:
                raise ValueError("the stream ends before its last run")
            words = bits[at:at + run * word].reshape(run, word) @ weights[8 - word:]
            at += run * word
            out[done:done + run] = words
        done += run
    return out
