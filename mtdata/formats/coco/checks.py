"""What a COCO file must hold before anything is built from it: the bounds, and one-line words for what breaks them.

COCO files come from strangers. Every id must be an integer a 64-bit column holds, every size
read from the file (width, height, RLE counts, keypoint counts) is bounded before anything is
allocated from it, and a ``file_name`` must name a file inside the images folder that a label
file can be named after. These are pure functions of the parsed JSON values: the readers
(:mod:`mtdata.formats.coco.read`, :mod:`mtdata.formats.coco.columns`) call them and raise.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from mtdata.limits import MAX_IMAGE_PIXELS, MAX_KEYPOINTS

MAX_ID = 2**63 - 1  # ids live in int64 columns
MAX_IMAGE_SIDE = 1 << 20  # pixels of an image's width or height
MAX_MASK_PIXELS = MAX_IMAGE_PIXELS  # an RLE mask covers its image: one image-size policy (mtdata.limits)
NAME_MAX_BYTES = 255  # a file name (one path part) on Linux, macOS and Windows file systems
# A polygon point, box corner or labeled keypoint farther than this many image sides outside
# the image is not an annotation of it (1e308, a coordinate in another unit): refused, not clipped.
OUTSIDE_SIDES = 1.0
# Beyond this a value is outside any image: checked before any arithmetic, so none overflows.
OUTSIDE_CAP = (1 + OUTSIDE_SIDES) * MAX_IMAGE_SIDE


def is_int(value: Any) -> bool:
    """A JSON integer (``true`` is not one)."""
    return type(value) is int


def is_id(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_ID


def describe(value: Any, limit: int = 60) -> str:
    """A short repr of a value read from a file, for one-line messages (never raises)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deep to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def id_problem(entry: dict, key: str) -> str | None:
    """Why ``entry[key]`` is not a COCO id (None when it is one)."""
    if key not in entry:
        return f"has no {key!r}"
    value = entry[key]
    if not is_id(value):
        return f"{key!r} must be an integer from 0 to 2^63 - 1, found {describe(value)}"
    return None


def annotation_problem(entry: Any) -> str:
    """Why an entry of 'annotations' could not be read (ids, iscrowd, an object at all)."""
    if not isinstance(entry, dict):
        return f"must be an object, found {describe(entry)}"
    for key in ("id", "image_id", "category_id"):
        problem = id_problem(entry, key)
        if problem:
            return problem
    if not crowd_flag_ok(entry.get("iscrowd", 0)):
        return f"'iscrowd' must be 0 or 1, found {describe(entry['iscrowd'])}"
    return "is malformed"


def crowd_flag_ok(value: Any) -> bool:
    return type(value) in (int, bool) and value in (0, 1)


