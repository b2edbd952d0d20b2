"""The synthetic tracking video: frames OpenCV reads back, ground truth that matches the pixels, unbroken tracks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.synth import DISC_ID, FIGURE_ID
from mtdata.synth_video import VideoSpec, make_video, read_tracks, write_synth_video

runner = CliRunner()


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_reads_back_with_every_frame(tmp_path, suffix):
    spec = VideoSpec(frames=24, size=96, objects=3, fps=12, suffix=suffix)
    files = write_synth_video(tmp_path, spec, seed=3)
    assert files["video"].name == f"video{suffix}"
    cap = cv2.VideoCapture(str(files["video"]))
    assert cap.isOpened()
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    assert len(decoded) == 24 and decoded[0].shape == (96, 96, 3)
    rendered = [frame for _, frame, _ in make_video(spec, seed=3)]
    for a, b in zip(decoded, rendered):  # lossy codecs, but the same picture
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 12


def test_ground_truth_matches_the_pixels_and_tracks_are_unbroken(tmp_path):
    spec = VideoSpec(frames=40, size=128, objects=4)
    files = write_synth_video(tmp_path, spec, seed=1)
    coco = json.loads(files["annotations"].read_text())
    assert coco["videos"][0]["frames"] == 40 and coco["videos"][0]["file_name"] == "video.avi"
    assert [im["frame_id"] for im in coco["images"]] == list(range(1, 41))  # 1-based, as ultralytics counts frames
    frames = read_tracks(files["annotations"])
    classes = {}
    centres = {}
    for (index, image, objects), (frame_id, truth) in zip(make_video(spec, seed=1), sorted(frames.items())):
        assert index == frame_id and sorted(truth) == [1, 2, 3, 4]  # every track in every frame, once
        for track_id, ann in truth.items():
            classes.setdefault(track_id, ann["category_id"])
            assert ann["category_id"] == classes[track_id]  # a track never changes class
            polygon = np.array(ann["segmentation"][0]).reshape(-1, 2)
            assert polygon.min() >= 0 and polygon.max() <= spec.size
            mask = np.zeros((spec.size, spec.size), np.uint8)
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
            inside = image[cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0]
            assert len(inside) > 20 and (inside == inside[0]).all()  # the object's own flat colour fills its mask
            x, y, w, h = ann["bbox"]
            assert abs(x - polygon[:, 0].min()) < 0.01 and abs(x + w - polygon[:, 0].max()) < 0.01
            if ann["category_id"] == FIGURE_ID:
                kpts = np.array(ann["keypoints"]).reshape(5, 3)
                assert (kpts[:, 2] == 2).all()
                # the tips are the star's outer corners
                assert all(np.min(np.linalg.norm(polygon - k[:2], axis=1)) < 0.02 for k in kpts)
            else:
                assert "keypoints" not in ann
            centre = polygon.mean(0)
            if track_id in centres:  # objects move a few pixels a frame: a tracker can follow them
                assert np.linalg.norm(centre - centres[track_id]) < 0.05 * spec.size
            centres[track_id] = centre
    assert sorted(set(classes.values())) == [FIGURE_ID, DISC_ID]


def test_mtdata_convert_reads_the_ground_truth(tmp_path):
    from mtdata.convert.dataset import convert_coco

    files = write_synth_video(tmp_path / "v", VideoSpec(frames=8, size=96), frames_as_images=True)
    result = convert_coco([files["annotations"]], tmp_path / "ds", images_dir=tmp_path / "v" / "images", split="train")
    assert result.splits == {"train": 8} and not result.invalid
    assert dict(result.rows_per_class) == {"figure": 16, "disc": 8}


def test_cli_writes_a_video_or_says_why_not(tmp_path):
    out = tmp_path / "clip"
    result = runner.invoke(app, ["synth", str(out), "--video", "12", "--size", "64", "--objects", "2", "--frames"])
    assert result.exit_code == 0, result.output
    assert (out / "video.avi").is_file() and len(list((out / "images" / "video").glob("*.jpg"))) == 12
    assert len(read_tracks(out / "annotations" / "video.json")) == 12
    bad = runner.invoke(app, ["synth", str(tmp_path / "bad"), "--video", "5", "--suffix", ".mkv"])
    assert bad.exit_code == 2 and "video suffix must be one of .avi, .mp4, found '.mkv'" in bad.output
    assert not (tmp_path / "bad").exists()  # nothing half-written
