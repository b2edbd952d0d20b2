"""What `mttrain predict` and `Results` write: label rows mtdata reads back, one file per video frame, the
dataset's skeleton on saved images, and everything under PROJECT (trained model from ``trained_run``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import read_label_file
from mttrain.cli import app

runner = CliRunner()
# trained_run holds a 1-epoch model: its scores are ~1e-4, so the tests predict at conf 1e-5 to get objects


def val_images(data_yaml: Path) -> list[Path]:
    return sorted((data_yaml.parent / "images" / "val").iterdir())


def test_cli_save_txt_and_results_save_txt_write_the_same_rows(trained_run, tiny_data, tmp_path):
    from mttrain import MultiTaskYOLO

    source = val_images(tiny_data)[0].parent
    result = runner.invoke(app, ["predict", str(trained_run["best"]), str(source), "--save-txt", "--conf", "0.00001",
                                 "--imgsz", "64", "--project", str(tmp_path), "--name", "cli"])
    assert result.exit_code == 0, result.output
    layout = read_data_yaml(tiny_data).layout()
    model = MultiTaskYOLO(trained_run["best"])
    rows = 0
    for r in model.predict(str(source), conf=0.00001, imgsz=64, verbose=False):
        api = Path(r.save_txt(tmp_path / "api" / (Path(r.path).stem + ".txt")))
        cli = tmp_path / "cli" / "labels" / api.name
        assert cli.read_text() == api.read_text()
        parsed = read_label_file(cli, layout)
        assert not parsed.problems, parsed.problems[:3]
        rows += len(parsed.rows)
    assert rows > 0


def write_video(path: Path, frames: int, size: int = 96) -> Path:
    image = cv2.resize(cv2.imread(str(next(p for p in Path(path.parent).glob("*.jpg")))) if list(
        path.parent.glob("*.jpg")) else np.full((size, size, 3), 127, np.uint8), (size, size))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (size, size))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.roll(image, 3 * i, axis=1))
    writer.release()
    return path


def test_video_save_txt_writes_one_label_file_per_frame(trained_run, tiny_data, tmp_path):
    import shutil

    shutil.copy(val_images(tiny_data)[0], tmp_path / "frame.jpg")
    video = write_video(tmp_path / "clip.avi", frames=10)
    result = runner.invoke(app, ["predict", str(trained_run["best"]), str(video), "--save-txt", "--conf", "0.00001",
                                 "--imgsz", "64", "--project", str(tmp_path), "--name", "video"])
    assert result.exit_code == 0, result.output
    labels = sorted(p.name for p in (tmp_path / "video" / "labels").iterdir())
    assert labels == sorted(f"clip_{i}.txt" for i in range(1, 11))  # ultralytics' names: STEM_FRAME.txt
    layout = read_data_yaml(tiny_data).layout()
    assert all(not read_label_file(tmp_path / "video" / "labels" / n, layout).problems for n in labels)


def test_runs_go_under_the_training_project_or_the_current_folder(trained_run, tiny_data, tmp_path, monkeypatch):
    """Never ultralytics' global runs folder (settings.runs_dir, or the repository checkout under pytest)."""
    from mttrain import MultiTaskYOLO

    project = tmp_path / "P"
    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, project=str(project), name="train",
                plots=False, val=False, verbose=False)
    model.val(data=str(tiny_data), imgsz=64, batch=8, plots=False)
    (result,) = model.predict(str(val_images(tiny_data)[0]), imgsz=64, save=True, verbose=False)
    assert sorted(p.name for p in project.iterdir()) == ["predict", "train", "val"]
    assert (project / "val" / "metrics.json").is_file()
    assert Path(result.save_dir) == (project / "predict").resolve()

    monkeypatch.chdir(tmp_path)
    fresh = MultiTaskYOLO(trained_run["best"])
    fresh.val(data=str(tiny_data), imgsz=64, batch=8, plots=False)
    assert (tmp_path / "runs" / "multitask" / "val" / "metrics.json").is_file()
    (result,) = fresh.predict(str(val_images(tiny_data)[0]), imgsz=64, verbose=False, save=True, project="mine")
    assert Path(result.save_dir) == (tmp_path / "mine" / "predict").resolve()


def test_saved_images_and_results_plot_draw_the_dataset_skeleton(trained_run, tiny_data, tmp_path, monkeypatch):
    """5 keypoints (not COCO's 17): ultralytics draws no limbs for them on its own."""
    import torch

    import mttrain._ultralytics as mu
    from mttrain import MultiTaskYOLO
    from mttrain._ultralytics import Results

    monkeypatch.setattr(mu, "_SKELETONS", {})
    model = MultiTaskYOLO(trained_run["best"])
    skeleton = model.model.skeleton
    assert skeleton and model.model.kpt_shape[0] == 5
    image = np.zeros((128, 128, 3), np.uint8)
    points = torch.tensor([[[64.0, 20.0, 1.0], [20.0, 64.0, 1.0], [108.0, 64.0, 1.0], [40.0, 108.0, 1.0],
                            [88.0, 108.0, 1.0]]])  # no point near the middle of another pair

    def plot():
        r = Results(image, path="x.jpg", names=model.names, boxes=torch.tensor([[5.0, 5, 120, 120, 0.9, 0]]),
                    keypoints=points)
        return r.plot(labels=False, boxes=False)

    plain = plot()
    model.predict(image, imgsz=64, verbose=False)  # the predictor registers the model's skeleton
    drawn = plot()
    a, b = skeleton[0]
    (xa, ya), (xb, yb) = points[0, a, :2].tolist(), points[0, b, :2].tolist()
    for t in (0.4, 0.5, 0.6):  # along the limb, away from both points' circles
        pixel = int(ya + t * (yb - ya)), int(xa + t * (xb - xa))
        assert (plain[pixel] == 0).all() and drawn[pixel].any(), f"a limb of the data.yaml skeleton at {pixel}"
