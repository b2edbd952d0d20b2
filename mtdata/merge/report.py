"""What a merge did: :class:`MergeReport` (the counts, the matched pairs' IoU) and the reasons a pose
row found no mask (:data:`UNMATCHED_REASONS`, as ``OUT/unmatched.json`` and the CLI name them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IOU_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
UNMATCHED_REASONS = {
    "below_iou": "no mask of the mapped classes reached --iou",
    "mask_taken": "its best masks went to poses with higher IoU",
    "no_mask": "the image has no mask of the mapped classes",
    "image_not_in_seg": "SEG has neither the image nor its label file",
    "class_not_mapped": "its class maps to no SEG class",
}


@dataclass
class MergeReport:
    """What a merge did: images per split, rows per class and side, IoUs of the matches."""

    out: Path
    kpt: Path
    seg: Path
    iou_threshold: float
    class_map: dict[str, list[str]] = field(default_factory=dict)  # KPT class -> SEG classes
    images: dict[str, Counter] = field(default_factory=dict)  # split -> both / seg_only / kpt_only / written
    seg_rows: Counter = field(default_factory=Counter)  # SEG class -> rows written
    seg_matched: Counter = field(default_factory=Counter)  # SEG class -> rows that got keypoints
    kpt_rows: Counter = field(default_factory=Counter)  # KPT class -> rows read
    kpt_matched: Counter = field(default_factory=Counter)
    kpt_unmatched: Counter = field(default_factory=Counter)  # reason -> KPT rows
    ious: np.ndarray = field(default_factory=lambda: np.zeros(0))
    problems: list[dict] = field(default_factory=list)  # malformed rows: side, file, line, kind, message
    unmatched_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.ious)

    def iou_histogram(self) -> list[tuple[float, float, int]]:
        """(low, high, count) bins of the matched pairs' IoU, from the threshold up to 1."""
        edges = sorted({self.iou_threshold, *[e for e in IOU_BINS if e > self.iou_threshold]})
        if len(edges) == 1:
            edges = [edges[0], 1.0]
        counts, _ = np.histogram(np.clip(self.ious, edges[0], edges[-1]), bins=edges)
        return [(edges[i], edges[i + 1], int(c)) for i, c in enumerate(counts)]

    def iou_quantiles(self, qs: list[float]) -> list[float]:
        """Quantiles of the matched pairs' IoU, as ``np.quantile`` (linear) computes them.

        By hand because ``np.quantile`` and ``np.median`` import ``numpy.ma`` (14 ms) on every run.
        """
        ious = np.sort(self.ious)
        position = np.asarray(qs, dtype=np.float64) * (len(ious) - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, len(ious) - 1)
        return (ious[low] + (ious[high] - ious[low]) * (position - low)).tolist()

    def to_dict(self) -> dict:
        q = [round(v, 4) for v in self.iou_quantiles([0.0, 0.05, 0.5])] if self.matched else [None] * 3
        return {
            "out": str(self.out),
            "kpt": str(self.kpt),
            "seg": str(self.seg),
            "iou_threshold": self.iou_threshold,
            "class_map": self.class_map,
            "images": {split: dict(c) for split, c in self.images.items()},
            "matched": self.matched,
            "seg_rows": dict(self.seg_rows),
            "seg_matched": dict(self.seg_matched),
            "seg_unmatched": {c: self.seg_rows[c] - self.seg_matched[c] for c in self.keypoint_seg_classes()},
            "kpt_rows": dict(self.kpt_rows),
            "kpt_matched": dict(self.kpt_matched),
            "kpt_unmatched_by_reason": dict(self.kpt_unmatched),
            "iou": {
                "min": q[0], "p05": q[1], "median": q[2],
                "mean": round(float(self.ious.mean()), 4) if self.matched else None,
                "histogram": [{"from": lo, "to": hi, "pairs": n} for lo, hi, n in self.iou_histogram()],
            },
            "malformed_rows": self.problems,
            "unmatched_file": str(self.unmatched_file) if self.unmatched_file else None,
            "notes": self.notes,
        }

    def keypoint_seg_classes(self) -> list[str]:
        return sorted({s for targets in self.class_map.values() for s in targets})
