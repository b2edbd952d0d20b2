"""Keypoint smoothing along a track: the one-euro filter (Casiez, Roussel, Vogel, CHI 2012).

Each keypoint coordinate of each track is low-pass filtered with a cutoff that rises with its speed: slow
points (jitter) are smoothed hard, fast ones follow with little lag. Time is counted in frames (a gap of n
frames is a step of n), so the parameters do not depend on the video's frame rate; coordinates are pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _alpha(cutoff: np.ndarray | float, step: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / step)


@dataclass
class OneEuro:
    """A one-euro filter over arrays of any shape.

    Attributes:
        min_cutoff: cutoff (cycles per frame) at rest: lower smooths jitter more.
        beta: how fast the cutoff rises with speed (per pixel per frame): higher lags less on fast motion.
        d_cutoff: cutoff of the speed estimate.
    """

    min_cutoff: float = 0.02
    beta: float = 0.02
    d_cutoff: float = 0.1
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)
    _t: float | None = field(default=None, repr=False)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        step = t - self._t
        dx = (x - self._x) / step
        self._dx = self._dx + _alpha(self.d_cutoff, step) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, step) * (x - self._x)
        self._t = t
        return self._x.copy()


@dataclass
class KeypointSmoother:
    """One :class:`OneEuro` per (source, track id) over its keypoints' x, y; confidences are kept.

    ``apply(result)`` changes a tracked ``MultiTaskResults`` in place (objects of classes without keypoints and
    untracked results are left alone). Tracks not seen for ``forget_after`` frames are dropped.
    """

    min_cutoff: float = 0.02
    beta: float = 0.02
    d_cutoff: float = 0.1
    forget_after: int = 300
    _filters: dict = field(default_factory=dict, repr=False)

    def apply(self, result) -> None:
        import torch

        if result.boxes is None or not result.boxes.is_track or result.keypoints is None or not len(result):
            return
        t = float(result.frame if getattr(result, "frame", None) is not None else 0)
        data = result.keypoints.data.clone()
        ids = result.boxes.id.int().tolist()
        classes = result.boxes.cls.int().tolist()
        keypoint_classes = set(getattr(result, "keypoint_classes", ()))
        for i, (track_id, cls) in enumerate(zip(ids, classes)):
            if cls not in keypoint_classes:
                continue
            key = (str(result.path), track_id)
            f = self._filters.get(key)
            if f is None:
                f = self._filters[key] = OneEuro(self.min_cutoff, self.beta, self.d_cutoff)
            xy = data[i, :, :2].cpu().numpy()
            data[i, :, :2] = torch.as_tensor(f(xy, t), dtype=data.dtype, device=data.device)
        for key in [k for k, f in self._filters.items() if f._t is not None and t - f._t > self.forget_after]:
            del self._filters[key]
        result.update(keypoints=data)
