"""The columnar COCO reader and bulk converter agree with the one-annotation-at-a-time path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtdata.formats.coco.joins import join_pairs, join_singles
from mtdata.formats.coco.objects import table_objects
from mtdata.formats.coco.read import annotation_join_loss, read_coco
from mtdata.formats.coco.types import CocoAnnotation, compact_annotation
from mtdata.geometry import join_polygons
from mtdata.synth import SynthSpec, make_coco
from tests.mtdata.factories import (
    coco_annotation,
    coco_dict,
    coco_image,
    person_keypoints,
    write_json,
)
from tests.mtdata.oracles import image_labels

INF = 12345.678  # written as 1e999 (json.dumps would write Infinity, which is not JSON)
RLE = {"size": [80, 100], "counts": [100, 20, 60, 20, 60, 20, 7720]}


def mixed_annotations() -> list[dict]:
    """Every kind of segmentation and keypoints the fast path must either take or hand over."""
    anns = [
        coco_annotation(1, keypoints=person_keypoints(2, 1, 0)),
        coco_annotation(2, category_id=5, segmentation=[[10, 10, 30, 10, 30, 30], [50, 50, 70, 50, 70, 70, 50, 70]]),
        coco_annotation(3, category_id=5, segmentation=[[1, 1, 9, 1, 9, 9], [20, 1, 29, 1, 29, 9], [40, 40, 45, 40, 45, 45]]),
        coco_annotation(4, category_id=5, segmentation=RLE, bbox=[1, 20, 3, 20]),
        coco_annotation(5, category_id=5, segmentation=RLE, bbox=[1, 20, 3, 20], iscrowd=1),
        coco_annotation(6, segmentation=[], bbox=[5, 5, 10, 10], keypoints=person_keypoints()),
        coco_annotation(7, segmentation=[10, 10, 30, 10, 30, 30], bbox=[5, 5, 10, 10]),  # flat, not nested
        coco_annotation(8, segmentation=[[[10, 10], [30, 10], [30, 30]]], bbox=[5, 5, 10, 10]),  # too deep
        coco_annotation(9, segmentation=[[10, 10, "x", 10, 30, 30]], bbox=[5, 5, 10, 10]),
        coco_annotation(10, segmentation=[[10, 10, 30, 10, 30, 30], []], bbox=[5, 5, 10, 10]),
        coco_annotation(11, segmentation=[[10, 10, 30, 10, 30]]),  # odd
        coco_annotation(12, segmentation=[[10, 10]], bbox=[5, 5, 10, 10]),  # one point
        coco_annotation(13, segmentation=[[7]], bbox=[5, 5, 10, 10]),  # one number
        coco_annotation(14, keypoints=[]),
        coco_annotation(15, keypoints=person_keypoints(k=4)),
        coco_annotation(16, keypoints=[1, 2, 2] + ["a"] + person_keypoints()[4:]),
        coco_annotation(17, keypoints=person_keypoints(3)),
        coco_annotation(18, keypoints=[5]),
        coco_annotation(19, bbox=[10, 10, 0, 4]),
        coco_annotation(20, image_id=42),
        coco_annotation(21, category_id=5, polygon=[10, 10, 30, 10, 30, 30, 10, 30], bbox=[1, 1, 2]),  # short bbox
        coco_annotation(22, polygon=[INF, 10, 30, 10, 30, 30]),  # 1e999 in the file: valid JSON, inf once parsed
        coco_annotation(24, category_id=5, segmentation=[[30, 10, 30, 30, 10, 10, 10, 10]]),  # clockwise, repeated
        coco_annotation(25, category_id=5, segmentation=[[10, 10, 30, 10, 30, 30, 10, 10]]),  # closed
        coco_annotation(26, polygon=[10, 10, 1e300, 10, 30, 30]),  # far outside the image: refused before any arithmetic
        coco_annotation(27, polygon=[10, 10, 350, 10, 30, 30], bbox=[10, 10, 20, 20]),  # more than a width right of it
        coco_annotation(28, bbox=[150, 10, 20, 20]),  # a box wholly right of the image
        coco_annotation(29, bbox=[10, 10, 20, 1e-6]),  # thinner than a row holds
        coco_annotation(30, category_id=5, segmentation=[[10, 10, 20, 20, 30, 30]], bbox=[5, 5, 10, 10]),  # collinear
        coco_annotation(31, bbox=[10, 10, 20, 20], keypoints=person_keypoints(x0=-300.0)),  # keypoints far left
        coco_annotation(32, category_id=5, polygon=[10, 10, 30, 10, 30, 30], bbox=[1, 2, 3]),  # 3-number bbox
        coco_annotation(33, category_id=5, segmentation=[["10", 10, 30, 10, 30, 30]], bbox=[5, 5, 10, 10]),  # a string
        coco_annotation(34, category_id=5, segmentation=[[10, 10, 40, 10, 40, 40, 10, 40], [20, 20, 50, 20, 50, 50, 20, 50]]),
        coco_annotation(35, category_id=5, segmentation=[[10, 10, 40, 10, 40, 40], [30, 10, 60, 10, 60, 40], [70, 5, 80, 5, 80, 9]]),
        coco_annotation(36, polygon=[1, 1, 30, 1, 30, 30], bbox=[1, 1, 29, 29], keypoints=person_keypoints(x0=250.0)),
    ]
    for ann in anns:
        if ann["id"] in (21,):
            continue
        if ann["id"] == 7:
            ann["bbox"] = [5, 5, 10, 10]
    del anns[next(i for i, a in enumerate(anns) if a["id"] == 21)]["bbox"]  # annotation 21: no bbox at all, boxed by its polygon
    return anns


def write_mixed(tmp_path, indent=None, rotate=0):
    anns = mixed_annotations()
    anns = anns[rotate:] + anns[:rotate]
    data = coco_dict(images=[coco_image(1), coco_image(2, 64, 48)], annotations=anns)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(data, indent=indent).replace(str(INF), "1e999"))
    return path


def same_annotation(a: CocoAnnotation, b: CocoAnnotation) -> None:
    assert (a.id, a.image_id, a.category_id, a.iscrowd, a.raw_keypoint_count) == (b.id, b.image_id, b.category_id, b.iscrowd, b.raw_keypoint_count)
    assert (a.bbox_xywh is None) == (b.bbox_xywh is None)
    if a.bbox_xywh is not None:
        np.testing.assert_array_equal(a.bbox_xywh, b.bbox_xywh)
    if isinstance(b.segmentation, list) and b.segmentation and all(isinstance(p, np.ndarray) and p.ndim == 1 for p in b.segmentation):
        assert len(a.segmentation) == len(b.segmentation)
        for x, y in zip(a.segmentation, b.segmentation):
            np.testing.assert_array_equal(x, y)
    elif not b.segmentation:
        assert not a.segmentation
    else:
        assert repr(a.segmentation) == repr(b.segmentation)
    assert (a.keypoints is None) == (b.keypoints is None)
    if b.keypoints is not None and a.keypoints is not None:
        assert repr(a.keypoints) == repr(b.keypoints)


@pytest.mark.parametrize(("indent", "rotate"), [(None, 0), (2, 0), (None, 3), (None, 8), (None, 4 - 35)],
                         ids=["compact", "pretty-printed", "rle-first", "text-list-first", "rle-last"])
def test_fast_reader_reads_what_json_reads(tmp_path, indent, rotate):
    path = write_mixed(tmp_path, indent, rotate)
    table = read_coco(path).annotations
    reference = json.loads(path.read_text(), object_hook=compact_annotation)["annotations"]
    assert len(table) == len(reference)
    for got, want in zip(table, reference):
        same_annotation(got, want)
    slow_ids = {table[i].id for i in table.slow}
    assert 2 not in slow_ids and 3 not in slow_ids  # plain numbers take the fast path
    assert {4, 7, 9, 10, 13} <= slow_ids  # RLE, a flat list, text, an empty part, one number


def test_a_box_out_of_float_range_falls_back_and_is_skipped(tmp_path):
    path = write_json(tmp_path / "inf.json", coco_dict(annotations=[coco_annotation(1), coco_annotation(2, bbox=[INF, 1, 2, 2])]))
    path.write_text(path.read_text().replace(str(INF), "1e999"))
    coco = read_coco(path)
    assert set(coco.annotations.slow) == {0, 1}  # msgspec refuses 1e999 as a float: json reads the file
    bulk, _ = objects_by_image(coco, False, 5)
    assert [(s.annotation_id, s.reason) for s in bulk.skips] == [(2, "not_finite")]


def test_json_only_files_fall_back(tmp_path):
    """NaN is Python's JSON, not JSON: the json reader takes the file."""
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(coco_dict(annotations=[coco_annotation(1, polygon=[10, float("nan"), 30, 10, 30, 30])])))
    coco = read_coco(path)
    assert len(coco.annotations) == 1 and set(coco.annotations.slow) == {0}


