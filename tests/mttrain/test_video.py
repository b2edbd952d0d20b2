"""mttrain.video: sources checked before a run, tracker files, tracked label rows, JSON files, bad input on the
command line (one line, exit 2, no half-written video)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtdata.errors import InputError
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mttrain.cli import app
from mttrain.errors import ArgumentError
from mttrain.predict import MultiTaskResults
from mttrain.video import (
    DetectionsJSON,
    TracksJSON,
    check_sources,
    check_video,
    read_track_rows,
    resolve_tracker,
    result_objects,
)

runner = CliRunner()


def write_video(path: Path, frames: int = 6, size: int = 64) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (size, size))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size, size, 3), 20 * i, np.uint8))
    writer.release()
    return path


def undecodable_video(path: Path) -> Path:
    """An AVI OpenCV opens (its MJPG header is intact) but whose frames hold no JPEG data."""
    data = bytearray(write_video(path.with_name("intact.avi")).read_bytes())
    at = data.find(b"movi")
    while (at := data.find(b"00dc", at)) >= 0:
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        data[at + 8 : at + 8 + size] = bytes(size)
        at += 8 + size
    path.write_bytes(bytes(data))
    return path


def unknown_codec_video(path: Path) -> Path:
    """An AVI whose codec (FourCC ZZZZ) no decoder knows: OpenCV does not open it."""
    path.write_bytes(write_video(path.with_name("intact2.avi")).read_bytes().replace(b"MJPG", b"ZZZZ"))
    return path


# --- sources ------------------------------------------------------------------------------------------------------


def test_sources_count_frames_of_videos_and_images(tmp_path):
    write_video(tmp_path / "a.avi", frames=6)
    write_video(tmp_path / "b.avi", frames=4)
    cv2.imwrite(str(tmp_path / "c.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")  # ultralytics skips it, and so does the count
    info = check_sources(str(tmp_path))
    assert info.images == 1 and sorted(Path(v).name for v in info.videos) == ["a.avi", "b.avi"]
    assert info.frames == 11
    assert check_sources(str(tmp_path / "a.avi"), vid_stride=4).frames == 2  # ceil(6 / 4), as ultralytics steps
    assert check_sources(str(tmp_path / "*.avi")).frames == 10
    assert check_sources("rtsp://camera/stream").stream and check_sources(np.zeros((8, 8, 3))).frames is None


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "no such image, video, folder or glob match"),
    (lambda d: d / "nothing-*.mp4", "no file matches this glob"),
    (lambda d: (d / "noise.mp4").write_bytes(os.urandom(4000)) and d / "noise.mp4", "OpenCV cannot open this video"),
    (lambda d: unknown_codec_video(d / "zzzz.avi"), "OpenCV cannot open this video"),
    (lambda d: undecodable_video(d / "empty.avi"), r"decodes no frame from it \(codec 'MJPG'"),
], ids=["missing", "empty-glob", "not-a-video", "unknown-codec", "undecodable-frames"])
def test_bad_sources_are_one_error_naming_the_file(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(InputError, match=message) as error:
        check_sources(str(source))
    assert str(source) in str(error.value)


def test_a_readable_video_reports_its_frames(tmp_path):
    assert check_video(write_video(tmp_path / "v.avi", frames=7)) == 7


# --- trackers -----------------------------------------------------------------------------------------------------


def test_shipped_trackers_resolve_to_ultralytics_files():
    for name in ("bytetrack.yaml", "botsort.yaml"):
        path = resolve_tracker(name)
        assert path.name == name and path.is_file()


@pytest.mark.parametrize("text, error, message", [
    (None, ArgumentError, "no such tracker file; give a YAML file or one of bytetrack.yaml, botsort.yaml, deepocsort"),
    ("tracker_type: sort\n", InputError, "expected tracker_type: one of botsort, bytetrack"),
    ("[1, 2\n", InputError, "not a readable tracker YAML"),
    ("tracker_type: bytetrack\ntrack_high_thresh: 0.3\n", InputError, "tracker_type bytetrack needs fuse_score"),
], ids=["unknown-name", "unknown-type", "not-yaml", "missing-keys"])
def test_bad_tracker_files_are_refused(tmp_path, text, error, message):
    tracker = "kalman.yaml"
    if text is not None:
        tracker = tmp_path / "mine.yaml"
        tracker.write_text(text)
    with pytest.raises(error, match=message):
        resolve_tracker(tracker)


def test_a_reid_model_that_is_not_a_file_is_refused(tmp_path):
    text = resolve_tracker("botsort.yaml").read_text().replace("with_reid: False", "with_reid: True")
    tracker = tmp_path / "reid.yaml"
    tracker.write_text(text.replace("model: auto", "model: yolo26n-cls.pt"))
    with pytest.raises(InputError, match="not a file \\(mttrain never downloads weights\\)"):
        resolve_tracker(tracker)


# --- tracked results: rows and JSON -------------------------------------------------------------------------------


def tracked_result(frame: int = 3) -> MultiTaskResults:
    """Two tracked objects on a 64 x 64 image: a figure (class 0, 5 keypoints) id 7 and a disc (class 1) id 2."""
    masks = torch.zeros((2, 64, 64))
    masks[0, 10:30, 10:30] = 1
    masks[1, 40:60, 35:60] = 1
    boxes = torch.tensor([[10.0, 10, 30, 30, 7, 0.9, 0], [35, 40, 60, 60, 2, 0.8, 1]])  # xyxy, id, conf, cls
    kpts = torch.zeros((2, 5, 3))
    kpts[0] = torch.tensor([[20.0, 12, 0.9], [12, 20, 0.9], [28, 20, 0.9], [14, 28, 0.9], [26, 28, 0.2]])
    return MultiTaskResults(np.zeros((64, 64, 3), np.uint8), path="clip.avi", names={0: "figure", 1: "disc"},
                            boxes=boxes, masks=masks, keypoints=kpts, keypoint_classes=[0], frame=frame)


def test_tracked_rows_end_with_the_track_id_and_read_back(tmp_path, tiny_data):
    result = tracked_result()
    file = Path(result.save_txt(tmp_path / "clip_3.txt"))
    lines = file.read_text().splitlines()
    assert [line.split()[-1] for line in lines] == ["7", "2"]
    rows = read_track_rows(file, read_data_yaml(tiny_data).layout())
    assert [(track_id, row.class_id) for track_id, row in rows] == [(7, 0), (2, 1)]
    assert rows[0][1].keypoints_xyn.shape == (5, 3) and rows[0][1].keypoints_xyn[4, 2] == 0  # conf 0.2: not visible
    assert rows[1][1].keypoints_xyn is None
    untracked = MultiTaskResults(result.orig_img, path="x.jpg", names=result.names, boxes=result.boxes.data[:, [0, 1, 2, 3, 5, 6]],
                                 masks=result.masks.data, keypoints=result.keypoints.data, keypoint_classes=[0])
    assert [len(line.split()) for line in Path(untracked.save_txt(tmp_path / "x.txt")).read_text().splitlines()] == \
        [len(line.split()) - 1 for line in lines]  # plain predict rows: no id


def test_a_row_without_a_track_id_is_named(tmp_path, tiny_data):
    file = tmp_path / "f.txt"
    file.write_text("1 0.1 0.1 0.2 0.1 0.2 0.2 x\n")
    with pytest.raises(InputError, match=r"f.txt:1: expected a track id \(an integer\) as the last value, found 'x'"):
        read_track_rows(file, read_data_yaml(tiny_data).layout())


class FakeModel:
    names = {0: "figure", 1: "disc"}
    keypoint_classes = [0]
    export_metadata = None

    class model:  # noqa: N801  what vars(model.model) reads
        skeleton = [[0, 1]]


def test_result_objects_carry_their_own_mask_and_keypoints():
    first, second = result_objects(tracked_result())
    assert first["track_id"] == 7 and first["class"] == 0 and first["name"] == "figure"
    assert first["box_xyxy"] == [10.0, 10.0, 30.0, 30.0] and len(first["keypoints"]) == 5
    xy = np.array(first["polygon_xy"])
    assert xy[:, 0].min() >= 9 and xy[:, 0].max() <= 31  # the polygon of its own mask
    assert second["keypoints"] is None and np.array(second["polygon_xy"])[:, 1].min() >= 39


def test_detections_json_streams_one_file_and_discards_on_error(tmp_path):
    with DetectionsJSON(tmp_path / "predictions.json", FakeModel) as out:
        out.add(tracked_result(frame=1))
        out.add(tracked_result(frame=2))
    data = json.loads((tmp_path / "predictions.json").read_text())
    assert data["names"] == {"0": "figure", "1": "disc"} and data["skeleton"] == [[0, 1]]
    assert [(d["source"], d["frame"], d["class"]) for d in data["detections"]] == \
        [("clip.avi", 1, 0), ("clip.avi", 1, 1), ("clip.avi", 2, 0), ("clip.avi", 2, 1)]
    with pytest.raises(RuntimeError):
        with DetectionsJSON(tmp_path / "broken.json", FakeModel) as out:
            out.add(tracked_result())
            raise RuntimeError("stream dropped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.json"]  # no half file, no temporary


def test_tracks_json_groups_by_track(tmp_path):
    with TracksJSON(tmp_path / "tracks.json", FakeModel, "bytetrack.yaml") as out:
        for frame in (1, 2, 4):
            out.add(tracked_result(frame))
    data = json.loads((tmp_path / "tracks.json").read_text())
    assert data["tracker"] == "bytetrack.yaml"
    assert [(t["track_id"], t["class"], t["first_frame"], t["last_frame"]) for t in data["tracks"]] == \
        [(2, 1, 1, 4), (7, 0, 1, 4)]
    assert [d["frame"] for d in data["tracks"][1]["detections"]] == [1, 2, 4]
    assert all(len(d["keypoints"]) == 5 for d in data["tracks"][1]["detections"])


# --- the command line on bad input --------------------------------------------------------------------------------


@pytest.fixture()
def weights(tiny_model, tmp_path):
    torch.save({"model": tiny_model}, tmp_path / "m.pt")
    return tmp_path / "m.pt"


@pytest.mark.parametrize("command", ["predict", "track"])
@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "missing.mp4: no such image, video or folder"),
    (lambda d: unknown_codec_video(d / "zzzz.avi"), "zzzz.avi: OpenCV cannot open this video"),
    (lambda d: undecodable_video(d / "empty.avi"), "empty.avi: OpenCV opens this video but decodes no frame"),
], ids=["missing", "unknown-codec", "undecodable"])
def test_bad_videos_are_one_line_exit_2_and_nothing_written(weights, tmp_path, command, make, message):
    source = make(tmp_path)
    result = runner.invoke(app, [command, str(weights), str(source), "--imgsz", "64", "--save-json", "--save-txt",
                                 "--project", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not list((tmp_path / "runs").rglob("*.*")) if (tmp_path / "runs").exists() else True


@pytest.mark.parametrize("given", [["--tracker", "sort.yaml"], ["tracker=sort.yaml"]], ids=["option", "key-value"])
def test_unknown_tracker_is_one_line_exit_2(weights, tmp_path, given):
    video = write_video(tmp_path / "v.avi")
    result = runner.invoke(app, ["track", str(weights), str(video), *given, "--project", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "--tracker sort.yaml: no such tracker file" in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_a_failing_run_removes_the_video_it_was_writing(weights, tmp_path):
    """An error mid-video (here: raised by a callback at the 4th frame) leaves no half-written annotated video;
    the same run without the error finishes it."""
    from mttrain import MultiTaskYOLO

    video = write_video(tmp_path / "clip.avi", frames=8)
    model = MultiTaskYOLO(weights)
    seen = []

    def fail_at_4(predictor):
        seen.append(1)
        if len(seen) == 4:
            raise RuntimeError("the stream dropped")

    model.add_callback("on_predict_batch_end", fail_at_4)
    with pytest.raises(RuntimeError, match="the stream dropped"):
        list(model.predict(str(video), stream=True, imgsz=64, save=True, project=str(tmp_path), name="broken",
                           verbose=False))
    assert not list((tmp_path / "broken").glob("clip.*"))
    done = MultiTaskYOLO(weights).predict(str(video), stream=True, imgsz=64, save=True, project=str(tmp_path),
                                          name="whole", verbose=False)
    assert sum(1 for _ in done) == 8
    cap = cv2.VideoCapture(str(tmp_path / "whole" / "clip.avi"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
