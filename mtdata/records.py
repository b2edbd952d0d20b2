"""The record type every part of mtdata speaks: a columnar batch of objects, and the objects of one image as its view.

:class:`ObjectBatch` holds the objects of many images, one array per field (what the bulk
readers and writers of every format fill and spell); :class:`ImageLabels` holds the objects of
one image (what per-row code and the FiftyOne edge take): ``batch.for_image(key, resolution_wh)``
and ``ObjectBatch.from_image_labels`` go from one to the other.

Coordinates are absolute pixels in the image of size ``resolution_wh``, (x, y) order, boxes
(x1, y1, x2, y2). Where an image's size is unknown (view's unreadable images, for one) the callers
pass ``resolution_wh=(1, 1)``, which makes pixels and normalized coordinates the same thing: area
ratios such as IoU do not change, but pixel distances (OKS) are not pixels then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtdata.errors import MtdataError

VISIBILITY_ABSENT, VISIBILITY_HIDDEN, VISIBILITY_VISIBLE = 0, 1, 2  # COCO's enum


def _as_keypoints(keypoints, n: int) -> np.ndarray:
    """Keypoints as float64; an empty array of any shape becomes (n, 0, 3). The shape is checked by the caller."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.size == 0 and keypoints.ndim != 3:
        return keypoints.reshape(n, 0, 3)
    return keypoints


def _as_source_ids(source_ids, n: int) -> np.ndarray:
    """(n,) int64 source ids; None means none known (-1 each). The length is checked by the caller."""
    if source_ids is None:
        return np.full(n, -1, dtype=np.int64)
    return np.asarray(source_ids, dtype=np.int64).reshape(-1)


def _stacked_keypoints(parts: list[np.ndarray], k: int) -> np.ndarray:
    """(sum N_i, k, 3) keypoints of ``parts`` ((N_i, K_i, 3) each) one after the other, padded with absent points
    (0, 0, 0) or cut to ``k``."""
    out = np.zeros((sum(len(p) for p in parts), k, 3))
    at = 0
    for p in parts:
        out[at : at + len(p), : min(k, p.shape[1])] = p[:, :k]
        at += len(p)
    return out


@dataclass
class ImageLabels:
    """Objects of one image.

    ``__post_init__`` turns the fields into the dtypes and shapes below and checks that every field
    has N objects and keypoints are (N, K, 3); it does not check values (boxes' corner order, class
    range, visibility), which the readers do.

    Attributes:
        resolution_wh: image (width, height) in pixels.
        class_id: (N,) int64 class index per object.
        xyxy: (N, 4) float64 boxes, pixels, (x1, y1, x2, y2).
        polygons: N float64 arrays of shape (P_i, 2), pixels, (x, y); (0, 2) when the object has no mask.
        keypoints: (N, K, 3) float64, pixels (x, y) and COCO visibility 0/1/2; K may be 0.
        source_ids: (N,) int64 id of each object in its source (COCO annotation id), -1 when none.
    """

    resolution_wh: tuple[int, int]
    class_id: np.ndarray
    xyxy: np.ndarray
    polygons: list[np.ndarray]
    keypoints: np.ndarray
    source_ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        n = len(self.class_id)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(n, 4)
        self.keypoints = _as_keypoints(self.keypoints, n)
        self.source_ids = _as_source_ids(self.source_ids, n)
        self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.polygons]
        if len(self.polygons) != n or len(self.source_ids) != n:
            raise MtdataError(f"ImageLabels: {n} objects but {len(self.polygons)} polygons and {len(self.source_ids)} ids")
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
            raise MtdataError(f"ImageLabels: keypoints must be ({n}, K, 3), got {self.keypoints.shape}")

    @classmethod
    def empty(cls, resolution_wh: tuple[int, int], num_keypoints: int = 0) -> "ImageLabels":
        return cls(resolution_wh, np.zeros(0), np.zeros((0, 4)), [], np.zeros((0, num_keypoints, 3)))

    def __len__(self) -> int:
        return len(self.class_id)

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]

    def __getitem__(self, index) -> "ImageLabels":
        """Select objects with a boolean mask, an index array, a slice or one index (a record of one object)."""
        picks = np.arange(len(self))[index]
        picks = np.atleast_1d(picks)
        return ImageLabels(
            self.resolution_wh,
            self.class_id[picks],
            self.xyxy[picks],
            [self.polygons[i] for i in picks],
            self.keypoints[picks],
            self.source_ids[picks],
        )

    def has_polygon(self) -> np.ndarray:
        """(N,) bool: the object has a polygon of at least 3 points."""
        return np.array([len(p) >= 3 for p in self.polygons], dtype=bool)

    def labeled_keypoint_count(self) -> np.ndarray:
        """(N,) int: keypoints with visibility > 0 per object."""
        if self.num_keypoints == 0:
            return np.zeros(len(self), dtype=np.int64)
        return (self.keypoints[..., 2] > 0).sum(axis=1)

    def with_keypoints(self, num_keypoints: int) -> "ImageLabels":
        """A new record whose keypoints (a new array) are padded with absent points (or cut) to K; the other fields
        are the same arrays as this record's, not copies."""
        k = self.num_keypoints
        kpts = np.zeros((len(self), num_keypoints, 3))
        kpts[:, : min(k, num_keypoints)] = self.keypoints[:, :num_keypoints]
        return ImageLabels(self.resolution_wh, self.class_id, self.xyxy, self.polygons, kpts, self.source_ids)

    @staticmethod
    def concatenate(parts: list["ImageLabels"], resolution_wh: tuple[int, int], num_keypoints: int) -> "ImageLabels":
        """The objects of ``parts`` in order, keypoints padded or cut to ``num_keypoints``, in an image of
        ``resolution_wh`` (the parts' own sizes are not read: their pixels are taken as they are)."""
        parts = [p.with_keypoints(num_keypoints) for p in parts if len(p)]
        if not parts:
            return ImageLabels.empty(resolution_wh, num_keypoints)
        return ImageLabels(
            resolution_wh,
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.xyxy for p in parts]),
            [poly for p in parts for poly in p.polygons],
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.source_ids for p in parts]),
        )