def image_problem(entry: Any) -> str | None:
    """Why an entry of 'images' cannot be used (None when it can)."""
    if not isinstance(entry, dict):
        return f"must be an object with id, file_name, width and height, found {describe(entry)}"
    problem = id_problem(entry, "id")
    if problem:
        return problem
    if not isinstance(entry.get("file_name"), str):
        return f"needs a 'file_name' string, found {describe(entry.get('file_name'))}"
    w, h = entry.get("width"), entry.get("height")
    if not (is_int(w) and is_int(h) and 0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
        return f"needs integer width and height from 1 to {MAX_IMAGE_SIDE}, found {describe(w, 30)} x {describe(h, 30)}"
    return None


def category_problem(entry: Any) -> str | None:
    """Why an entry of 'categories' cannot be used (None when it can); the skeleton is checked against K later."""
    if not isinstance(entry, dict):
        return f"must be an object with id and name, found {describe(entry)}"
    problem = id_problem(entry, "id")
    if problem:
        return problem
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return f"needs a 'name' string, found {describe(name)}"
    if _has_control(name):
        return f"'name' holds a control character: {describe(name)}"
    keypoints = entry.get("keypoints")
    if keypoints is not None:
        if not isinstance(keypoints, list) or not all(isinstance(k, str) for k in keypoints):
            return f"'keypoints' must be a list of names, found {describe(keypoints)}"
        if len(keypoints) > MAX_KEYPOINTS:
            return f"declares {len(keypoints)} keypoints, more than the {MAX_KEYPOINTS} this tool reads"
        bad = next((k for k in keypoints if _has_control(k)), None)
        if bad is not None:
            return f"keypoint name {describe(bad)} holds a control character"
    skeleton = entry.get("skeleton")
    if skeleton is not None:
        if not isinstance(skeleton, list):
            return f"'skeleton' must be a list of keypoint pairs, found {describe(skeleton)}"
        for i, pair in enumerate(skeleton):
            if not (isinstance(pair, list) and len(pair) == 2 and all(is_int(v) for v in pair)):
                return f"skeleton[{i}] must be a pair of 1-based keypoint numbers (integers), found {describe(pair)}"
    return None


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def far_message(what: str, value: float, width: int, height: int) -> str:
    return f"{what} coordinate {value:g} lies far outside the {width} x {height} image (more than its size beyond an edge)"


# A row holds 6 decimals of the image's size: an extent under this (clipped to the image) is written as none.
MIN_EXTENT = 2e-6


def extent_problem(what: str, low_xy, high_xy, width: int, height: int) -> tuple[str, str] | None:
    """(reason, message) when an extent ((2,) lowest and (2,) highest x, y, pixels) cannot be a row of a
    ``width`` x ``height`` image: far outside it (``out_of_image``), wholly outside it, or clipped
    to it thinner than a row can hold (``bad_bbox`` / ``bad_polygon``); None when it can.

    Checks x low, y low, x high, y high in that order: the bulk and per-annotation paths name the same value.
    """
    for value, side in zip((*low_xy, *high_xy), (width, height, width, height)):
        if not -OUTSIDE_SIDES * side <= value <= (1 + OUTSIDE_SIDES) * side:
            return "out_of_image", far_message(what, float(value), width, height)
    (x1, y1), (x2, y2) = low_xy, high_xy
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "out_of_image", f"{what} lies outside the {width} x {height} image"
    if min(x2, width) - max(x1, 0) < MIN_EXTENT * width or min(y2, height) - max(y1, 0) < MIN_EXTENT * height:
        return ("bad_bbox" if what == "bbox" else "bad_polygon"), f"{what} inside the image is thinner than a label row can hold"
    return None


def extent_suspects(low_xy: np.ndarray, high_xy: np.ndarray, wh: np.ndarray) -> np.ndarray:
    """(N,) bool: where :func:`extent_problem` may name something, for N extents (N, 2) of images (N, 2) width, height."""
    far = ((low_xy < -OUTSIDE_SIDES * wh) | (high_xy > (1 + OUTSIDE_SIDES) * wh)).any(axis=1)
    clipped = np.minimum(high_xy, wh) - np.maximum(low_xy, 0)
    return far | (clipped < MIN_EXTENT * wh).any(axis=1)


def keypoints_problem(low_xy, high_xy, width: int, height: int) -> tuple[str, str] | None:
    """(reason, message) when labeled keypoints (their (2,) lowest and highest x, y) lie far outside the image."""
    for value, side in zip((*low_xy, *high_xy), (width, height, width, height)):
        if not -OUTSIDE_SIDES * side <= value <= (1 + OUTSIDE_SIDES) * side:
            return "out_of_image", far_message("keypoint", float(value), width, height)
    return None


def file_name_problem(file_name: str) -> str | None:
    """Why an image's ``file_name`` cannot name its image and label files (None when it can).

    The label file is named after the last path part (``a/b.jpg`` -> ``b.txt``): it must be a
    real name, encodable, without control characters (a newline would split a list of paths),
    and short enough for a file system.
    """
    base = file_name.rsplit("/", 1)[-1]
    if base in ("", ".", ".."):
        return "names no file (its last part is empty, '.' or '..')"
    if _has_control(file_name):
        return "holds a control character (newline, NUL, ...)"
    try:
        encoded = os.fsencode(base)
        file_name.encode("utf-8")
    except UnicodeError:
        return "is not valid text (an unpaired surrogate)"
    stem = base.rsplit(".", 1)[0] if "." in base else base
    if len(encoded) > NAME_MAX_BYTES or len(os.fsencode(stem)) + len(".txt") > NAME_MAX_BYTES:
        return f"is longer than the {NAME_MAX_BYTES} bytes a file name may have"
    return None


def file_names_problems(file_names: list[str]) -> dict[int, str]:
    """index -> :func:`file_name_problem` of the names that have one; one pass over all names when none has."""
    joined = "/".join(file_names)
    ascii_names = joined.isascii()
    bases = [name.rsplit("/", 1)[-1] for name in file_names]
    clean = (
        not _CONTROL.search(joined)
        and _encodes(joined)
        and not ({"", ".", ".."} & set(bases))
        and (max(map(len, bases), default=0) + len(".txt") <= NAME_MAX_BYTES if ascii_names else False)
    )
    if clean:
        return {}
    return {i: problem for i, name in enumerate(file_names) if (problem := file_name_problem(name))}


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeError:
        return False


def split_name_problem(split: str) -> str | None:
    """Why a split name cannot name the folders labels/<split> and images/<split> (None when it can)."""
    if split in ("", ".", "..") or "/" in split or "\\" in split or _has_control(split) or not _encodes(split):
        return f"split name {split!r} cannot name a folder (empty, '.', '..', a slash or a control character)"
    if len(os.fsencode(split)) > NAME_MAX_BYTES:
        return f"split name is longer than the {NAME_MAX_BYTES} bytes a folder name may have"
    return None


def rle_problem(segmentation: dict, height: int, width: int) -> str | None:
    """Why an RLE dict cannot be decoded into a ``height`` x ``width`` mask (None when it can).

    pycocotools fills the mask run by run from ``counts`` and leaves what the runs do not
    cover uninitialised (or writes past it): the runs must cover the mask exactly.
    """
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)):
        return f"RLE size must be [height, width], found {describe(size)}"
    if size != [height, width]:
        return f"RLE size {size} is not the image's [height, width] [{height}, {width}]"
    if height * width > MAX_MASK_PIXELS:
        return f"RLE mask of {height} x {width} pixels is larger than the {MAX_MASK_PIXELS} pixels this tool decodes"
    counts = segmentation.get("counts")
    if isinstance(counts, list):
        if not all(is_int(c) and c >= 0 for c in counts):
            return "RLE counts must be integers >= 0"
        total = sum(counts)
    elif isinstance(counts, str):
        decoded = rle_string_counts(counts)
        if decoded is None:
            return "RLE counts string is corrupt (not COCO's compressed RLE)"
        if len(decoded) and (decoded.min() < 0 or decoded.max() > 2**32 - 1):
            return "RLE counts string is corrupt (a run out of range)"
        total = int(decoded.sum())
    else:
        return f"RLE counts must be a list or a string, found {describe(counts)}"
    if total != height * width:
        return f"RLE runs cover {total} pixels, the mask has {height} x {width} = {height * width}"
    return None


