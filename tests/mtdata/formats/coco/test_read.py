"""COCO reader: file-level errors, annotation-level skips, polygons, RLE and keypoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mtdata.errors import InputError
from mtdata.formats.coco.read import CocoFile, read_coco
from mtdata.geometry import polygon_signed_area, polygon_to_mask
from tests.mtdata.factories import (
    coco_annotation,
    coco_dict,
    coco_image,
    person_category,
    person_keypoints,
    plain_category,
    write_json,
)
from tests.mtdata.oracles import image_labels


def read(tmp_path, data) -> CocoFile:
    return read_coco(write_json(tmp_path / "ann.json", data))


def labels_of(tmp_path, annotations, *, include_crowd=False, num_keypoints=5, categories=None, image=None):
    """Read a one-image COCO file and convert its annotations: (record, skips)."""
    coco = read(tmp_path, coco_dict(images=[image or coco_image(1)], annotations=annotations, categories=categories))
    class_of = {c.id: i for i, c in enumerate(coco.categories)}
    kpts_of = {c.id: len(c.keypoints) for c in coco.categories if c.keypoints}
    return image_labels(coco.images[1], coco.annotations, class_of, kpts_of, num_keypoints, include_crowd)


def test_reads_images_categories_and_annotations(tmp_path):
    data = coco_dict(
        images=[coco_image(4, 64, 48, "a/b.jpg"), coco_image(2)],
        annotations=[coco_annotation(7, 4, 9), coco_annotation(8, 2, 3, keypoints=person_keypoints(k=5))],
        categories=[plain_category(9, "ball"), person_category(3), plain_category(1, "cup")],
    )
    coco = read(tmp_path, data)
    assert [c.id for c in coco.categories] == [1, 3, 9]  # sorted by id: classes 0..n-1 follow id order
    person = coco.categories[1]
    assert person.keypoints[:2] == ("nose", "left_eye") and person.skeleton == ((1, 2), (1, 3))
    assert coco.images[4].file_name == "a/b.jpg" and (coco.images[4].width, coco.images[4].height) == (64, 48)
    ann = coco.annotations[1]
    assert (ann.id, ann.image_id, ann.category_id, ann.iscrowd) == (8, 2, 3, False)
    assert ann.keypoints.shape == (15,) and ann.raw_keypoint_count == 15
    np.testing.assert_array_equal(ann.bbox_xywh, [10, 10, 40, 30])


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(None, "not found", id="missing-file"),
        pytest.param('{"images": [', "not valid JSON", id="truncated"),
        pytest.param(b"\xff\xfe{", "UTF-8", id="not-utf8"),
        pytest.param("[1, 2]", "expected a JSON object", id="a-list"),
        pytest.param(json.dumps({"annotations": [], "categories": []}), "'images'", id="no-images"),
        pytest.param(json.dumps({"images": [], "categories": []}), "'annotations'", id="no-annotations"),
        pytest.param(json.dumps({"images": [], "annotations": []}), "'categories'", id="no-categories"),
        pytest.param(json.dumps({"images": {}, "annotations": [], "categories": []}), "'images' must be a list", id="images-not-a-list"),
        pytest.param(json.dumps(coco_dict(annotations=[coco_annotation(5, 1, 42)])), "category_id 42", id="undeclared-category"),
        pytest.param(json.dumps(coco_dict(categories=[{"name": "x"}])), "categories[0]", id="category-without-id"),
        pytest.param(json.dumps(coco_dict(categories=[plain_category(1), plain_category(1, "y")])), "categories[0] and categories[1] share id 1",
                     id="category-ids-repeat"),
        pytest.param(json.dumps(coco_dict(images=[{"id": 1, "file_name": "a.jpg"}])), "width and height", id="image-without-size"),
        pytest.param(json.dumps(coco_dict(images=[{"id": "1", "file_name": "a.jpg", "width": 1, "height": 1}])), "images[0]",
                     id="image-id-a-string"),
        pytest.param(json.dumps(coco_dict(annotations=[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 1, 1]}])),
                     "annotations[0] has no 'id'", id="annotation-without-id"),
    ],
)
def test_file_level_problems(tmp_path, content, message):
    path = tmp_path / "ann.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as raised:
        read_coco(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path))


def test_polygon_keypoints_and_box(tmp_path):
    kpts = person_keypoints(2, 1, 0)
    labels, skips = labels_of(tmp_path, [coco_annotation(11, polygon=[10, 10, 50, 10, 50, 40, 10, 40], keypoints=kpts)])
    assert skips == []
    assert labels.source_ids.tolist() == [11] and labels.class_id.tolist() == [0]
    np.testing.assert_array_equal(labels.xyxy[0], [10, 10, 50, 40])
    assert abs(polygon_signed_area(labels.polygons[0])) == pytest.approx(1200)
    np.testing.assert_allclose(labels.keypoints[0], np.array(kpts).reshape(5, 3))
    assert labels.resolution_wh == (100, 80)


def test_absent_keypoints_lose_their_coordinates(tmp_path):
    kpts = person_keypoints()
    kpts[0:3] = [33.0, 44.0, 0]  # COCO: v=0 is 'not labeled' whatever x, y say
    labels, _ = labels_of(tmp_path, [coco_annotation(1, keypoints=kpts)])
    np.testing.assert_array_equal(labels.keypoints[0, 0], [0, 0, 0])


def test_keypoints_padded_to_k_and_plain_classes_get_none(tmp_path):
    anns = [coco_annotation(1, keypoints=person_keypoints()), coco_annotation(2, category_id=5)]
    labels, _ = labels_of(tmp_path, anns, num_keypoints=8)
    assert labels.keypoints.shape == (2, 8, 3)
    assert not labels.keypoints[0, 5:].any() and not labels.keypoints[1].any()


def test_segment_output_takes_no_keypoints(tmp_path):
    labels, skips = labels_of(tmp_path, [coco_annotation(1, keypoints=person_keypoints())], num_keypoints=0)
    assert skips == [] and labels.keypoints.shape == (1, 0, 3)


def test_multipart_polygon_keeps_its_area(tmp_path):
    parts = [[10, 10, 30, 10, 30, 30, 10, 30], [60, 40, 60, 60, 80, 60, 80, 40]]  # second part clockwise
    labels, _ = labels_of(tmp_path, [coco_annotation(1, category_id=5, segmentation=parts)])
    assert abs(polygon_signed_area(labels.polygons[0])) == pytest.approx(800)
    np.testing.assert_array_equal(labels.xyxy[0], [10, 10, 80, 60])


def disc_mask(h=80, w=100) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    mask[(xx - 40) ** 2 + (yy - 30) ** 2 < 15 ** 2] = 1
    return mask


def uncompressed(mask: np.ndarray) -> list[int]:
    flat = mask.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [len(flat)]])
    counts = np.diff(bounds).tolist()
    return counts if flat[0] == 0 else [0] + counts


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param(lambda m: mask_utils.encode(np.asfortranarray(m))["counts"].decode(), id="compressed-string"),
        pytest.param(uncompressed, id="uncompressed-counts"),
    ],
)
def test_rle_masks_are_traced(tmp_path, counts):
    mask = disc_mask()
    seg = {"size": [80, 100], "counts": counts(mask)}
    labels, skips = labels_of(tmp_path, [coco_annotation(1, category_id=5, segmentation=seg, bbox=[25, 15, 30, 30])])
    assert skips == []
    traced = polygon_to_mask(labels.polygons[0], 80, 100)
    iou = np.logical_and(traced, mask).sum() / np.logical_or(traced, mask).sum()
    assert iou >= 0.9


def test_crowd_skipped_and_counted_or_included(tmp_path):
    mask = disc_mask()
    seg = {"size": [80, 100], "counts": mask_utils.encode(np.asfortranarray(mask))["counts"].decode()}
    anns = [coco_annotation(1), coco_annotation(2, segmentation=seg, bbox=[25, 15, 30, 30], iscrowd=1)]
    labels, skips = labels_of(tmp_path, anns)
    assert labels.source_ids.tolist() == [1]
    assert [(s.annotation_id, s.reason, s.invalid) for s in skips] == [(2, "crowd", False)]
    labels, skips = labels_of(tmp_path, anns, include_crowd=True)
    assert labels.source_ids.tolist() == [1, 2] and skips == []


def test_filtered_categories_are_ignored_silently(tmp_path):
    coco = read(tmp_path, coco_dict(annotations=[coco_annotation(1), coco_annotation(2, category_id=5)]))
    labels, skips = image_labels(coco.images[1], coco.annotations, {5: 0}, {}, 0, False)
    assert labels.source_ids.tolist() == [2] and skips == []


NAN = float("nan")
BAD_ANNOTATIONS = [
    pytest.param(coco_annotation(9, polygon=[10, 10, 50, 10, 50]), "bad_polygon", id="odd-polygon"),
    pytest.param(coco_annotation(9, polygon=[10, 10, 50, 10]), "bad_polygon", id="two-point-polygon"),
    pytest.param(coco_annotation(9, segmentation=[[10, 10, 50, "a", 50, 40]], bbox=[1, 1, 5, 5]), "bad_polygon", id="polygon-text"),
    pytest.param(coco_annotation(9, segmentation=[[[10, 10], [50, 10], [50, 40]]], bbox=[1, 1, 5, 5]), "bad_polygon",
                 id="polygon-nested-pairs"),
    pytest.param(coco_annotation(9, segmentation="polygon", bbox=[1, 1, 5, 5]), "bad_polygon", id="segmentation-a-string"),
    pytest.param(coco_annotation(9, bbox=[10, 10, 0, 30]), "bad_bbox", id="bbox-zero-width"),
    pytest.param(coco_annotation(9, bbox=[10, 10, 20, -3]), "bad_bbox", id="bbox-negative-height"),
    pytest.param(coco_annotation(9, segmentation=[], bbox=[1, 1, 2]), "bad_bbox", id="no-bbox-no-mask"),
    pytest.param(coco_annotation(9, keypoints=person_keypoints(k=4)), "bad_keypoints", id="keypoints-4-of-5"),
    pytest.param(coco_annotation(9, keypoints=person_keypoints()[:-1]), "bad_keypoints", id="keypoints-not-3k"),
    pytest.param(coco_annotation(9, keypoints=person_keypoints(3)), "bad_keypoints", id="keypoint-visibility-3"),
    pytest.param(coco_annotation(9, keypoints=[[1, 2, 2]] * 5), "bad_keypoints", id="keypoints-nested"),
    pytest.param(coco_annotation(9, keypoints=["a"] + person_keypoints()[1:]), "bad_keypoints", id="keypoints-text"),
    pytest.param(coco_annotation(9, keypoints=person_keypoints(k=5)[:3] * 5, category_id=5), "bad_keypoints",
                 id="keypoints-on-a-plain-class"),
    pytest.param(coco_annotation(9, polygon=[10, NAN, 50, 10, 50, 40]), "not_finite", id="polygon-nan"),
    pytest.param(coco_annotation(9, bbox=[10, 10, float("inf"), 30]), "not_finite", id="bbox-inf"),
    pytest.param(coco_annotation(9, keypoints=[NAN] + person_keypoints()[1:]), "not_finite", id="keypoint-nan"),
    pytest.param(coco_annotation(9, segmentation={"size": [40, 100], "counts": "abc"}, bbox=[1, 1, 5, 5]), "bad_rle",
                 id="rle-size-not-image-size"),
    pytest.param(coco_annotation(9, segmentation={"size": [80, 100], "counts": [8000, 5]}, bbox=[1, 1, 5, 5]), "bad_rle",
                 id="rle-counts-too-long"),
]


@pytest.mark.parametrize("annotation, reason", BAD_ANNOTATIONS)
def test_bad_annotations_are_skipped_by_id(tmp_path, annotation, reason):
    labels, skips = labels_of(tmp_path, [coco_annotation(1), annotation])
    assert labels.source_ids.tolist() == [1]  # the good one is kept
    assert len(skips) == 1
    skip = skips[0]
    assert (skip.annotation_id, skip.image_id, skip.reason) == (9, 1, reason)
    assert skip.invalid and skip.message