def _gather_runs(offsets: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``picks`` of a ragged array: ((P,) index of each of their points, in order, (len(picks) + 1,) their offsets)."""
    sizes = offsets[1:][picks] - offsets[:-1][picks]
    out = np.zeros(len(picks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return np.repeat(offsets[:-1][picks] - out[:-1], sizes) + np.arange(out[-1]), out


@dataclass
class ObjectBatch:
    """Objects of many images, one array per field, in the order they were read.

    Attributes:
        image: (N,) int64 image each object belongs to: its COCO image id, or the index of its
            file within the batch.
        class_id: (N,) int64 class index.
        xyxy: (N, 4) float64 boxes (x1, y1, x2, y2), pixels (normalized where the resolution is (1, 1)).
        polygon_offsets: (N + 1,) int64: object i's polygon is
            ``polygon_xy[polygon_offsets[i]:polygon_offsets[i + 1]]``, empty when it has no mask.
        polygon_xy: (Q, 2) float64 points (x, y), same units as ``xyxy``.
        keypoints: (N, K, 3) float64 (x, y, COCO visibility 0/1/2), same units; absent points are
            (0, 0, 0); K may be 0.
        source_ids: (N,) int64 id of each object in its source (COCO annotation id, or the 1-based
            line of its row), -1 when none.

    Shapes are checked once here, in whole-array operations (no loop over objects).
    """

    image: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    polygon_offsets: np.ndarray
    polygon_xy: np.ndarray
    keypoints: np.ndarray
    source_ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        n = len(self.class_id)
        self.image = np.asarray(self.image, dtype=np.int64).reshape(-1)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(n, 4)
        self.polygon_offsets = np.asarray(self.polygon_offsets, dtype=np.int64).reshape(-1)
        self.polygon_xy = np.asarray(self.polygon_xy, dtype=np.float64).reshape(-1, 2)
        self.keypoints = _as_keypoints(self.keypoints, n)
        self.source_ids = _as_source_ids(self.source_ids, n)
        if len(self.image) != n or len(self.source_ids) != n:
            raise MtdataError(f"ObjectBatch: {n} objects but {len(self.image)} images and {len(self.source_ids)} ids")
        offsets = self.polygon_offsets
        if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(self.polygon_xy):
            raise MtdataError(f"ObjectBatch: polygon_offsets must be ({n + 1},) from 0 to {len(self.polygon_xy)} points, "
                              f"got {offsets.shape} from {offsets[:1].tolist()} to {offsets[-1:].tolist()}")
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
            raise MtdataError(f"ObjectBatch: keypoints must be ({n}, K, 3), got {self.keypoints.shape}")

    @classmethod
    def empty(cls, num_keypoints: int = 0) -> "ObjectBatch":
        return ObjectBatch(np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(1), np.zeros((0, 2)), np.zeros((0, num_keypoints, 3)))

    def __len__(self) -> int:
        return len(self.class_id)

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]

    def polygon(self, i: int) -> np.ndarray:
        """(P, 2) polygon of object ``i`` (a view; (0, 2) when it has none)."""
        return self.polygon_xy[self.polygon_offsets[i] : self.polygon_offsets[i + 1]]

    def select(self, index) -> "ObjectBatch":
        """The objects picked by a boolean mask, an index array or a slice, in that order, as a plain :class:`ObjectBatch`
        (a subclass's own fields are not carried)."""
        picks = np.atleast_1d(np.arange(len(self))[index])
        points, offsets = _gather_runs(self.polygon_offsets, picks)
        return ObjectBatch(self.image[picks], self.class_id[picks], self.xyxy[picks], offsets, self.polygon_xy[points],
                           self.keypoints[picks], self.source_ids[picks])

    @staticmethod
    def concatenate(parts: list["ObjectBatch"], num_keypoints: int | None = None) -> "ObjectBatch":
        """The objects of ``parts``, one after the other; keypoints padded with absent points (or cut) to ``num_keypoints``
        (default: the largest K of the parts)."""
        k = max((p.num_keypoints for p in parts), default=0) if num_keypoints is None else num_keypoints
        parts = [p for p in parts if len(p)]
        if not parts:
            return ObjectBatch.empty(k)
        starts = np.cumsum([0] + [len(p.polygon_xy) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.polygon_offsets[1:] + s for p, s in zip(parts, starts.tolist())])
        keypoints = _stacked_keypoints([p.keypoints for p in parts], k)
        return ObjectBatch(
            np.concatenate([p.image for p in parts]), np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.xyxy for p in parts]), offsets, np.concatenate([p.polygon_xy for p in parts]), keypoints,
            np.concatenate([p.source_ids for p in parts]),
        )

    def for_image(self, key: int, resolution_wh: tuple[int, int]) -> ImageLabels:
        """The objects of image ``key`` as one record, in batch order (polygons are views into ``polygon_xy``)."""
        picks = np.flatnonzero(self.image == key)
        offsets = self.polygon_offsets
        return ImageLabels(resolution_wh, self.class_id[picks], self.xyxy[picks],
                           [self.polygon_xy[a:b] for a, b in zip(offsets[picks].tolist(), offsets[picks + 1].tolist())],
                           self.keypoints[picks], self.source_ids[picks])

    @staticmethod
    def from_image_labels(images: list[ImageLabels], keys: list[int] | None = None) -> "ObjectBatch":
        """The objects of per-image records as one batch; object i belongs to ``keys[j]`` of its record j (default: j).
        Keypoints are padded with absent points to the largest K."""
        keys = list(range(len(images))) if keys is None else list(keys)
        if len(keys) != len(images):
            raise MtdataError(f"ObjectBatch.from_image_labels: {len(images)} records but {len(keys)} keys")
        k = max((labels.num_keypoints for labels in images), default=0)
        polygons = [p for labels in images for p in labels.polygons]
        offsets = np.zeros(len(polygons) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in polygons], out=offsets[1:])
        counts = [len(labels) for labels in images]
        keypoints = _stacked_keypoints([labels.keypoints for labels in images], k)
        return ObjectBatch(
            np.repeat(np.asarray(keys, dtype=np.int64), counts),
            np.concatenate([labels.class_id for labels in images]) if images else np.zeros(0),
            np.concatenate([labels.xyxy for labels in images]) if images else np.zeros((0, 4)),
            offsets, np.concatenate(polygons) if polygons else np.zeros((0, 2)), keypoints,
            np.concatenate([labels.source_ids for labels in images]) if images else np.zeros(0),
        )