def objects_by_image(coco, include_crowd, num_keypoints):
    class_of = {c.id: i for i, c in enumerate(coco.categories)}
    kpts_of = {c.id: len(c.keypoints) for c in coco.categories if c.keypoints}
    bulk = table_objects(coco.annotations, coco.images, class_of, kpts_of, num_keypoints, include_crowd)
    by_image = {}
    for image_id, image in coco.images.items():
        anns = [a for a in coco.annotations if a.image_id == image_id]
        by_image[image_id] = image_labels(image, anns, class_of, kpts_of, num_keypoints, include_crowd)
    return bulk, by_image


@pytest.mark.parametrize("include_crowd", [False, True])
@pytest.mark.parametrize("num_keypoints", [5, 0])
def test_bulk_objects_equal_image_labels(tmp_path, include_crowd, num_keypoints):
    coco = read_coco(write_mixed(tmp_path))
    bulk, by_image = objects_by_image(coco, include_crowd, num_keypoints)
    skips = [s for _, (_, image_skips) in by_image.items() for s in image_skips]
    bulk_skips = [s for s in bulk.skips if s.reason != "unknown_image"]
    assert sorted(bulk_skips, key=lambda s: s.annotation_id) == sorted(skips, key=lambda s: s.annotation_id)
    assert [s.annotation_id for s in bulk.skips if s.reason == "unknown_image"] == [20]
    for image_id, (labels, _) in by_image.items():
        mine = np.flatnonzero(bulk.image == image_id)
        assert coco.annotations.ids[bulk.rows[mine]].tolist() == labels.source_ids.tolist()
        np.testing.assert_array_equal(bulk.class_id[mine], labels.class_id)
        np.testing.assert_array_equal(bulk.xyxy[mine], labels.xyxy)
        np.testing.assert_array_equal(bulk.keypoints[mine], labels.keypoints)
        for j, polygon in zip(mine, labels.polygons):
            np.testing.assert_array_equal(bulk.polygon_xy[bulk.polygon_offsets[j] : bulk.polygon_offsets[j + 1]], polygon)