def rle_string_counts(text: str) -> np.ndarray | None:
    """The runs of COCO's compressed RLE string (pycocotools' ``rleFrString``), or None when it is corrupt.

    Each run is written in 5-bit groups, least significant first, as characters ``48 + group``,
    0x20 marking that another group follows and 0x10 in the last group the sign; runs from the
    fourth on are stored as the difference to the run two before. Vectorized: no Python loop
    per character. At most 6 groups a run (30 bits): pycocotools' shifts go wrong past that.
    """
    try:
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        return None
    if len(data) == 0:
        return np.zeros(0, dtype=np.int64)
    if data.min() < 0 or data.max() > 63:
        return None
    more = (data & 0x20) != 0
    if more[-1]:
        return None  # the last run is cut short
    last = np.flatnonzero(~more)  # the last group of each run
    first = np.concatenate([[0], last[:-1] + 1])
    groups = last - first + 1
    if groups.max() > 6:
        return None
    position = np.arange(len(data)) - np.repeat(first, groups)  # group k of its run
    value = np.zeros(len(last), dtype=np.int64)
    np.add.at(value, np.repeat(np.arange(len(last)), groups), (data & 0x1F) << (5 * position))
    negative = (data[last] & 0x10) != 0
    value = np.where(negative, value - (np.int64(1) << (5 * groups)), value)
    # runs 3, 5, 7, ... add up from run 1 and runs 4, 6, ... from run 2
    counts = value.copy()
    for start in (1, 2):
        if len(counts) > start:
            counts[start::2] = np.cumsum(value[start::2])
    return counts
