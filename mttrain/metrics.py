"""Box, Mask and Pose metrics of a multitask model.

Box and Mask follow ultralytics' SegmentMetrics (mask AP from true mask IoU). Pose AP uses
OKS and counts only keypoint classes: predictions of other classes are left out, and so are
ground-truth objects without a labeled keypoint (no OKS can be computed for them), so the
mean is over the classes that have keypoints, not diluted by those that cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mttrain._ultralytics import Metric, SegmentMetrics, ap_per_class


class MultiTaskMetrics(SegmentMetrics):
    """SegmentMetrics plus ``pose`` (a Metric over keypoint classes).

    ``keypoint_classes`` must be set before ``process``.
    """

    def __init__(self, names: dict[int, str] | None = None, keypoint_classes: list[int] = ()) -> None:
        super().__init__(names)
        self.pose = Metric()
        self.keypoint_classes = list(keypoint_classes)
        self.stats["tp_p"] = []
        self.stats["target_cls_p"] = []

    def update_stats(self, stat: dict[str, Any]) -> None:
        super().update_stats(stat)
        keep = np.isin(stat["pred_cls"], self.keypoint_classes)
        self.pose.update_image_metrics(stat["tp_p"][keep], stat["target_cls_p"], stat["pred_cls"][keep], stat["im_name"])

    def clear_image_metrics(self) -> None:
        super().clear_image_metrics()
        self.pose.clear_image_metrics()

    def process(self, save_dir: Path = Path("."), plot: bool = False, on_plot=None) -> dict[str, np.ndarray]:
        stats = super().process(save_dir, plot, on_plot=on_plot)
        if not stats:
            return stats
        keep = np.isin(stats["pred_cls"], self.keypoint_classes)
        results = ap_per_class(
            stats["tp_p"][keep], stats["conf"][keep], stats["pred_cls"][keep], stats["target_cls_p"],
            plot=plot, on_plot=on_plot, save_dir=save_dir, names=self.names, prefix="Pose",
        )[2:]
        self.pose.nc = len(self.names)
        self.pose.update(results)
        return stats

    @property
    def keys(self) -> list[str]:
        return [*super().keys, "metrics/precision(P)", "metrics/recall(P)", "metrics/mAP50(P)", "metrics/mAP50-95(P)"]

    def mean_results(self) -> list[float]:
        return super().mean_results() + self.pose.mean_results()

    def class_result(self, i: int) -> list[float]:
        """Results of the i-th class with box targets; pose zeros for classes without keypoints."""
        cls = int(self.box.ap_class_index[i])
        pose_index = {int(c): j for j, c in enumerate(self.pose.ap_class_index)}
        pose = list(self.pose.class_result(pose_index[cls])) if cls in pose_index else [0.0, 0.0, 0.0, 0.0]
        return (*super().class_result(i), *pose)

    @property
    def maps(self) -> np.ndarray:
        return super().maps + self.pose.maps

    @property
    def fitness(self) -> float:
        """Box + Mask + Pose fitness (each 0.1 mAP50 + 0.9 mAP50-95): all three tasks count."""
        return super().fitness + self.pose.fitness()

    @property
    def curves(self) -> list[str]:
        return [*super().curves, "Precision-Recall(P)", "F1-Confidence(P)", "Precision-Confidence(P)", "Recall-Confidence(P)"]

    @property
    def curves_results(self) -> list[list]:
        return super().curves_results + self.pose.curves_results

    def summary(self, normalize: bool = True, decimals: int = 5) -> list[dict[str, Any]]:
        rows = super().summary(normalize, decimals)
        index = {int(c): j for j, c in enumerate(self.pose.ap_class_index)}
        class_ids = {v: k for k, v in self.names.items()}
        for row in rows:
            j = index.get(class_ids.get(row.get("Class")))
            if j is not None:
                row.update({"Pose-P": round(float(self.pose.p[j]), decimals), "Pose-R": round(float(self.pose.r[j]), decimals)})
        return rows

    def table(self) -> dict[str, dict[str, float]]:
        """{"box" | "mask" | "pose": {"precision", "recall", "map50", "map50_95"}} for reports and metrics.json."""
        out = {}
        for key, metric in (("box", self.box), ("mask", self.seg), ("pose", self.pose)):
            p, r, m50, m = metric.mean_results()
            out[key] = {"precision": float(p), "recall": float(r), "map50": float(m50), "map50_95": float(m)}
        out["fitness"] = float(self.fitness)
        return out
