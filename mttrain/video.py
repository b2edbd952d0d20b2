"""Videos in and out: sources checked before a run, detections and tracks as JSON, tracked label rows.

- :func:`check_sources` opens every video of a source (file, folder, glob) with OpenCV and decodes its first
  frame before anything runs, so a missing file, a container OpenCV cannot open or a codec it cannot decode is
  one error naming the file, and nothing is written.
- :class:`DetectionsJSON` streams every detection of a run to one JSON file (memory stays flat);
  :class:`TracksJSON` groups a tracking run's objects by track.
- :func:`resolve_tracker` checks a ``--tracker`` YAML; :func:`read_track_rows` reads the label rows
  ``mttrain track --save-txt`` writes (a multitask row with the track id appended as its last value).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtdata.errors import InputError, OutputError
from mttrain.errors import ArgumentError

# FFmpeg (inside OpenCV) prints its own lines on a file it cannot read ("moov atom not found"); mttrain reports
# each such file in one line of its own (check_video). Set OPENCV_FFMPEG_LOGLEVEL yourself to see FFmpeg's.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "tcp://", "udp://")


@dataclass
class SourceInfo:
    """What a source holds: videos with their frame counts, and images."""

    videos: dict[str, int] = field(default_factory=dict)
    images: int = 0
    stream: bool = False  # a URL, webcam or in-memory source: length unknown

    @property
    def frames(self) -> int | None:
        """Images plus video frames (None for streams)."""
        return None if self.stream else self.images + sum(self.videos.values())


def _files(source: str) -> list[str]:
    if any(ch in source for ch in "*?["):
        files = sorted(glob.glob(source, recursive=True))
        if not files:
            raise InputError("no file matches this glob", file=source)
        return [f for f in files if os.path.isfile(f)]
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(glob.escape(source), "*.*")))
        return [f for f in files if os.path.isfile(f)]
    if os.path.isfile(source):
        return [source]
    raise InputError("no such image, video, folder or glob match", file=source)


def check_video(file: str | Path) -> int:
    """Open ``file`` with OpenCV and decode its first frame; returns its frame count (as the container says).

    Raises:
        InputError: OpenCV cannot open the file or decodes no frame from it.
    """
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our one line instead of OpenCV's
    cap = cv2.VideoCapture(str(file))
    try:
        if not cap.isOpened():
            raise InputError("OpenCV cannot open this video (not a video, a damaged file, or a container or codec "
                             "this OpenCV build does not read)", file=file)
        ok, frame = cap.read()
        if not ok or frame is None:
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip("\x00 ") if fourcc else "unknown"
            raise InputError(f"OpenCV opens this video but decodes no frame from it (codec {codec!r}: not "
                             "supported by this OpenCV build, or the file is damaged)", file=file)
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
    finally:
        cap.release()
        cv2.utils.logging.setLogLevel(level)


def check_sources(source, vid_stride: int = 1) -> SourceInfo:
    """Check a prediction source before a run: a path, folder or glob must exist, and each of its videos must
    open and decode (see :func:`check_video`). Streams (URLs, webcams) and in-memory images are not checked."""
    from mttrain._ultralytics import image_suffixes, video_suffixes

    if isinstance(source, (list, tuple)):
        infos = [check_sources(s, vid_stride) for s in source if isinstance(s, (str, Path))]
        out = SourceInfo(stream=len(infos) < len(source) or any(i.stream for i in infos))
        for info in infos:
            out.videos.update(info.videos)
            out.images += info.images
        return out
    if not isinstance(source, (str, Path)):
        return SourceInfo(stream=True)
    text = str(source)
    if text.isnumeric() or text.lower().startswith(STREAM_PREFIXES) or text.endswith(".streams") or text == "screen":
        return SourceInfo(stream=True)
    if text.endswith((".txt", ".csv")) and os.path.isfile(text):  # a list of sources, one a line: ultralytics reads it
        return SourceInfo(stream=True)
    info = SourceInfo()
    videos, images = video_suffixes(), image_suffixes()
    for file in _files(text):
        suffix = Path(file).suffix.lower()
        if suffix in videos:
            info.videos[file] = -(-check_video(file) // max(vid_stride, 1))
        elif suffix in images:
            info.images += 1
    return info


def resolve_tracker(tracker: str | Path) -> Path:
    """The tracker YAML ``tracker`` names: a file, or one of ultralytics' (``bytetrack.yaml``, ``botsort.yaml``),
    checked: YAML, a ``tracker_type`` ultralytics has, every key that tracker type's shipped YAML has, and no
    ReID model to download.

    Raises:
        ArgumentError: an unknown name. InputError: a file that is not a usable tracker configuration.
    """
    import yaml

    from mttrain._ultralytics import shipped_trackers, tracker_types

    shipped = shipped_trackers()
    path = Path(tracker)
    if not path.is_file():
        if str(tracker) not in shipped:
            names = sorted(shipped, key=lambda n: (n not in ("bytetrack.yaml", "botsort.yaml"), n != "bytetrack.yaml", n))
            raise ArgumentError(f"--tracker {tracker}: no such tracker file; give a YAML file or one of "
                                f"{', '.join(names)}")
        path = shipped[str(tracker)]
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"not a readable tracker YAML ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                         file=path) from e
    if not isinstance(cfg, dict) or cfg.get("tracker_type") not in tracker_types():
        found = cfg.get("tracker_type") if isinstance(cfg, dict) else type(cfg).__name__
        raise InputError(f"expected tracker_type: one of {', '.join(sorted(tracker_types()))}; found {found!r}",
                         file=path)
    default = yaml.safe_load(shipped[f"{cfg['tracker_type']}.yaml"].read_text())
    missing = sorted(set(default) - set(cfg))
    if missing:
        raise InputError(f"tracker_type {cfg['tracker_type']} needs {', '.join(missing)} (see ultralytics' "
                         f"{cfg['tracker_type']}.yaml)", file=path)
    model = str(cfg.get("model", "auto"))
    if cfg.get("with_reid") and model != "auto" and not Path(model).is_file():
        raise InputError(f"with_reid names the ReID model {model!r}, which is not a file (mttrain never downloads "
                         "weights)", file=path)
    return path


def _round(values, digits: int = 2) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def result_objects(result) -> list[dict]:
    """One dict per object of a ``MultiTaskResults``: class, name, score, box_xyxy and polygon_xy (pixels),
    keypoints (``[x, y, confidence]`` per point, None for classes without keypoints) and, when tracked,
    track_id."""
    if result.boxes is None or not len(result.boxes):
        return []
    boxes = result.boxes.data.cpu().numpy()
    ids = result.boxes.id.int().tolist() if result.boxes.is_track else [None] * len(boxes)
    polygons = result.masks.xy if result.masks is not None else [np.zeros((0, 2))] * len(boxes)
    kpts = result.keypoints.data.cpu().numpy() if result.keypoints is not None else None
    keypoint_classes = set(getattr(result, "keypoint_classes", ()))
    out = []
    for i, row in enumerate(boxes):
        cls = int(row[-1])
        item = {"class": cls, "name": result.names.get(cls, str(cls)), "score": round(float(row[-2]), 4),
                "box_xyxy": _round(row[:4]), "polygon_xy": _round(polygons[i]),
                "keypoints": None}
        if kpts is not None and cls in keypoint_classes:
            k = kpts[i]
            item["keypoints"] = [[round(float(x), 2), round(float(y), 2), round(float(c), 4)] for x, y, c in
                                 (k if k.shape[1] == 3 else np.concatenate([k, np.ones((len(k), 1))], 1))]
        if ids[i] is not None:
            item["track_id"] = ids[i]
        out.append(item)
    return out


def model_header(model) -> dict:
    """names, keypoint classes and skeleton of a :class:`mttrain.MultiTaskYOLO`, for the JSON files."""
    import ast

    source = model.export_metadata if model.export_metadata is not None else vars(model.model)
    skeleton = source.get("skeleton")
    if isinstance(skeleton, str):
        try:
            skeleton = ast.literal_eval(skeleton)
        except (ValueError, SyntaxError):
            skeleton = None
    return {"names": {int(k): v for k, v in model.names.items()}, "keypoint_classes": model.keypoint_classes,
            "skeleton": skeleton}


class _AtomicJSON:
    """A JSON file written to a temporary file beside it and renamed into place by ``close()``; ``discard()``
    (or leaving a ``with`` block by an exception) removes it: never half a file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._file = os.fdopen(fd, "w")

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def _finish(self) -> None:
        self._file.close()
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from e

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is None:
            self.close()
        else:
            self.discard()


