"""The per-image record type: the objects of one image.

The per-image readers and writers speak it (COCO's :func:`~mtdata.formats.coco.read.image_labels` and
writer, YOLO rows, export, view); the bulk paths do not: ``mtdata convert`` works on
:class:`mtdata.formats.coco.objects.ObjectColumns`, merge on the YOLO
:class:`mtdata.formats.yolo.blocks.RowBlock`, check on the normalized :class:`~mtdata.formats.yolo.rows.YoloRow`.

Coordinates are absolute pixels in the image of size ``resolution_wh``. Where an image's size
is unknown (view's unreadable images, for one) the callers pass ``resolution_wh=(1, 1)``, which makes
pixels and normalized coordinates the same thing: area ratios such as IoU do not change, but
pixel distances (OKS) are not pixels then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtdata.errors import MtdataError

VISIBILITY_ABSENT, VISIBILITY_HIDDEN, VISIBILITY_VISIBLE = 0, 1, 2  # COCO's enum


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
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        if self.keypoints.size == 0 and self.keypoints.ndim != 3:
            self.keypoints = self.keypoints.reshape(n, 0, 3)
        if self.source_ids is None:
            self.source_ids = np.full(n, -1, dtype=np.int64)
        self.source_ids = np.asarray(self.source_ids, dtype=np.int64).reshape(-1)
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
