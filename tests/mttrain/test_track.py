"""Tracking on a real video path: `mtdata synth --video` renders a clip with ground-truth tracks, a tiny model is
trained on its odd frames (benchmarks/tracking.py's recipe), `mttrain track` follows the objects through all
of it, and motmetrics and OKS score the tracks. The assertions are about the pipeline (ids that stay with
their object, each id with its own mask and keypoints, the same ids in every output and in the frame-by-frame
API) with margins a tiny CPU model clears every time, not about a detector's accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import tracking  # noqa: E402

from mtdata.formats.yolo.data_yaml import read_data_yaml  # noqa: E402
from mttrain.cli import app  # noqa: E402
from mttrain.video import read_track_rows  # noqa: E402

runner = CliRunner()
FRAMES, SIZE, OBJECTS, SEED, EPOCHS = 64, 96, 3, 7, 40


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """The clip (video.avi, annotations/video.json, a dataset of its odd frames) and a model trained on it."""
    work = tmp_path_factory.mktemp("track-clip")
    clip = tracking.make_clip(work, FRAMES, SIZE, OBJECTS, SEED)
    return {**clip, "best": tracking.train(clip["data"], work / "runs", EPOCHS, SIZE)}


def run_track(clip_run, tmp_path, name, *extra):
    result = runner.invoke(app, ["track", str(clip_run["best"]), str(clip_run["video"]), "--imgsz", str(SIZE),
                                 "--save-json", "--project", str(tmp_path), "--name", name, *extra])
    assert result.exit_code == 0, result.output
    assert f"{FRAMES} images/frames" in result.output and "frames/s" in result.output
    return tmp_path / name


def box_iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.slow
def test_tracks_keep_their_ids_masks_and_keypoints(clip_run, tmp_path):
    run = run_track(clip_run, tmp_path, "track", "--save-txt")
    scores = tracking.score(clip_run["annotations"], run / "tracks.json")
    print(json.dumps(scores))
    assert scores["frames"] == FRAMES and scores["gt_tracks"] == OBJECTS
    assert scores["mota"] >= 0.5 and scores["idf1"] >= 0.5 and scores["id_switches"] <= 4, scores
    assert all(n <= 3 for n in scores["predicted_ids_per_gt_track"].values()), scores  # an id stays with its object
    figures = [1, 3]  # lanes 0 and 2 hold stars (keypoints), lane 1 a disc
    assert sorted(scores["oks_per_track"]) == figures and min(scores["oks_per_track"].values()) > 0.15, scores

    data = json.loads((run / "tracks.json").read_text())
    layout = read_data_yaml(clip_run["data"]).layout()
    by_frame: dict[int, dict[int, dict]] = {}
    for track in data["tracks"]:
        assert track["source"] == str(clip_run["video"])
        for d in track["detections"]:
            by_frame.setdefault(d["frame"], {})[track["track_id"]] = d
            assert (d["keypoints"] is None) == (d["class"] == 1)  # discs carry no keypoints
    pairs = 0
    for seen in by_frame.values():  # each id's mask and keypoints are its own object's, not a neighbour's
        for track_id, d in seen.items():
            polygon = np.array(d["polygon_xy"])
            own = [*polygon.min(0), *polygon.max(0)]
            assert max(seen, key=lambda other: box_iou(own, seen[other]["box_xyxy"])) == track_id
            if d["keypoints"] is not None:
                centre = np.array(d["keypoints"])[:, :2].mean(0)
                nearest = min(seen, key=lambda o: np.linalg.norm(centre - np.reshape(seen[o]["box_xyxy"], (2, 2)).mean(0)))
                assert nearest == track_id
            pairs += len(seen) > 1
    assert pairs >= FRAMES  # checked against other objects in the same frame, many times
    for frame in range(1, FRAMES + 1):  # the label rows carry the same ids, classes and polygons
        rows = read_track_rows(run / "labels" / f"video_{frame}.txt", layout)
        assert {i: row.class_id for i, row in rows} == {i: d["class"] for i, d in by_frame.get(frame, {}).items()}
    cap = cv2.VideoCapture(str(run / "video.avi"))  # the annotated video, finished
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


@pytest.mark.slow
def test_frame_by_frame_api_with_persist_gives_the_ids_of_the_video_run(clip_run, tmp_path):
    from mttrain import MultiTaskYOLO

    def ids(result):
        return sorted(zip(result.boxes.id.int().tolist(), result.boxes.cls.int().tolist())) if result.boxes.is_track else []

    model = MultiTaskYOLO(clip_run["best"])
    whole = [ids(r) for r in model.track(str(clip_run["video"]), stream=True, imgsz=SIZE, verbose=False,
                                         project=str(tmp_path))]
    stepwise = MultiTaskYOLO(clip_run["best"])
    cap = cv2.VideoCapture(str(clip_run["video"]))
    one_by_one = []
    while (frame := cap.read())[0]:
        (result,) = stepwise.track(frame[1], persist=True, imgsz=SIZE, verbose=False, project=str(tmp_path))
        one_by_one.append(ids(result))
        assert len(result.masks or []) == len(result.keypoints or []) == len(result.boxes)  # each id, its own
    assert len(whole) == FRAMES and one_by_one == whole
    assert sum(map(len, whole)) >= FRAMES  # the objects are followed, not lost


@pytest.mark.slow
def test_predict_video_writes_one_json_label_files_and_the_annotated_video(clip_run, tmp_path):
    result = runner.invoke(app, ["predict", str(clip_run["best"]), str(clip_run["video"]), "--imgsz", str(SIZE),
                                 "--save-json", "--save-txt", "--project", str(tmp_path), "--name", "p"])
    assert result.exit_code == 0, result.output
    assert f"{FRAMES} images/frames" in result.output and "frames/s" in result.output
    data = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert data["names"] == {"0": "figure", "1": "disc"} and data["skeleton"] == [[0, 1], [0, 2], [0, 3], [0, 4]]
    frames = {d["frame"] for d in data["detections"]}
    assert frames <= set(range(1, FRAMES + 1)) and len(frames) >= FRAMES // 2
    first = data["detections"][0]
    assert set(first) == {"source", "frame", "class", "name", "score", "box_xyxy", "polygon_xy", "keypoints"}
    assert first["source"] == str(clip_run["video"]) and "track_id" not in first
    assert len(list((tmp_path / "p" / "labels").glob("video_*.txt"))) == FRAMES
    cap = cv2.VideoCapture(str(tmp_path / "p" / "video.avi"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


@pytest.mark.slow
def test_smooth_keeps_the_tracks_and_steadies_their_keypoints(clip_run, tmp_path):
    plain = run_track(clip_run, tmp_path, "plain", "--no-save")
    smooth = run_track(clip_run, tmp_path, "smooth", "--no-save", "--smooth")

    def boxes(run):
        return {(t["track_id"], d["frame"]): d["box_xyxy"] for t in json.loads((run / "tracks.json").read_text())["tracks"]
                for d in t["detections"]}

    assert boxes(plain) == boxes(smooth)  # smoothing touches keypoints only
    assert tracking.keypoint_jitter(smooth / "tracks.json") < 0.8 * tracking.keypoint_jitter(plain / "tracks.json")