class DetectionsJSON(_AtomicJSON):
    """``{"names", "keypoint_classes", "skeleton", "detections": [...]}``: every detection of a run, each with its
    source, frame (1-based for videos, None for images), class, name, score, box_xyxy, polygon_xy, keypoints
    (and track_id when tracked). Written as the run goes: memory stays flat on long videos.

    >>> with DetectionsJSON(path, model) as out:                    # doctest: +SKIP
    ...     for result in model.predict("clip.mp4", stream=True):
    ...         out.add(result)
    """

    def __init__(self, path: Path, model):
        super().__init__(path)
        header = json.dumps(model_header(model))
        self._file.write(header[:-1] + ', "detections": [')
        self._first = True
        self.count = 0

    def add(self, result) -> None:
        for item in result_objects(result):
            item = {"source": str(result.path), "frame": getattr(result, "frame", None), **item}
            self._file.write(("\n" if self._first else ",\n") + json.dumps(item))
            self._first = False
            self.count += 1

    def close(self) -> None:
        self._file.write("\n]}\n")
        self._finish()


class TracksJSON(_AtomicJSON):
    """``{"names", "keypoint_classes", "skeleton", "tracker", "tracks": [...]}``: a tracking run grouped by track.
    Each track: source, track_id, class (its most frequent), name, frames (first and last) and ``detections``,
    one per frame it was seen in: frame, class, score, box_xyxy, polygon_xy, keypoints. Held in memory until
    ``close()`` (a track's detections cannot be written before the video ends)."""

    def __init__(self, path: Path, model, tracker: str):
        super().__init__(path)
        self._header = {**model_header(model), "tracker": str(tracker)}
        self._tracks: dict[tuple[str, int], list[dict]] = {}

    def add(self, result) -> None:
        for item in result_objects(result):
            track_id = item.pop("track_id", None)
            if track_id is None:
                continue
            self._tracks.setdefault((str(result.path), track_id), []).append(
                {"frame": getattr(result, "frame", None), **item})

    def close(self) -> None:
        tracks = []
        for (source, track_id), seen in sorted(self._tracks.items()):
            classes = [d["class"] for d in seen]
            cls = max(set(classes), key=lambda c: (classes.count(c), -c))
            frames = [d["frame"] for d in seen if d["frame"] is not None]
            tracks.append({"source": source, "track_id": track_id, "class": cls, "name": seen[0]["name"] if
                           seen[0]["class"] == cls else next(d["name"] for d in seen if d["class"] == cls),
                           "first_frame": min(frames, default=None), "last_frame": max(frames, default=None),
                           "detections": [{k: v for k, v in d.items() if k != "name"} for d in seen]})
        json.dump({**self._header, "tracks": tracks}, self._file)
        self._file.write("\n")
        self._finish()


def read_track_rows(file: Path, layout) -> list[tuple[int, object]]:
    """``(track_id, YoloRow)`` for each row of a label file ``mttrain track --save-txt`` wrote: a multitask row
    (``mtdata.formats.yolo.rows``) with the track id appended as its last value, as ultralytics appends it."""
    from mtdata.formats.yolo.rows import RowProblem, parse_row

    out = []
    for number, line in enumerate(Path(file).read_text().splitlines(), 1):
        if not line.strip():
            continue
        head, _, last = line.rstrip().rpartition(" ")
        if not last.isdigit():
            raise InputError(f"expected a track id (an integer) as the last value, found {last!r}", file=file,
                             line=number)
        try:
            out.append((int(last), parse_row(head, layout)))
        except RowProblem as e:
            raise InputError(str(e), file=file, line=number) from e
    return out
