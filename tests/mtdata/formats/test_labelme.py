"""Labelme files -> ToolImage (shapes, problems, file-level errors) and the join of points to objects."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from mtdata.errors import InputError
from mtdata.formats.labelme import read_labelme
from mtdata.formats.tool_objects import join_points, tool_coco_files
from mtdata.geometry import decode_rle


def shape(label, points, kind="polygon", group=None, **extra) -> dict:
    return {"label": label, "points": points, "shape_type": kind, "group_id": group, "flags": {}, **extra}


def write(tmp_path, shapes, name="a.json", **keys):
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.jpg", "imageData": None,
            "imageWidth": 120, "imageHeight": 100, **keys}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_each_area_shape_becomes_an_object_and_points_keypoints(tmp_path):
    crop = np.zeros((10, 20), np.uint8)
    crop[2:8, 5:15] = 255
    path = write(tmp_path, [
        shape("cat", [[10, 10], [40, 10], [40, 30]]),
        shape("box", [[60, 50], [50, 40]], "rectangle"),
        shape("disc", [[80, 60], [80, 70]], "circle"),
        shape("blob", [[30, 60], [49, 69]], "mask", mask=png(crop)),
        shape("cat/left_eye", [[20, 15]], "point"),
        shape("nose", [[21, 16]], "point", group=3),
    ])
    image = read_labelme(path)
    assert [o.label for o in image.objects] == ["cat", "box", "disc", "blob"]
    assert image.problems == []
    np.testing.assert_array_equal(image.objects[1].parts[0], [[60, 50], [50, 50], [50, 40], [60, 40]])
    ring = image.objects[2].parts[0]
    np.testing.assert_allclose(np.hypot(*(ring - [80, 60]).T), 10)  # every vertex on the circle
    mask = decode_rle(image.objects[3].rle, 100, 120)
    expected = np.zeros((100, 120), np.uint8)
    expected[62:68, 35:45] = 1  # the crop placed at the mask's top-left corner (30, 60)
    np.testing.assert_array_equal(mask, expected)
    (eye, nose) = image.points
    assert (eye.cls, eye.name, nose.cls, nose.name, nose.group) == ("cat", "left_eye", None, "nose", 3)


@pytest.mark.parametrize("bad, reason, says", [
    (shape("cat", [[1, 1], [5, 5]]), "bad_polygon", "at least 3 points, found 2"),
    (shape("cat", [[1, 1], [5, 5]], "line"), "bad_polygon", "shape_type 'line' is none of"),
    (shape("nose", [[121, 5]], "point"), "out_of_image", "point (121, 5) is outside the 120 x 100 image"),
    (shape("nose", [[1, 2], [3, 4]], "point"), "bad_keypoints", "holds one point, found 2"),
    (shape("cat", [[1, "2"], [3, 4], [5, 6]]), "bad_polygon", "finite numbers"),
    (shape("cat", [[1, 10 ** 400], [3, 4], [5, 6]]), "bad_polygon", "finite numbers"),  # past float range
    (shape("", [[1, 2], [3, 4], [5, 6]]), "bad_polygon", "label must be a name"),
    (shape("box", [[1, 2], [3, 4], [5, 6]], "rectangle"), "bad_polygon", "holds 2 points, found 3"),
    (shape("disc", [[1, 2], [1, 2]], "circle"), "bad_polygon", "radius 0"),
    (shape("blob", [[1, 2], [3, 4]], "mask", mask="not base64!"), "bad_rle", "not base64"),
    (shape("blob", [[0, 0], [3, 4]], "mask", mask=png(np.ones((200, 5), np.uint8))), "bad_rle", "at most the 120 x 100 image"),
    (shape("blob", [[0, 0], [3, 4]], "mask", mask=png(np.zeros((4, 4), np.uint8))), "bad_rle", "sets no pixel"),
    ("a string", "bad_polygon", "shape is not an object"),
], ids=["two-points", "line", "point-outside", "two-point-point", "text-number", "huge-number", "no-label", "rectangle-3", "circle-0",
        "mask-base64", "mask-too-big", "mask-empty", "not-a-dict"])
def test_a_bad_shape_is_left_out_and_named(tmp_path, bad, reason, says):
    image = read_labelme(write(tmp_path, [shape("ok", [[1, 1], [9, 1], [9, 9]]), bad]))
    assert [o.label for o in image.objects] == ["ok"]
    (problem,) = image.problems
    assert (problem.index, problem.reason) == (1, reason)
    assert says in problem.message


@pytest.mark.parametrize("text, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a Labelme file"),
    (json.dumps({"images": [], "annotations": []}), "not a Labelme file: expected an object with 'shapes'"),
    (json.dumps({"shapes": [], "imagePath": "a.jpg"}), "imageWidth and imageHeight must be integers"),
    (json.dumps({"shapes": [], "imagePath": "a.jpg", "imageWidth": 0, "imageHeight": 5}), "found 0 x 5"),
    (json.dumps({"shapes": [], "imagePath": "", "imageData": None, "imageWidth": 5, "imageHeight": 5}), "names no image"),
    (json.dumps({"shapes": [], "imagePath": 7, "imageWidth": 5, "imageHeight": 5}), "imagePath must be a path"),
], ids=["json", "list", "coco", "no-size", "zero-size", "no-image", "path-number"])
def test_a_bad_file_is_one_line_naming_it(tmp_path, text, says):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        read_labelme(path)
    assert says in str(e.value) and "bad.json" in str(e.value) and "\n" not in str(e.value)


def test_shapes_of_one_group_and_class_are_one_object(tmp_path):
    image = read_labelme(write(tmp_path, [
        shape("cat", [[0, 0], [10, 0], [10, 10]], group=1), shape("dog", [[50, 50], [60, 50], [60, 60]], group=1),
        shape("cat", [[20, 20], [30, 20], [30, 30]], group=1), shape("cat", [[40, 0], [50, 0], [50, 10]]),
    ]))
    assert [(o.label, len(o.parts), o.index) for o in image.objects] == [("cat", 2, 0), ("dog", 1, 1), ("cat", 1, 3)]


def test_points_join_by_group_else_by_the_smallest_object_that_holds_them(tmp_path):
    image = read_labelme(write(tmp_path, [
        shape("person", [[0, 0], [100, 0], [100, 90], [0, 90]]),  # 0: holds the hand
        shape("hand", [[10, 10], [30, 10], [30, 30], [10, 30]]),  # 1
        shape("person", [[110, 0], [119, 0], [119, 9]], group=7),  # 2
        shape("tip", [[20, 20]], "point"),  # in both: the hand (smaller) wins, a tie reported
        shape("person/tip", [[21, 21]], "point"),  # names its class: the person
        shape("nose", [[50, 50]], "point", group=7),  # by group, though inside object 0
        shape("tip", [[22, 22]], "point"),  # both objects that hold it have a tip already
        shape("person/tip", [[23, 23]], "point"),  # the person holding it has one
        shape("ear", [[5, 95]], "point"),  # inside nothing
        shape("ear", [[5, 5]], "point", group=9),  # no shape has group 9
    ]))
    joined = join_points(image, {})
    assert joined.owner == [1, 0, 2, None, None, None, None]
    assert [(t["objects"], t["chosen"]) for t in joined.ties] == [([0, 1], 1)]
    assert [u["why"] for u in joined.unmatched] == ["its object already has a point 'tip'"] * 2 + ["inside no shape", "no shape has group 9"]


def test_fixed_keypoint_names_set_the_order_and_refuse_others(tmp_path):
    image = read_labelme(write(tmp_path, [
        shape("person", [[0, 0], [100, 0], [100, 90], [0, 90]]),
        shape("tail", [[10, 10]], "point"), shape("right_eye", [[11, 11]], "point"), shape("left_eye", [[12, 12]], "point"),
    ]))
    dataset = tool_coco_files([tmp_path], [[image]], keypoints={"person": ["left_eye", "right_eye"]})
    (category,) = dataset.files[0].categories
    assert category.keypoints == ("left_eye", "right_eye")
    (annotation,) = dataset.files[0].annotations
    assert annotation.keypoints.tolist() == [12, 12, 2, 11, 11, 2]
    assert [u["label"] for u in dataset.unmatched] == ["tail"]
    assert "not among the --keypoints of 'person'" in dataset.unmatched[0]["why"]


def test_first_seen_keypoint_names_and_classes_over_the_dataset(tmp_path):
    a = read_labelme(write(tmp_path, [shape("ball", [[0, 0], [9, 0], [9, 9]]), shape("person", [[20, 20], [60, 20], [60, 60]]),
                                      shape("b", [[30, 30]], "point")], "a.json"))
    b = read_labelme(write(tmp_path, [shape("person", [[20, 20], [60, 20], [60, 60]]), shape("a", [[40, 30]], "point"),
                                      shape("b", [[50, 30]], "point")], "b.json"))
    dataset = tool_coco_files([tmp_path], [[a, b]])
    assert [(c.id, c.name, c.keypoints) for c in dataset.files[0].categories] == [(1, "ball", ()), (2, "person", ("b", "a"))]
    person_b = [ann for ann in dataset.files[0].annotations if ann.image_id == 2][0]
    assert person_b.keypoints.tolist() == [50, 30, 2, 40, 30, 2]  # in the dataset's order, not the file's
    ordered = tool_coco_files([tmp_path], [[a, b]], classes=["person"])
    assert [c.name for c in ordered.files[0].categories] == ["person", "ball"]
