"""``mtdata view``: the FiftyOne dataset agrees with the label files; predictions, evaluation, bad input.

Datasets are made with ``mtdata synth`` + ``mtdata convert`` (``datasets`` in conftest.py); tests that
talk to MongoDB use the session's private mongod (``fiftyone_db`` in tests/conftest.py). The two write
paths (public API, ``mtdata.view.docs``) are compared in test_docs.py.
"""

from __future__ import annotations

import math
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtdata.cli import app
from mtdata.errors import MtdataError
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.formats.yolo.rows import read_label_file, rows_to_labels
from mtdata.geometry import polygon_to_mask

runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def centre_mask(polygon_xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Reference rasterization, independent of pycocotools: a pixel is in when its centre is (shapely)."""
    import shapely

    ys, xs = np.mgrid[0:height, 0:width]
    return shapely.contains_xy(shapely.Polygon(polygon_xy), xs + 0.5, ys + 0.5)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# --- pure conversions (no database) -----------------------------------------------------


@pytest.mark.parametrize(
    "polygon, size",
    [
        (np.array([[10.3, 5.2], [60.7, 12.9], [40.1, 70.4], [8.8, 44.0]]), (100, 80)),  # inside
        (np.array([[-5.0, -3.0], [30.0, 2.0], [20.0, 25.0]]), (64, 48)),  # over the top-left corner: clipped
        (np.array([[50.0, 30.0], [70.0, 30.0], [70.0, 50.0], [50.0, 50.0]]), (64, 48)),  # over the bottom-right
        (np.array([[3.0, 3.0], [3.6, 3.0], [3.6, 3.6]]), (16, 16)),  # smaller than a pixel
    ],
    ids=["inside", "top-left", "bottom-right", "sub-pixel"],
)
def test_object_mask_is_cropped_to_a_box_fiftyone_pastes_back(polygon, size):
    fo = pytest.importorskip("fiftyone")
    from mtdata.view.dataset import object_mask

    width, height = size
    box, mask = object_mask(polygon, size)
    full = fo.Detection(bounding_box=box, mask=mask).to_segmentation(frame_size=size, target=1).mask.astype(bool)
    assert mask.shape == (round(box[3] * height), round(box[2] * width))
    assert np.array_equal(full, polygon_to_mask(polygon, height, width).astype(bool))


def test_keypoints_are_normalized_with_absent_points_nan_and_hidden_points_kept():
    from mtdata.view.dataset import keypoint_points

    kpts = np.array([[32.0, 16.0, 2], [0.0, 0.0, 0], [8.0, 40.0, 1]])
    points = keypoint_points(kpts, (64, 80))
    assert points[0] == [0.5, 0.2] and points[2] == [0.125, 0.5]
    assert all(math.isnan(v) for v in points[1])


def _results(orig_hw, boxes, masks, keypoints, names):
    import torch
    from ultralytics.engine.results import Results

    h, w = orig_hw
    return Results(
        np.zeros((h, w, 3), dtype=np.uint8), "image.jpg", names,
        boxes=torch.tensor(boxes, dtype=torch.float32), masks=torch.tensor(masks, dtype=torch.uint8),
        keypoints=torch.tensor(keypoints, dtype=torch.float32),
    )


@pytest.mark.parametrize("imgsz", [None, 160, 128], ids=["original-size masks", "letterboxed, padded", "letterboxed, scaled"])
def test_ultralytics_results_become_linked_detections_and_keypoints(imgsz):
    pytest.importorskip("fiftyone")
    pytest.importorskip("ultralytics")
    import cv2

    from mtdata.view.predictions import results_to_fiftyone
    from mttrain.predict import masks_in_image

    h, w = 100, 160
    figure = np.zeros((h, w), dtype=np.uint8)
    figure[10:50, 20:60] = 1
    disc = np.zeros((h, w), dtype=np.uint8)
    cv2.circle(disc, (110, 60), 20, 1, -1)
    originals = np.stack([figure, disc])
    masks = originals
    if imgsz is not None:  # what a segment head returns: masks at the letterboxed input size
        gain = min(imgsz / h, imgsz / w)
        nh, nw = round(h * gain), round(w * gain)
        top, left = round((imgsz - nh) / 2 - 0.1), round((imgsz - nw) / 2 - 0.1)
        masks = np.zeros((2, imgsz, imgsz), dtype=np.uint8)
        for i, m in enumerate(originals):
            masks[i, top : top + nh, left : left + nw] = cv2.resize(m, (nw, nh), interpolation=cv2.INTER_NEAREST)
    boxes = [[20, 10, 60, 50, 0.9, 0], [90, 40, 130, 80, 0.6, 1]]
    keypoints = np.zeros((2, 3, 3))
    keypoints[0] = [[20, 10, 0.95], [60, 50, 0.2], [40, 30, 0.7]]  # the disc's row stays zero, as mttrain returns it
    result = _results((h, w), boxes, masks, keypoints, {0: "figure", 1: "disc"})
    detections, kpts = results_to_fiftyone(result, {0}, {0: "figure", 1: "disc"}, masks_in_image)
    if imgsz is not None:  # the library knows no model's letterbox: without the model's own masks_in_image, one error
        with pytest.raises(MtdataError, match=f"the model's masks are {imgsz}x{imgsz}, its image 160x100: pass masks_in_image"):
            results_to_fiftyone(result, {0}, {0: "figure", 1: "disc"})

    assert [d.label for d in detections.detections] == ["figure", "disc"]
    assert [d.confidence for d in detections.detections] == pytest.approx([0.9, 0.6])
    assert detections.detections[0].bounding_box == pytest.approx([20 / w, 10 / h, 40 / w, 40 / h])
    for det, original in zip(detections.detections, originals):
        pasted = det.to_segmentation(frame_size=(w, h), target=1).mask.astype(bool)
        assert iou(pasted, original.astype(bool)) >= 0.9
    assert len(kpts.keypoints) == 1  # no keypoints for the class without them
    kp = kpts.keypoints[0]
    assert kp.instance.id == detections.detections[0].instance.id != detections.detections[1].instance.id
    assert np.allclose(np.array(kp.points) * [w, h], keypoints[0, :, :2])
    assert kp.confidence == pytest.approx([0.95, 0.2, 0.7])


@pytest.mark.parametrize(
    "names, kpt_shape, keypoint_classes, message",
    [
        ({0: "figure", 1: "disc"}, (5, 3), [0], None),  # the dataset's own
        ({0: "disc", 1: "figure"}, (5, 3), [0], "do not match data.yaml names"),  # same classes, other order
        ({0: "figure"}, (5, 3), [0], "do not match data.yaml names"),
        ({0: "figure", 1: "disc"}, (17, 3), [0], "predicts 17 keypoints"),
        ({0: "figure", 1: "disc"}, (5, 3), [0, 1], "keypoint classes [0, 1]"),
    ],
    ids=["match", "swapped", "missing class", "keypoint count", "keypoint classes"],
)
def test_a_model_must_match_the_dataset(datasets, names, kpt_shape, keypoint_classes, message):
    from mtdata.errors import InputError
    from mtdata.view.predictions import check_model_matches

    config = read_data_yaml(datasets["multitask"])
    if message is None:
        check_model_matches(Path("best.pt"), names, kpt_shape, keypoint_classes, config)
    else:
        with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            check_model_matches(Path("best.pt"), names, kpt_shape, keypoint_classes, config)


# --- bad input: one line, exit 2, before anything starts ----------------------------------


def test_a_missing_data_yaml_is_one_line(tmp_path):
    assert "data.yaml not found" in one_error_line(cli("view", tmp_path / "nope" / "data.yaml", "--no-check"))


def test_a_data_yaml_that_is_not_a_dataset_is_one_line(tmp_path):
    (tmp_path / "data.yaml").write_text("names: [a, b\n")
    assert "not valid YAML" in one_error_line(cli("view", tmp_path / "data.yaml", "--no-check"))


def test_a_port_in_use_is_one_line(datasets):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(cli("view", datasets["multitask"], "--port", port, "--no-check"))
    assert f"port {port} on 127.0.0.1 is in use" in line


def test_a_missing_model_is_one_line(datasets, tmp_path):
    line = one_error_line(cli("view", datasets["multitask"], "--predictions", tmp_path / "best.pt", "--no-launch", "--no-check"))
    assert "model file not found" in line


def test_without_fiftyone_one_line_says_to_install_the_view_extra(datasets, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "fiftyone", None)  # `import fiftyone` raises ImportError
    line = one_error_line(cli("view", datasets["multitask"], "--no-launch", "--no-check"))
    assert "mt[view]" in line


# --- the FiftyOne dataset (private mongod) ----------------------------------------------


@pytest.fixture(scope="module")
def multitask_view(fiftyone_db, datasets):
    from mtdata.view.dataset import build_dataset

    dataset = build_dataset(datasets["multitask"], name="test-view-multitask")
    yield dataset
    dataset.delete()


def _rows(sample, config):
    parsed = read_label_file(Path(sample.label_file), config.layout())
    assert not parsed.problems
    return parsed


def test_one_sample_per_image_tagged_with_its_split(multitask_view, datasets):
    config = read_data_yaml(datasets["multitask"])
    images = {split: sorted((config.root / "images" / split).iterdir()) for split in ("train", "val")}
    assert len(multitask_view) == sum(len(v) for v in images.values())
    assert multitask_view.count_sample_tags() == {split: len(v) for split, v in images.items()}
    import cv2

    for sample in multitask_view.select_fields("metadata"):
        h, w = cv2.imread(sample.filepath).shape[:2]
        assert (sample.metadata.width, sample.metadata.height) == (w, h)


def test_one_detection_per_label_row_with_a_mask_matching_its_polygon(multitask_view, datasets):
    config = read_data_yaml(datasets["multitask"])
    rows = 0
    for sample in multitask_view:
        parsed = _rows(sample, config)
        detections = sample.ground_truth.detections
        assert [d.label for d in detections] == [config.names[r.class_id] for r in parsed.rows]
        assert [d.line for d in detections] == parsed.lines
        w, h = sample.metadata.width, sample.metadata.height
        for det, row in zip(detections, parsed.rows):
            pasted = det.to_segmentation(frame_size=(w, h), target=1).mask.astype(bool)
            assert iou(pasted, centre_mask(row.polygon_xyn * [w, h], w, h)) >= 0.9
        rows += len(parsed.rows)
    assert rows == multitask_view.count("ground_truth.detections") > 0


def test_keypoints_equal_the_labels_and_share_their_objects_instance(multitask_view, datasets):
    config = read_data_yaml(datasets["multitask"])
    absent = 0
    for sample in multitask_view:
        parsed = _rows(sample, config)
        poses = {k.instance.id: k for k in sample.ground_truth_keypoints.keypoints}
        for det, row in zip(sample.ground_truth.detections, parsed.rows):
            if row.keypoints_xyn is None:
                assert det.instance.id not in poses  # discs have no keypoints
                continue
            pose = poses.pop(det.instance.id)
            points, visibility = np.array(pose.points, dtype=float), row.keypoints_xyn[:, 2]
            assert pose.visibility == visibility.astype(int).tolist() and pose.line == det.line
            assert np.allclose(points[visibility > 0], row.keypoints_xyn[visibility > 0, :2])
            assert np.isnan(points[visibility == 0]).all()
            absent += int((visibility == 0).sum())
        assert not poses  # every keypoint label belongs to a detection
    assert absent > 0  # the synthetic set has absent points, so the NaN path ran


def test_the_skeleton_classes_and_colours_come_from_data_yaml(multitask_view, datasets):
    config = read_data_yaml(datasets["multitask"])
    assert multitask_view.default_skeleton.labels == config.kpt_names[0]
    assert multitask_view.default_skeleton.edges == config.skeleton
    assert multitask_view.default_classes == ["figure", "disc"]
    scheme = multitask_view.app_config.color_scheme
    colours = {f["path"]: f["fieldColor"] for f in scheme.fields}
    assert len(set(colours.values())) == len(colours) and {"ground_truth", "ground_truth_keypoints"} <= set(colours)


@pytest.mark.parametrize("task", ["segment", "pose"])
def test_single_task_datasets(fiftyone_db, datasets, task):
    from mtdata.view.dataset import build_dataset

    config = read_data_yaml(datasets[task])
    dataset = build_dataset(datasets[task], name=f"test-view-{task}")
    try:
        sample = next(s for s in dataset if s.ground_truth.detections)
        parsed = _rows(sample, config)
        assert len(sample.ground_truth.detections) == len(parsed.rows)
        has_masks = [d.mask is not None for d in sample.ground_truth.detections]
        if task == "segment":
            assert all(has_masks) and "ground_truth_keypoints" not in dataset.get_field_schema()
        else:  # pose rows are boxes + keypoints, every class has keypoints
            assert not any(has_masks)
            assert len(sample.ground_truth_keypoints.keypoints) == len(parsed.rows)
            labels = rows_to_labels(parsed.rows, (sample.metadata.width, sample.metadata.height), config.num_keypoints)
            w, h = labels.resolution_wh
            box = sample.ground_truth.detections[0].bounding_box
            assert np.allclose(np.array(box) * [w, h, w, h], [*labels.xyxy[0, :2], *(labels.xyxy[0, 2:] - labels.xyxy[0, :2])])
    finally:
        dataset.delete()


@pytest.fixture()
def defective(datasets, tmp_path) -> tuple[Path, Path, int, int]:
    """A copy of the multitask dataset with a duplicated row and a row that cannot be parsed."""
    root = tmp_path / "defective"
    shutil.copytree(datasets["multitask"].parent, root, symlinks=True)
    yaml = root / "data.yaml"
    yaml.write_text(yaml.read_text().replace(str(datasets["multitask"].parent), str(root)))
    label = min((root / "labels" / "train").glob("*.txt"))
    lines = label.read_text().splitlines()
    lines += [lines[0], "0 0.5 0.5 0.6"]
    label.write_text("\n".join(lines) + "\n")
    return yaml, label, len(lines) - 1, len(lines)  # 1-based lines of the duplicate and the bad row


def test_check_findings_become_sample_and_label_tags(fiftyone_db, defective):
    import fiftyone as fo

    yaml, label, duplicate_line, bad_line = defective
    result = cli("view", yaml, "--no-launch", "--name", "test-view-findings")
    assert result.exit_code == 0, result.output
    assert "kept in the FiftyOne database" in result.stdout
    dataset = fo.load_dataset("test-view-findings")
    try:
        sample = dataset.match({"label_file": str(label)}).first()
        assert {"row_duplicate", "row_wrong_count"} <= set(sample.tags)
        flagged = [d for d in sample.ground_truth.detections if "row_duplicate" in d.tags]
        assert [d.line for d in flagged] == [duplicate_line]
        assert bad_line not in [d.line for d in sample.ground_truth.detections]  # no object for a bad row
        assert dataset.match_tags("row_duplicate").count() == 1
    finally:
        dataset.delete()


def test_rows_that_label_no_keypoint_are_not_counted_with_keypoints(fiftyone_db, datasets, tmp_path):
    import fiftyone as fo

    from mtdata.view.dataset import keypoint_counts

    root = tmp_path / "ds"
    shutil.copytree(datasets["multitask"].parent, root, symlinks=True)
    yaml = root / "data.yaml"
    yaml.write_text(yaml.read_text().replace(str(datasets["multitask"].parent), str(root)))
    label = min((root / "labels" / "val").glob("*.txt"))
    none_labeled = "0 " + "0 0 0 " * 5 + "0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"
    label.write_text(label.read_text() + none_labeled + "\n")
    result = cli("view", yaml, "--no-launch", "--no-check", "--name", "test-view-kpt-count", "--split", "val")
    assert result.exit_code == 0, result.output
    dataset = fo.load_dataset("test-view-kpt-count")
    try:
        labeled, unlabeled = keypoint_counts(dataset)
        total = dataset.count("ground_truth_keypoints.keypoints")
        assert unlabeled >= 1 and labeled + unlabeled == total
        assert f"{labeled} with keypoints ({unlabeled} of keypoint classes with no point labeled)" in result.stdout
    finally:
        dataset.delete()


def test_a_rerun_replaces_the_dataset_unless_it_is_persistent(fiftyone_db, datasets):
    import fiftyone as fo

    name = "test-view-persistent"
    args = ("view", datasets["multitask"], "--no-launch", "--no-check", "--name", name, "--split", "val")
    assert cli(*args, "--persistent").exit_code == 0
    assert fo.load_dataset(name).persistent
    assert "already exists" in one_error_line(cli(*args, "--persistent"))
    assert cli(*args).exit_code == 0  # without --persistent the same name is replaced
    assert len(fo.load_dataset(name)) == len(list((datasets["multitask"].parent / "images" / "val").iterdir()))
    fo.load_dataset(name).delete()


# --- predictions and evaluation ------------------------------------------------------------


class LabelModel:
    """A model whose predictions are the labels themselves, as ultralytics ``Results``.

    It lets the tests know the right answer: every object is found with its mask and
    keypoints, except that ``shift`` pixels move the keypoints of the first figure and the
    last object of the first image with objects is left out.
    """

    def __init__(self, config, shift: float):
        self.config, self.shift, self.left_out = config, shift, None
        self.names = dict(config.names)

    def predict(self, source, **options):
        return [self._result(Path(path)) for path in source]

    def _result(self, image: Path):
        import cv2

        h, w = cv2.imread(str(image)).shape[:2]
        label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
        rows = read_label_file(label, self.config.layout()).rows if label.exists() else []
        labels = rows_to_labels(rows, (w, h), self.config.num_keypoints)
        keep = len(labels)
        if keep and self.left_out is None:
            self.left_out, keep = image, keep - 1
        boxes = [[*labels.xyxy[i], 0.9, labels.class_id[i]] for i in range(keep)]
        masks = np.stack([polygon_to_mask(labels.polygons[i], h, w) for i in range(keep)]) if keep else np.zeros((0, h, w))
        kpts = labels.keypoints[:keep].copy()
        kpts[..., 2] = np.where(kpts[..., 2] > 0, 0.9, 0.0)
        if self.shift and keep and labels.class_id[0] == 0:
            kpts[0, :, :2] += self.shift
        return _results((h, w), np.array(boxes).reshape(-1, 6), masks, kpts, self.names)


def test_an_image_over_the_size_limit_is_shown_unreadable_and_never_given_to_the_model(fiftyone_db, datasets, tmp_path):
    from mtdata.view.dataset import build_dataset
    from mtdata.view.predictions import add_predictions
    from tests.mtdata.factories import png_bomb

    root = tmp_path / "ds"
    shutil.copytree(datasets["multitask"].parent, root, symlinks=True)
    yaml = root / "data.yaml"
    yaml.write_text(yaml.read_text().replace(str(datasets["multitask"].parent), str(root)))
    bomb = root / "images" / "val" / "zz_bomb.png"
    bomb.write_bytes(png_bomb())
    config = read_data_yaml(yaml)
    dataset = build_dataset(yaml, ["val"], name="test-view-bomb")
    try:
        sample = dataset.match({"filepath": str(bomb)}).first()
        assert "image_unreadable" in sample.tags and sample.metadata is None
        seen = []

        class Recording(LabelModel):
            def predict(self, source, **options):
                seen.extend(source)
                return super().predict(source, **options)

        add_predictions(dataset, Recording(config, shift=0.0), config, batch=4)
        assert str(bomb) not in seen and len(seen) == len(dataset) - 1
    finally:
        dataset.delete()


def test_predictions_are_evaluated_with_masks_and_keypoint_oks(fiftyone_db, datasets):
    from fiftyone import ViewField as F

    from mtdata.keypoints import object_keypoint_similarity
    from mtdata.view.dataset import build_dataset
    from mtdata.view.predictions import add_predictions, evaluate

    config = read_data_yaml(datasets["multitask"])
    dataset = build_dataset(datasets["multitask"], ["train"], name="test-view-predictions")
    try:
        model = LabelModel(config, shift=3.0)
        objects = add_predictions(dataset, model, config, batch=3)
        labels = dataset.count("ground_truth.detections")
        assert objects == labels - 1 == dataset.count("predictions.detections")
        scores = evaluate(dataset, config)
        assert (scores["tp"], scores["fp"], scores["fn"]) == (labels - 1, 0, 1)
        assert scores["mAP"] > 0.9
        missed = dataset.filter_labels("ground_truth", F("eval") == "fn")
        assert missed.count("ground_truth.detections") == 1 and missed.first().filepath == str(model.left_out)
        oks = [v for v in dataset.values("predictions.detections.eval_oks", unwind=True) if v is not None]
        scored = 0  # labels that were found and have a labelled keypoint: each gets an OKS
        for sample in dataset:
            visible = {k.instance.id: any(v > 0 for v in k.visibility) for k in sample.ground_truth_keypoints.keypoints}
            scored += sum(1 for d in sample.ground_truth.detections if d.eval == "tp" and visible.get(d.instance.id))
        assert len(oks) == scored == scores["oks_count"] > 0
        assert max(oks) == pytest.approx(1.0) and min(oks) < 0.99  # the shifted figures score lower
        worst = dataset.exists("eval_oks").sort_by("eval_oks").first()  # the App's "sort by eval_oks"
        scored_here = [d for d in worst.predictions.detections if getattr(d, "eval_oks", None) is not None]
        assert worst.eval_oks == pytest.approx(np.mean([d.eval_oks for d in scored_here]))
        assert worst.eval_oks == min(dataset.exists("eval_oks").values("eval_oks")) < 0.99
        det = min(scored_here, key=lambda d: d.eval_oks)
        gt = next(d for d in worst.ground_truth.detections if d.id == det.eval_id)
        gt_pose = next(k for k in worst.ground_truth_keypoints.keypoints if k.instance.id == gt.instance.id)
        pose = next(k for k in worst.predictions_keypoints.keypoints if k.instance.id == det.instance.id)
        w, h = worst.metadata.width, worst.metadata.height
        gt_xyv = np.concatenate([np.nan_to_num(np.array(gt_pose.points, dtype=float)) * [w, h], np.array(gt_pose.visibility)[:, None]], 1)
        sigmas = np.asarray(config.kpt_sigmas or [1 / config.num_keypoints] * config.num_keypoints)
        expected = object_keypoint_similarity(np.array(pose.points) * [w, h], gt_xyv, float(gt.mask.sum()), sigmas)
        assert det.eval_oks == pytest.approx(expected) == pose.eval_oks
    finally:
        dataset.delete()



def _untrained_mttrain_model(tmp_path: Path, config) -> tuple[Path, Path]:
    """(a checkpoint made for ``config``'s classes and keypoints, one made for COCO's 80 classes), untrained.

    Built and saved with mttrain's own ``MultiTaskYOLO`` (ultralytics' checkpoint layout), as
    a trainer would leave them, only without the training.
    """
    import yaml

    from mttrain import MultiTaskYOLO
    from mttrain.nn.model import resolve_model_yaml

    shipped, _ = resolve_model_yaml("yolov8n-multitask.yaml")
    cfg = yaml.safe_load(shipped.read_text())
    cfg.update(nc=len(config.names), kpt_shape=list(config.kpt_shape))
    (tmp_path / "cfg").mkdir()
    own_yaml = tmp_path / "cfg" / "yolov8n-multitask.yaml"
    own_yaml.write_text(yaml.safe_dump(cfg))
    own = MultiTaskYOLO(str(own_yaml))
    own.model.names = dict(config.names)
    own.model.kpt_names = {k: list(v) for k, v in config.kpt_names.items()}
    import torch

    with torch.no_grad():  # untrained class biases score ~4e-4 at 96 px, under any usable conf, so random
        for branch in own.model.model[-1].cv3:  # weights decided whether it proposed at all; at 0 every anchor
            branch[-1].bias.zero_()  # scores ~0.5, for certain
    own.save(tmp_path / "own.pt")
    coco = MultiTaskYOLO("yolov8n-multitask.yaml")
    coco.save(tmp_path / "coco.pt")
    return tmp_path / "own.pt", tmp_path / "coco.pt"


@pytest.mark.slow  # ~25 s: torch, a model build and CPU inference
def test_predictions_of_an_mttrain_model_through_the_cli(fiftyone_db, datasets, tmp_path):
    pytest.importorskip("mttrain.model")
    import fiftyone as fo
    from fiftyone import ViewField as F

    config = read_data_yaml(datasets["multitask"])
    own, coco = _untrained_mttrain_model(tmp_path, config)
    line = one_error_line(cli("view", datasets["multitask"], "--predictions", coco, "--no-launch", "--no-check"))
    assert "do not match data.yaml names" in line and str(coco) in line

    name = "test-view-mttrain"
    result = cli("view", datasets["multitask"], "--predictions", own, "--conf", "0.001", "--imgsz", "96",
                 "--split", "val", "--no-launch", "--no-check", "--name", name)
    assert result.exit_code == 0, result.output
    assert "predictions:" in result.stdout and "mAP" in result.stdout
    dataset = fo.load_dataset(name)
    try:
        predicted = dataset.count("predictions.detections")
        assert predicted > 0  # an untrained model with class biases at 0 proposes objects
        assert dataset.count_values("predictions.detections.eval")["fp"] > 0  # and evaluation marked them
        figures = dataset.count_values("predictions.detections.label").get("figure", 0)
        assert dataset.count("predictions_keypoints.keypoints") == figures  # keypoints only for the figure class
        sample = dataset.match(F("predictions.detections").length() > 0).first()
        w, h = sample.metadata.width, sample.metadata.height
        for det in sample.predictions.detections:  # masks cropped to the box, at image resolution
            x, y, bw, bh = det.bounding_box
            assert det.mask.shape == (round((y + bh) * h) - round(y * h), round((x + bw) * w) - round(x * w))
    finally:
        dataset.delete()


def test_build_dataset_is_importable_from_the_package_without_loading_fiftyone():
    """The README's notebook line, ``from mtdata.view import build_dataset``; importing ``mtdata.view`` alone (as
    any of its modules does) does not load fiftyone."""
    import subprocess
    import sys

    code = ("import sys, mtdata.view; assert 'fiftyone' not in sys.modules; "
            "from mtdata.view import build_dataset; from mtdata.view.dataset import build_dataset as b; "
            "assert build_dataset is b; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
