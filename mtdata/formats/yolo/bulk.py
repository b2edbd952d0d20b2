"""YOLO label text for many objects at once: what :meth:`LabelLayout.format` writes row by row.

Used by ``mtdata convert``, where a COCO-sized dataset means ~10M numbers to write: the
numbers are spelled by :func:`mtdata.formats.yolo.rows.coordinate_chars` in a few whole-array
operations, and each row is assembled from slices of those characters. Rows are exactly
those of :meth:`mtdata.formats.yolo.rows.LabelLayout.format` (a test holds the two together,
with the row-by-row oracle in ``tests/mtdata/oracles.py``).
"""

from __future__ import annotations

import numpy as np

from mtdata.formats.yolo.rows import coordinate_chars

_TOKEN = 9  # "d.dddddd " : one coordinate and its separator


def _normalized(xy: np.ndarray, wh: np.ndarray) -> np.ndarray:
    return np.clip(xy / wh, 0.0, 1.0)


def label_texts(
    task: str,
    image_index: np.ndarray,
    num_images: int,
    resolution_wh: np.ndarray,
    class_id: np.ndarray,
    xyxy: np.ndarray,
    polygon_offsets: np.ndarray,
    polygon_xy: np.ndarray,
    keypoints: np.ndarray,
    keypoint_classes: frozenset[int],
) -> list[bytes]:
    """The label file text of each image.

    Args:
        task: ``multitask``, ``segment`` or ``pose`` (rows as :class:`LabelLayout` formats them).
        image_index: (M,) image (0..num_images-1) of each object; objects keep their order within an image.
        resolution_wh: (M, 2) width and height of each object's image.
        class_id: (M,) class of each object.
        xyxy: (M, 4) boxes, pixels (pose rows).
        polygon_offsets, polygon_xy: (M + 1,) and (Q, 2): object i's polygon, pixels, >= 3 points
            (segment and multitask rows).
        keypoints: (M, K, 3) pixels and visibility (pose rows, multitask rows of ``keypoint_classes``).

    Returns:
        num_images texts (``b""`` for images without rows).
    """
    m = len(class_id)
    wh = np.asarray(resolution_wh, dtype=np.float64).reshape(m, 2)
    k = keypoints.shape[1]
    with_polygon = task in ("segment", "multitask")
    with_box = task == "pose"
    kpt_rows = _keypoint_rows(task, class_id, keypoint_classes)
    polygon_view = memoryview(_polygon_chars(polygon_offsets, polygon_xy, wh) if with_polygon and m else b"")
    kpt_view = memoryview(_keypoint_chars(keypoints[kpt_rows], wh[kpt_rows], ends_row=with_box) if kpt_rows.any() and k else b"")
    box_view = memoryview(_box_chars(xyxy, wh) if with_box and m else b"")
    kpt_rank = np.cumsum(kpt_rows) - 1
    kpt_width = k * (2 * _TOKEN + 2)
    class_tokens = {c: b"%d " % c for c in np.unique(class_id).tolist()}
    pieces: list[list] = [[] for _ in range(num_images)]
    starts = (polygon_offsets[:-1] * 2 * _TOKEN).tolist() if with_polygon else [0] * m
    ends = (polygon_offsets[1:] * 2 * _TOKEN).tolist() if with_polygon else [0] * m
    for j, (image, cls, has_kpts, rank) in enumerate(zip(image_index.tolist(), class_id.tolist(), kpt_rows.tolist(), kpt_rank.tolist())):
        row = pieces[image]
        row.append(class_tokens[cls])
        if with_box:
            row.append(box_view[j * 4 * _TOKEN : (j + 1) * 4 * _TOKEN])
        if has_kpts and k:
            row.append(kpt_view[rank * kpt_width : (rank + 1) * kpt_width])
        if with_polygon:
            row.append(polygon_view[starts[j] : ends[j]])
    return [b"".join(p) for p in pieces]


def _keypoint_rows(task: str, class_id: np.ndarray, keypoint_classes: frozenset[int]) -> np.ndarray:
    """(M,) bool: the objects whose rows carry keypoints (all for pose, those of ``keypoint_classes`` for multitask)."""
    if task == "pose":
        return np.ones(len(class_id), dtype=bool)
    if task == "multitask":
        return np.isin(class_id, np.array(sorted(keypoint_classes), dtype=np.int64))
    return np.zeros(len(class_id), dtype=bool)


def _polygon_chars(polygon_offsets: np.ndarray, polygon_xy: np.ndarray, wh: np.ndarray) -> bytes:
    """Every polygon spelled, normalized x y tokens point after point, each polygon ending in a newline.

    Args:
        polygon_offsets: (M + 1,); polygon_xy: (Q, 2) pixels; wh: (M, 2) each object's image width, height.
    """
    sizes = np.diff(polygon_offsets)
    chars = coordinate_chars(_normalized(polygon_xy, np.repeat(wh, sizes, axis=0)).reshape(-1))
    chars[2 * polygon_offsets[1:] - 1, -1] = ord("\n")  # the polygon ends the row
    return chars.tobytes()


def _keypoint_chars(keypoints: np.ndarray, wh: np.ndarray, ends_row: bool) -> bytes:
    """The keypoints of R rows spelled, ``x y v `` for each of K points (unlabeled ones as 0 0 0), row after row.

    Args:
        keypoints: (R, K, 3) pixels and visibility; wh: (R, 2) image width, height of each row.
        ends_row: the keypoints end the row (pose): the last separator is a newline.
    """
    labeled = keypoints[..., 2] > 0
    xy = np.where(labeled[..., None], _normalized(keypoints[..., :2], wh[:, None, :]), 0.0)
    r, k = keypoints.shape[:2]
    block = np.empty((r, k, 2 * _TOKEN + 2), dtype=np.uint8)
    block[:, :, : 2 * _TOKEN] = coordinate_chars(xy.reshape(-1)).reshape(r, k, 2 * _TOKEN)
    block[:, :, 2 * _TOKEN] = ord("0") + np.where(labeled, keypoints[..., 2], 0).astype(np.uint8)
    block[:, :, 2 * _TOKEN + 1] = ord(" ")
    if ends_row:
        block[:, -1, -1] = ord("\n")
    return block.tobytes()


def _box_chars(xyxy: np.ndarray, wh: np.ndarray) -> bytes:
    """The (M, 4) pixel xyxy boxes spelled as normalized cx cy w h tokens, box after box (``wh``: (M, 2))."""
    x1, y1, x2, y2 = np.clip(xyxy / np.tile(wh, 2), 0.0, 1.0).T
    return coordinate_chars(np.column_stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]).reshape(-1)).tobytes()