@pytest.mark.parametrize("rotate", [0, 7, 20])
def test_bulk_objects_report_the_joins_one_annotation_reports(tmp_path, rotate):
    """Overlapping parts: the same objects and the same mask IoU from both paths."""
    coco = read_coco(write_mixed(tmp_path, rotate=rotate))
    bulk, by_image = objects_by_image(coco, False, 5)
    reported = {int(coco.annotations.ids[bulk.rows[j]]): iou for j, iou in zip(bulk.lossy.tolist(), bulk.lossy_iou.tolist())}
    expected = {}
    for labels, _ in by_image.values():
        for ann_id, polygon in zip(labels.source_ids.tolist(), labels.polygons):
            ann = next(a for a in coco.annotations if a.id == ann_id)
            iou = annotation_join_loss(ann, polygon)
            if iou is not None:
                expected[ann_id] = iou
    assert reported == expected and set(reported) == {34, 35}


def test_bulk_objects_equal_image_labels_on_synthetic_data(tmp_path):
    coco_data, _ = make_coco(SynthSpec(images=40, person_keypoints=True, multipart_ratio=0.5, crowd_ratio=0.3, star_points=20), draw=False)
    coco = read_coco(write_json(tmp_path / "s.json", coco_data))
    bulk, by_image = objects_by_image(coco, False, 17)
    assert sum(len(labels) for labels, _ in by_image.values()) == len(bulk.rows)
    assert [s.annotation_id for s in bulk.skips] == sorted(s.annotation_id for _, sk in by_image.values() for s in sk)
    for image_id, (labels, _) in by_image.items():
        mine = np.flatnonzero(bulk.image == image_id)
        np.testing.assert_array_equal(bulk.keypoints[mine], labels.keypoints)
        for j, polygon in zip(mine, labels.polygons):
            np.testing.assert_array_equal(bulk.polygon_xy[bulk.polygon_offsets[j] : bulk.polygon_offsets[j + 1]], polygon)


def random_parts(rng, count: int, sizes=(3, 9)) -> list[np.ndarray]:
    parts = []
    for _ in range(count):
        n = int(rng.integers(*sizes))
        part = np.round(rng.uniform(0, 100, 2) + rng.uniform(-10, 10, (n, 2)))  # whole numbers: many equal distances
        if rng.random() < 0.2:
            part = np.vstack([part, part[:1]])
        if rng.random() < 0.2:
            part = np.vstack([part[:2], part[1:]])
        parts.append(part)
    return parts


@pytest.mark.parametrize("seed", range(3))
def test_rings_equal_join_polygons_of_one_part(seed):
    rng = np.random.default_rng(seed)
    parts = random_parts(rng, 300)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    xy, out = join_singles(np.vstack(parts), offsets)
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(xy[out[i] : out[i + 1]], join_polygons([part]))


@pytest.mark.parametrize("seed", range(3))
def test_join_pairs_equal_join_polygons(seed):
    rng = np.random.default_rng(seed)
    objects = [random_parts(rng, 2) for _ in range(400)]
    parts = [p for obj in objects for p in obj]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    xy, out = join_pairs(np.vstack(parts), offsets)
    for i, obj in enumerate(objects):
        np.testing.assert_array_equal(xy[out[i] : out[i + 1]], join_polygons(obj))


def test_empty_file(tmp_path):
    coco = read_coco(write_json(tmp_path / "e.json", coco_dict(annotations=[])))
    bulk = table_objects(coco.annotations, coco.images, {1: 0}, {1: 5}, 5, False)
    assert len(bulk.rows) == 0 and bulk.keypoints.shape == (0, 5, 3) and bulk.skips == []


@pytest.mark.parametrize("pick", [[0, 2, 3, 9, 15], [1], [], "odd"], ids=["some", "one", "none", "every-other"])
def test_take_keeps_rows_whole_and_in_order(tmp_path, pick):
    table = read_coco(write_mixed(tmp_path)).annotations
    rows = np.arange(1, len(table), 2) if pick == "odd" else np.array(pick, dtype=np.int64)
    taken = table.take(rows)
    assert len(taken) == len(rows)
    for new, old in enumerate(rows.tolist()):
        same_annotation(taken[new], table[old])
    assert table.take(np.arange(len(table))) is table  # all rows: no copy
