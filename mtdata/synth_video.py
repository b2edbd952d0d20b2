"""A synthetic video with ground truth for tracking: moving stars (keypoints) and discs (none).

Each object keeps its own lane (a horizontal band of the frame), slides left and right, bouncing at the
edges, bobs up and down and turns slowly, so objects never overlap and every ground-truth track is unbroken.
The ground truth is COCO "video" JSON (the layout TAO and BDD100K use): ``videos``, one ``images`` entry per
frame with ``video_id`` and a 1-based ``frame_id`` (ultralytics numbers video frames from 1), and
``annotations`` with a ``track_id``; categories are :mod:`mtdata.synth`'s (``figure`` with 5 keypoints,
``disc`` without), so ``mtdata convert`` reads the file and a model trained on ``mtdata synth`` data knows
the classes (multitask class 0 figure, 1 disc).

>>> files = write_synth_video(tmp, frames=50)   # doctest: +SKIP
>>> files["video"], files["annotations"]        # doctest: +SKIP
(PosixPath('.../video.avi'), PosixPath('.../annotations/video.json'))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mtdata.errors import OutputError
from mtdata.geometry import polygon_areas, polygon_xyxy
from mtdata.synth import _TIP_DEGREES, DISC_ID, FIGURE_ID, FIGURE_KEYPOINTS, FIGURE_SKELETON

# The head tip reaches further than the hands and feet: a turning star stays asymmetric, so which tip is which
# keypoint can be seen in every frame (a regular star turned by 72 degrees looks the same, its labels shifted).
HEAD_REACH = np.array([1.35, 1.0, 1.0, 1.0, 1.0])
# Containers OpenCV's bundled FFmpeg writes everywhere (opencv-python-headless wheels): MJPG in AVI, MPEG-4 in MP4.
FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}


@dataclass(frozen=True)
class VideoSpec:
    """How a synthetic video is made.

    Attributes:
        frames: number of frames.
        size: frame width and height in pixels.
        objects: number of objects (one lane each; even lanes hold stars, odd ones discs).
        fps: frame rate written in the file.
        suffix: ``.avi`` (MJPG) or ``.mp4`` (MPEG-4 part 2).
    """

    frames: int = 100
    size: int = 160
    objects: int = 3
    fps: float = 10.0
    suffix: str = ".avi"


@dataclass
class _Mover:
    track_id: int
    figure: bool
    color: tuple[int, int, int]
    r: float
    extent: float  # how far the outline reaches from the centre
    x: float
    vx: float
    lane_y: float
    bob: float  # vertical amplitude in pixels
    phase: float
    spin: float  # radians per frame
    angle: float
    shape: np.ndarray  # figure: 5 tip angle offsets (radians); disc: (a, b) semi-axes

    def outline(self, y: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Polygon (P, 2) and, for a figure, its 5 tips (5, 2) in FIGURE_KEYPOINTS order, in pixels."""
        if self.figure:
            angles = self.shape + self.angle
            reach = self.r * HEAD_REACH
            tips = np.stack([self.x + reach * np.cos(angles), y + reach * np.sin(angles)], axis=1)
            order = np.argsort(np.mod(angles, 2 * np.pi))  # walk around the centre so the outline never crosses
            around = np.mod(angles, 2 * np.pi)[order]
            inner_angles = around + np.diff(np.append(around, around[0] + 2 * np.pi)) / 2
            inner = np.stack([self.x + 0.45 * self.r * np.cos(inner_angles),
                              y + 0.45 * self.r * np.sin(inner_angles)], axis=1)
            polygon = np.empty((10, 2))
            polygon[0::2], polygon[1::2] = tips[order], inner
            return polygon, tips
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        a, b = self.shape
        px, py = a * np.cos(t), b * np.sin(t)
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.stack([self.x + px * c - py * s, y + px * s + py * c], axis=1), None


def _movers(spec: VideoSpec, rng: np.random.Generator) -> list[_Mover]:
    lane = spec.size / spec.objects
    movers = []
    for i in range(spec.objects):
        figure = i % 2 == 0
        r = min(rng.uniform(0.3, 0.4) * lane, 0.22 * spec.size) / (HEAD_REACH.max() if figure else 1.0)
        extent = r * (HEAD_REACH.max() if figure else 1.0)
        shape = (np.deg2rad(_TIP_DEGREES + rng.uniform(-8, 8, size=5)) if figure
                 else np.array([r, r * rng.uniform(0.55, 0.85)]))
        speed = rng.uniform(0.008, 0.02) * spec.size  # pixels per frame
        movers.append(_Mover(
            track_id=i + 1, figure=figure, color=_vivid(rng), r=r, extent=extent,
            x=rng.uniform(extent, spec.size - extent), vx=speed * rng.choice([-1.0, 1.0]), lane_y=(i + 0.5) * lane,
            bob=min(0.45 * lane - extent, 0.15 * lane) if lane > 2 * extent else 0.0, phase=rng.uniform(0, 2 * np.pi),
            spin=rng.uniform(-0.03, 0.03), angle=rng.uniform(0, 2 * np.pi), shape=shape,
        ))
    return movers


