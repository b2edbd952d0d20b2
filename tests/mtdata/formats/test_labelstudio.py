"""Label Studio exports (JSON and JSON-MIN) -> ToolImage; the brush RLE; image references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtdata.errors import InputError
from mtdata.formats.labelstudio import decode_brush_rle, image_file_name, read_labelstudio
from mtdata.formats.tool_objects import join_points
from mtdata.geometry import decode_rle
from tests.mtdata.tool_files import encode_brush_rle, random_coco, write_labelstudio

SIZE = {"original_width": 200, "original_height": 100}


def result(kind, value, **extra) -> dict:
    return {"id": extra.pop("id", "r1"), "type": kind, "from_name": "label", "to_name": "image", **SIZE, "value": value, **extra}


def export(tmp_path, results, name="project.json") -> list:
    path = tmp_path / name
    path.write_text(json.dumps([{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [{"result": results}]}]))
    return read_labelstudio(path)


def test_json_and_json_min_read_alike(tmp_path):
    coco = random_coco(3, images=5)
    full = read_labelstudio(write_labelstudio(coco, tmp_path / "full.json"))
    short = read_labelstudio(write_labelstudio(coco, tmp_path / "min.json", variant="min"))
    assert [i.file_name for i in full] == [i.file_name for i in short] == [im["file_name"] for im in coco["images"]]
    for a, b in zip(full, short):
        assert [(o.label, o.parts[0].tolist()) for o in a.objects] == [(o.label, o.parts[0].tolist()) for o in b.objects]
        assert [(p.name, p.xy.tolist()) for p in a.points] == [(p.name, p.xy.tolist()) for p in b.points]
        assert all(p.group is not None for p in a.points) and all(p.group is None for p in b.points)  # JSON-MIN has no parentID
    polygons = [np.reshape(ann["segmentation"][0], (-1, 2)).tolist() for ann in coco["annotations"]]
    read = [o.parts[0] for image in full for o in image.objects]
    assert len(read) == len(polygons)
    for got, polygon in zip(read, polygons):
        np.testing.assert_allclose(got, polygon, atol=1e-9)  # percent scaled back to pixels


def test_rectangles_ellipses_and_rotation(tmp_path):
    (image,) = export(tmp_path, [
        result("rectanglelabels", {"x": 10, "y": 20, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": ["box"]}),
        result("rectanglelabels", {"x": 50, "y": 50, "width": 10, "height": 20, "rotation": 90, "rectanglelabels": ["box"]}),
        result("ellipselabels", {"x": 50, "y": 50, "radiusX": 5, "radiusY": 10, "rotation": 0, "ellipselabels": ["disc"]}),
    ])
    np.testing.assert_allclose(image.objects[0].parts[0], [[20, 20], [60, 20], [60, 50], [20, 50]])
    # turned clockwise on screen about its top-left corner (100, 50): width goes down, height goes left
    np.testing.assert_allclose(image.objects[1].parts[0], [[100, 50], [100, 70], [80, 70], [80, 50]], atol=1e-9)
    ring = image.objects[2].parts[0] - [100, 50]
    np.testing.assert_allclose((ring[:, 0] / 10) ** 2 + (ring[:, 1] / 10) ** 2, 1)  # 5% of 200 and 10% of 100: a circle


def test_brush_masks_are_decoded(tmp_path):
    mask = np.zeros((100, 200), bool)
    mask[10:40, 30:90] = True
    mask[60:62, 150:151] = True
    rgba = np.zeros((100, 200, 4), np.uint8)
    rgba[mask] = (255, 0, 0, 255)
    rgba[5, 5] = (1, 2, 3, 4)  # a faint pixel: literal runs, not painted
    (image,) = export(tmp_path, [result("brushlabels", {"format": "rle", "rle": encode_brush_rle(rgba.reshape(-1)), "brushlabels": ["cat"]})])
    (o,) = image.objects
    np.testing.assert_array_equal(decode_rle(o.rle, 100, 200).astype(bool), mask)
    assert o.area == mask.sum() and o.contains(np.array([31.5, 11.0])) and not o.contains(np.array([5.0, 5.0]))


@pytest.mark.parametrize("rle, says", [
    ([1, 2, 3], "ends before"),
    ([300, 1], "must be bytes"),
    (encode_brush_rle(np.zeros(12, np.uint8)), "holds 12 values, its image's RGBA needs 80000"),
])
def test_a_bad_brush_is_named(tmp_path, rle, says):
    with pytest.raises(ValueError, match=says):
        decode_brush_rle(rle, 80_000)
    (image,) = export(tmp_path, [result("brushlabels", {"format": "rle", "rle": rle, "brushlabels": ["cat"]})])
    assert image.objects == [] and [p.reason for p in image.problems] == ["bad_rle"]


@pytest.mark.parametrize("ref, name", [
    ("/data/upload/3/1a2b3c4d-cat.jpg", "1a2b3c4d-cat.jpg"),
    ("s3://bucket/folder/cat.png", "cat.png"),
    ("/data/local-files/?d=photos/sub/cat.jpg", "cat.jpg"),
    ("https://host/x/cat%20one.jpg?X-Amz-Signature=abc", "cat one.jpg"),
    ("C:\\photos\\cat.jpg", "cat.jpg"),
])
def test_image_references_name_their_file(ref, name):
    assert image_file_name(ref) == name


def test_keypoints_join_their_parent_else_what_holds_them(tmp_path):
    polygon = {"points": [[10, 10], [40, 10], [40, 40], [10, 40]], "polygonlabels": ["cat"]}
    (image,) = export(tmp_path, [
        result("polygonlabels", polygon, id="a"),
        result("polygonlabels", {**polygon, "points": [[60, 10], [90, 10], [90, 40]]}, id="b"),
        result("keypointlabels", {"x": 80, "y": 80, "width": 1, "keypointlabels": ["tail"]}, id="k1", parentID="a"),
        result("keypointlabels", {"x": 20, "y": 20, "width": 1, "keypointlabels": ["nose"]}, id="k2"),
        result("keypointlabels", {"x": 80, "y": 80, "width": 1, "keypointlabels": ["ear"]}, id="k3"),
        result("keypointlabels", {"x": 20, "y": 20, "width": 1, "keypointlabels": ["ear"]}, id="k4", parentID="gone"),
        result("choices", {"choices": ["day"]}, id="c"),  # a class of the whole task: no shape
    ])
    joined = join_points(image, {})
    assert joined.owner == [0, 0, None, None]
    assert [u["label"] for u in joined.unmatched] == ["ear", "ear"]
    assert image.points[0].xy.tolist() == [160, 80] and image.problems == []


@pytest.mark.parametrize("bad, reason, says", [
    (result("polygonlabels", {"points": [[1, 1], [2, 2]], "polygonlabels": ["cat"]}), "bad_polygon", "at least 3 points, found 2"),
    (result("videorectangle", {"sequence": []}), "bad_polygon", "type 'videorectangle' is none of"),
    (result(["polygonlabels"], {"points": []}), "bad_polygon", "is none of polygonlabels"),  # fuzz: a type that is a list
    (result("keypointlabels", {"x": 101, "y": 5, "keypointlabels": ["nose"]}), "out_of_image", "outside the image"),
    (result("keypointlabels", {"x": 2 ** 70, "y": 10 ** 400, "keypointlabels": ["nose"]}), "bad_keypoints", "finite x and y"),
    (result("rectanglelabels", {"x": 1, "y": 1, "width": 0, "height": 3, "rectanglelabels": ["box"]}), "bad_polygon", "sizes > 0"),
    (result("polygonlabels", {"points": [[1, 1], [2, 2], [3, 1]], "polygonlabels": ["cat", "dog"]}), "bad_polygon", "one label"),
    ({**result("polygonlabels", {"points": [[1, 1], [2, 2], [3, 1]], "polygonlabels": ["cat"]}), "original_width": None},
     "bad_polygon", "cannot be scaled"),
    ({**result("polygonlabels", {"points": [[1, 1], [2, 2], [3, 1]], "polygonlabels": ["cat"]}), "original_width": 50},
     "bad_polygon", "its image is 50 x 100, another result's 200 x 100"),
], ids=["two-points", "unknown-type", "list-type", "point-outside", "huge-numbers", "zero-width", "two-labels", "no-size", "other-size"])
def test_a_bad_result_is_left_out_and_named(tmp_path, bad, reason, says):
    ok = result("polygonlabels", {"points": [[1, 1], [20, 1], [20, 20]], "polygonlabels": ["ok"]})
    (image,) = export(tmp_path, [ok, bad])
    assert [o.label for o in image.objects] == ["ok"]
    (problem,) = image.problems
    assert (problem.index, problem.reason) == (1, reason) and says in problem.message


@pytest.mark.parametrize("data, says", [
    ({"tasks": []}, "not a Label Studio export: expected a list of tasks"),
    ([{"data": {"text": 3}, "annotations": []}], "project.json[0]: the task names no image"),
    ([{"data": "a.jpg", "annotations": []}], "a task holds 'data' (an object)"),
    ([{"data": {"image": "a.jpg"}, "annotations": [{"result": {"x": 1}}]}], "result must be a list"),
], ids=["object", "no-image", "data-text", "result-object"])
def test_a_bad_export_is_one_line_naming_it(tmp_path, data, says):
    path = tmp_path / "project.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as e:
        read_labelstudio(path)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_cancelled_annotations_are_passed_over(tmp_path):
    path = tmp_path / "p.json"
    cat = result("polygonlabels", {"points": [[1, 1], [20, 1], [20, 20]], "polygonlabels": ["cat"]})
    dog = result("polygonlabels", {"points": [[1, 1], [20, 1], [20, 20]], "polygonlabels": ["dog"]})
    path.write_text(json.dumps([{"data": {"image": "a.jpg"}, "annotations": [
        {"was_cancelled": True, "result": [cat]}, {"result": [dog]}, {"result": [cat]}]}]))
    (image,) = read_labelstudio(path)
    assert [o.label for o in image.objects] == ["dog"] and image.other_annotations == 1


def test_a_relation_makes_a_region_the_parent_of_a_keypoint(tmp_path):
    polygon = {"points": [[10, 10], [40, 10], [40, 40], [10, 40]], "polygonlabels": ["cat"]}
    (image,) = export(tmp_path, [
        result("polygonlabels", polygon, id="a"),
        result("polygonlabels", {**polygon, "points": [[60, 10], [90, 10], [90, 40]]}, id="b"),
        result("keypointlabels", {"x": 20, "y": 20, "width": 1, "keypointlabels": ["tail"]}, id="k1"),  # inside a, related to b
        result("keypointlabels", {"x": 85, "y": 15, "width": 1, "keypointlabels": ["nose"]}, id="k2", parentID="a"),
        {"type": "relation", "from_id": "b", "to_id": "k1", "direction": "right"},
        {"type": "relation", "from_id": "k2", "to_id": "b", "direction": "right"},  # parentID is kept over a relation
        {"type": "relation", "from_id": "k1", "to_id": "gone", "direction": "right"},
    ])
    assert [p.group for p in image.points] == ["b", "a"]
    assert join_points(image, {}).owner == [1, 0]