def _vivid(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated BGR colour: it stands out from the grey background."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(180, 256), rng.integers(170, 256)]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _step(m: _Mover, size: int) -> None:
    m.x += m.vx
    if m.x < m.extent or m.x > size - m.extent:  # bounce at the frame's edges: the whole object stays in view
        m.vx = -m.vx
        m.x = float(np.clip(m.x, m.extent, size - m.extent))
    m.angle += m.spin


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in np.asarray(values).reshape(-1)]


def make_video(spec: VideoSpec, seed: int = 0):
    """Render the frames and their ground truth.

    Yields:
        (frame index from 1, (H, W, 3) uint8 BGR frame, list of COCO annotations without ``id``/``image_id``).
    """
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(90, 150, size=(spec.size, spec.size, 3), dtype=np.uint8), (5, 5), 0)
    movers = _movers(spec, rng)
    for index in range(1, spec.frames + 1):
        canvas = background.copy()
        objects = []
        for m in movers:
            y = m.lane_y + m.bob * np.sin(m.phase + 0.15 * index)
            polygon, tips = m.outline(y)
            polygon = np.round(polygon, 2)  # what the JSON holds: the box is the written polygon's
            cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], m.color)
            x1, y1, x2, y2 = polygon_xyxy(polygon)
            ann = {"category_id": FIGURE_ID if m.figure else DISC_ID, "track_id": m.track_id, "iscrowd": 0,
                   "segmentation": [_round(polygon)], "area": float(polygon_areas([polygon])[0]),
                   "bbox": _round([x1, y1, x2 - x1, y2 - y1])}
            if tips is not None:
                kpts = np.concatenate([tips, np.full((5, 1), 2.0)], axis=1)
                ann["keypoints"] = [round(float(v), 2) if i % 3 < 2 else 2 for i, v in enumerate(kpts.reshape(-1))]
                ann["num_keypoints"] = 5
            objects.append(ann)
            _step(m, spec.size)
        yield index, canvas, objects


def write_synth_video(out: Path, spec: VideoSpec = VideoSpec(), seed: int = 0, frames_as_images: bool = False) -> dict[str, Path]:
    """Write ``video<suffix>`` and ``annotations/video.json`` (COCO video ground truth) under ``out``; with
    ``frames_as_images`` also every frame as ``images/video/NNNNNN.jpg`` (what ``mtdata convert --images`` takes).

    Returns:
        {"video": video file, "annotations": ground-truth JSON}.
    """
    if spec.suffix not in FOURCC:
        raise OutputError(f"video suffix must be one of {', '.join(FOURCC)}, found {spec.suffix!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video = out / f"video{spec.suffix}"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*FOURCC[spec.suffix]), spec.fps, (spec.size, spec.size))
    if not writer.isOpened():
        raise OutputError(f"cannot write {video}: OpenCV has no {FOURCC[spec.suffix]} encoder for {spec.suffix}")
    image_dir = out / "images" / "video"
    if frames_as_images:
        image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    try:
        for index, canvas, objects in make_video(spec, seed):
            writer.write(canvas)
            name = f"{index:06d}.jpg"
            if frames_as_images and not cv2.imwrite(str(image_dir / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise OutputError(f"cannot write {image_dir / name}: OpenCV could not write the image (is the disk full?)")
            images.append({"id": index, "video_id": 1, "frame_id": index, "file_name": name,
                           "width": spec.size, "height": spec.size})
            for ann in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": index, **ann})
    finally:
        writer.release()
    categories = [
        {"id": FIGURE_ID, "name": "figure", "supercategory": "shape", "keypoints": FIGURE_KEYPOINTS,
         "skeleton": FIGURE_SKELETON},
        {"id": DISC_ID, "name": "disc", "supercategory": "shape"},
    ]
    coco = {"info": {"description": "mtdata synthetic video", "seed": seed},
            "videos": [{"id": 1, "file_name": video.name, "width": spec.size, "height": spec.size, "fps": spec.fps,
                        "frames": spec.frames}],
            "images": images, "annotations": annotations, "categories": categories}
    ann_file = out / "annotations" / "video.json"
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(coco))
    return {"video": video, "annotations": ann_file}


def read_tracks(annotations: Path) -> dict[int, dict[int, dict]]:
    """Ground truth by frame: ``{frame_id: {track_id: annotation}}`` from a COCO video JSON."""
    coco = json.loads(Path(annotations).read_text())
    frame_of = {im["id"]: im["frame_id"] for im in coco["images"]}
    frames: dict[int, dict[int, dict]] = {f: {} for f in frame_of.values()}
    for ann in coco["annotations"]:
        frames[frame_of[ann["image_id"]]][ann["track_id"]] = ann
    return frames
