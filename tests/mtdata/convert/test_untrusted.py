"""``mtdata convert`` on COCO files from strangers: nothing read outside --images, nothing written outside OUT,
nothing silently wrong. Each class of hostile or careless input is generated many ways."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mtdata.convert.files import SplitFiles
from mtdata.formats.yolo.data_yaml import read_data_yaml
from tests.mtdata.convert.test_dataset import convert, dataset_rows, leftovers, tree_digest
from tests.mtdata.factories import (
    coco_annotation,
    coco_dict,
    coco_image,
    person_category,
    person_keypoints,
    plain_category,
    write_json,
)

SECRET = b"not an image of the dataset"


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def report_of(tmp_path: Path, *args) -> tuple[object, dict]:
    report = tmp_path / "report.json"
    result = convert(*args, "--report", report)
    assert result.exit_code == 0, result.output
    return result, json.loads(report.read_text())


# --- item 2: images only from inside --images ------------------------------------------------


def hostile_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(images root, the secret beside it): links of every kind out of the root, and one good image."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "deep.jpg").write_bytes(SECRET)
    (root / "good.jpg").write_bytes(b"good image")
    os.symlink(secret, root / "link.jpg")
    os.symlink(secret, root / "sub" / "relative.jpg")  # found by name, below the root
    os.symlink(tmp_path / "outside", root / "folder")
    os.symlink(root / "link.jpg", root / "chain.jpg")  # a link to a link out
    return root, secret


def hostile_names(secret: Path) -> list[str]:
    names = [str(secret), str(secret.parent / "outside" / "deep.jpg"), "link.jpg", "chain.jpg", "relative.jpg", "sub/relative.jpg",
             "folder/deep.jpg", "/etc/passwd", "/proc/self/environ", "../../../../../../etc/hostname"]
    names += ["../" * k + "secret.jpg" for k in range(1, 5)]  # climbing from the root and from <split>/
    names += [f"sub/{'../' * k}secret.jpg" for k in range(1, 4)]
    return names


HOSTILE = hostile_names(Path("/TMP/secret.jpg"))


@pytest.mark.parametrize("copy", [False, True], ids=["symlink", "copy"])
@pytest.mark.parametrize("name", HOSTILE, ids=[n.replace("/TMP/", "tmp:") for n in HOSTILE])
def test_no_image_comes_from_outside_images(tmp_path, copy, name):
    root, _ = hostile_folder(tmp_path)
    name = name.replace("/TMP", str(tmp_path))
    images = [coco_image(1, file_name=name), coco_image(999, file_name="good.jpg")]
    anns = [coco_annotation(1, image_id=1), coco_annotation(2, image_id=999)]
    ann = write_json(tmp_path / "ann" / "instances_val.json", coco_dict(images=images, annotations=anns))
    out = tmp_path / "out"
    result, report = report_of(tmp_path, ann, out, "--images", root, *(["--copy"] if copy else []))
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["good.jpg"]
    assert (out / "images" / "val" / "good.jpg").read_bytes() == b"good image"
    assert sorted(p.name for p in (out / "labels" / "val").iterdir()) == ["good.txt"]
    refused = {r["file_name"]: r["why"] for r in report["images_refused"]}
    assert set(refused) | set(report["images_not_found"]) == {name}  # named, not taken
    if name in ("link.jpg", "chain.jpg", "relative.jpg", "sub/relative.jpg", "folder/deep.jpg"):
        assert "link out of --images" in refused[name] and "--follow-links" in refused[name]
        assert "refused" in result.stdout
    elif name.startswith("/") or ".." in name:
        assert "points outside --images" in refused[name]
    for path in out.rglob("*"):
        assert not path.is_file() or SECRET not in path.read_bytes()


def test_follow_links_takes_links_but_never_climbs(tmp_path):
    root, _ = hostile_folder(tmp_path)
    (tmp_path / "outside" / "abs.jpg").write_bytes(SECRET)
    names = ["link.jpg", "folder/deep.jpg", "../secret.jpg", str(tmp_path / "outside" / "abs.jpg")]
    images = [coco_image(i + 1, file_name=name) for i, name in enumerate(names)]
    ann = write_json(tmp_path / "ann" / "instances_val.json",
                     coco_dict(images=images, annotations=[coco_annotation(i + 1, image_id=i + 1) for i in range(4)]))
    out = tmp_path / "out"
    _, report = report_of(tmp_path, ann, out, "--images", root, "--follow-links", "--copy")
    # abs.jpg: an absolute name is looked for by its name inside, and the walk follows links now
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["abs.jpg", "deep.jpg", "link.jpg"]
    assert [r["file_name"] for r in report["images_refused"]] == ["../secret.jpg"]


def test_a_link_loop_below_images_is_walked_once(tmp_path):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    os.symlink(root, root / "a" / "loop")
    (root / "a" / "x.jpg").write_bytes(b"x")
    ann = write_json(tmp_path / "ann" / "instances_val.json",
                     coco_dict(images=[coco_image(1, file_name="x.jpg"), coco_image(2, file_name="gone.jpg")],
                               annotations=[coco_annotation(1)]))
    for follow in ([], ["--follow-links"]):
        out = tmp_path / f"out{len(follow)}"
        _, report = report_of(tmp_path, ann, out, "--images", root, *follow)
        assert report["images"] == {"val": 1} and report["images_not_found"] == ["gone.jpg"]


@pytest.mark.parametrize("strict", [False, True])
def test_strict_fails_on_a_refused_image(tmp_path, strict):
    root, _ = hostile_folder(tmp_path)
    ann = write_json(tmp_path / "ann" / "instances_val.json",
                     coco_dict(images=[coco_image(1, file_name="link.jpg")], annotations=[coco_annotation(1)]))
    result = convert(ann, tmp_path / "out", "--images", root, *(["--strict"] if strict else []))
    if strict:
        assert "1 refused" in one_error_line(result) and not (tmp_path / "out").exists()
    else:
        assert result.exit_code == 0


# --- item 3 and 14: names that would write outside OUT or cannot name a file ------------------------


BAD_NAMES = ["evil\n../../pwned.jpg", "a\nb.jpg", "\n.jpg", "a\r\nb.jpg", "a\x00b.jpg", "tab\t.jpg", "x" * 300 + ".jpg",
             "é" * 200 + ".jpg", "..", "sub/..", "sub/", ".", "", "\ud800.jpg"]


@pytest.mark.parametrize("with_images", [False, True], ids=["labels-only", "with-images"])
def test_names_that_cannot_name_files_are_refused_and_write_nothing_outside(tmp_path, monkeypatch, with_images):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root = tmp_path / "images"
    root.mkdir()
    (root / "good.jpg").write_bytes(b"good")
    images = [{**coco_image(i + 1), "file_name": name} for i, name in enumerate(BAD_NAMES)] + [coco_image(99, file_name="good.jpg")]
    ann = tmp_path / "ann" / "instances_val.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(coco_dict(images=images, annotations=[coco_annotation(1, image_id=99)])))
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    _, report = report_of(tmp_path, ann, out, *(["--images", root] if with_images else []))
    assert sorted(p.name for p in (out / "labels" / "val").iterdir()) == ["good.txt"]
    assert {r["image_id"] for r in report["images_refused"]} == set(range(1, len(BAD_NAMES) + 1))
    assert list(cwd.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out", "report.json"])


@pytest.mark.parametrize("stem", ["a\nb", "x\n..", "\n", "a\rb", "plain"])
def test_the_label_file_helper_cannot_be_split_by_a_newline(tmp_path, monkeypatch, stem):
    """The helper process is handed the paths NUL-separated: a name is one file, whatever it holds."""
    monkeypatch.chdir(tmp_path)
    label_dir = tmp_path / "labels"
    label_dir.mkdir()
    files = SplitFiles([object()], [stem], label_dir, tmp_path / "images", "val", None, False).start()
    try:
        assert files.wait().tolist() == [True]
    finally:
        files.close()
    assert [p.name for p in label_dir.iterdir()] == [f"{stem}.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]


# --- item 5: duplicate image ids ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_duplicate_image_ids_are_refused_naming_both_entries(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    ids = list(range(1, n + 1))
    first, second = sorted(rng.choice(n, size=2, replace=False).tolist())
    ids[second] = ids[first]
    images = [coco_image(image_id, file_name=f"im{i}.jpg") for i, image_id in enumerate(ids)]
    anns = [coco_annotation(i + 1, image_id=image_id) for i, image_id in enumerate(ids)]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(images=images, annotations=anns))
    line = one_error_line(convert(ann, tmp_path / "out"))
    assert f"images[{first}] ('im{first}.jpg') and images[{second}] ('im{second}.jpg') share id {ids[first]}" in line
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []


# --- item 6: RLE counts that do not cover the mask ------------------------------------------------


def disc_counts(h: int, w: int, compressed: bool):
    yy, xx = np.mgrid[:h, :w]
    mask = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 3) ** 2).astype(np.uint8)
    if compressed:
        return mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
    flat = mask.reshape(-1, order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [len(flat)]])
    return np.diff(bounds).tolist()


@pytest.mark.parametrize("compressed", [False, True], ids=["list", "string"])
@pytest.mark.parametrize("change", ["short", "long", "last-run-gone", "one-run"])
def test_rle_counts_that_do_not_cover_the_image_are_skipped_every_run_alike(tmp_path, compressed, change):
    h, w = 80, 100
    runs = disc_counts(h, w, False)
    bad = {"short": runs[:-1] + [runs[-1] - 37], "long": runs[:-1] + [runs[-1] + 5], "last-run-gone": runs[:-1],
           "one-run": [h * w - 1]}[change]
    counts = mask_utils.frPyObjects({"size": [h, w], "counts": bad}, h, w)["counts"].decode() if compressed else bad
    anns = [coco_annotation(1), coco_annotation(2, category_id=5, segmentation={"size": [h, w], "counts": counts}, bbox=[1, 1, 9, 9])]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    digests = []
    for run in range(2):
        _, report = report_of(tmp_path, ann, tmp_path / f"out{run}")
        assert [(s["annotation_id"], s["reason"]) for s in report["skipped_annotations"]] == [(2, "bad_rle")]
        assert "cover" in report["skipped_annotations"][0]["message"]
        digests.append(tree_digest(tmp_path / f"out{run}" / "labels"))
    assert digests[0] == digests[1]


@pytest.mark.parametrize("compressed", [False, True], ids=["list", "string"])
def test_rle_counts_that_cover_the_image_convert(tmp_path, compressed):
    seg = {"size": [80, 100], "counts": disc_counts(80, 100, compressed)}
    ann = write_json(tmp_path / "in" / "instances_val.json",
                     coco_dict(annotations=[coco_annotation(1, category_id=5, segmentation=seg, bbox=[1, 1, 9, 9])]))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    assert report["rows"] == 1 and report["skipped_annotations"] == []


# --- items 7 and 14: file-level problems, one line each ------------------------------------------------


def annotation_with(**fields) -> dict:
    ann = coco_annotation(1, keypoints=person_keypoints())
    for key, value in fields.items():
        if value is DELETE:
            del ann[key]
        else:
            ann[key] = value
    return ann


DELETE = object()
ID_VALUES = [DELETE, None, True, False, -1, -(2**70), 2**63, 2**64, 10**30, 1.0, 1.5, "1", "", [1], {"id": 1}]


@pytest.mark.parametrize("key", ["id", "image_id", "category_id"])
@pytest.mark.parametrize("value", ID_VALUES, ids=[repr(v)[:12] for v in ID_VALUES])
def test_annotation_ids_that_are_not_ids(tmp_path, key, value):
    anns = [coco_annotation(7, category_id=5), annotation_with(**{key: value})]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    line = one_error_line(convert(ann, tmp_path / "out"))
    assert "annotations[1]" in line and repr(key) in line


@pytest.mark.parametrize("seed", range(4))
def test_duplicate_annotation_ids_are_refused(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    ids = rng.choice(np.arange(1, 10**6), size=n, replace=False).tolist()
    first, second = sorted(rng.choice(n, size=2, replace=False).tolist())
    ids[second] = ids[first]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=[coco_annotation(i) for i in ids]))
    line = one_error_line(convert(ann, tmp_path / "out"))
    assert f"annotations[{first}] and annotations[{second}] share id {ids[first]}" in line


@pytest.mark.parametrize("value", [2, -1, "1", None, [1], 0.5])
def test_iscrowd_that_is_not_0_or_1(tmp_path, value):
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=[annotation_with(iscrowd=value)]))
    assert "'iscrowd' must be 0 or 1" in one_error_line(convert(ann, tmp_path / "out"))


IMAGE_SIZES = [2**70, 2**31, 2**21, 0, -4, 1.5, 640.0, True, "640", None, [640]]


@pytest.mark.parametrize("key", ["width", "height"])
@pytest.mark.parametrize("value", IMAGE_SIZES, ids=[repr(v)[:10] for v in IMAGE_SIZES])
def test_image_sizes_are_bounded_integers(tmp_path, key, value):
    image = coco_image(1)
    image[key] = value
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(images=[image], annotations=[coco_annotation(1)]))
    assert "images[0]" in (line := one_error_line(convert(ann, tmp_path / "out"))) and "width and height" in line


CATEGORY_PROBLEMS = [
    ({"name": ["person"]}, "'name' string"), ({"name": {"a": 1}}, "'name' string"), ({"name": 7}, "'name' string"),
    ({"name": ""}, "'name' string"), ({"name": None}, "'name' string"), ({"name": "a\nb"}, "control character"),
    ({"id": True}, "'id'"), ({"id": 2**64}, "'id'"), ({"id": "1"}, "'id'"),
    ({"keypoints": "nose"}, "list of names"), ({"keypoints": ["a", 1]}, "list of names"), ({"keypoints": [["a"]]}, "list of names"),
    ({"keypoints": [f"k{i}" for i in range(1025)]}, "1025 keypoints"),
    ({"skeleton": [[1.5, 2]]}, "skeleton[0]"), ({"skeleton": [[1, 2], [2.0, 3]]}, "skeleton[1]"), ({"skeleton": [["1", "2"]]}, "skeleton[0]"),
    ({"skeleton": [[1, 2, 3]]}, "skeleton[0]"), ({"skeleton": [[True, 2]]}, "skeleton[0]"), ({"skeleton": [1, 2]}, "skeleton[0]"),
    ({"skeleton": "1-2"}, "'skeleton' must be a list"),
]


@pytest.mark.parametrize("change, words", CATEGORY_PROBLEMS, ids=[repr(c)[:30] for c, _ in CATEGORY_PROBLEMS])
def test_category_problems_name_the_entry(tmp_path, change, words):
    category = {**person_category(1), **change}
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(categories=[plain_category(5), category]))
    line = one_error_line(convert(ann, tmp_path / "out"))
    assert "categories[1]" in line and words in line


def test_no_categories_is_refused(tmp_path):
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(categories=[]))
    assert "'categories' is empty" in one_error_line(convert(ann, tmp_path / "out"))


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("where", ['"segmentation": ', '"keypoints": ', '"images": ', '"id": ', '"name": '])
def test_deep_nesting_is_one_line(tmp_path, depth, where):
    text = json.dumps(coco_dict(annotations=[coco_annotation(1, keypoints=person_keypoints())]))
    at = text.index(where) + len(where)
    path = tmp_path / "in" / "instances_val.json"
    path.parent.mkdir()
    path.write_text(text[:at] + "[" * depth + "]" * depth + ', "x": ' + text[at:])
    line = one_error_line(convert(path, tmp_path / "out"))
    assert str(path) in line


# --- item 7: annotations that are not what they claim: skipped and named, same in both readers --------


BAD_BOXES = [[1, 2, 3], [], "abc", [1, 2, 3, "4"], [True, 1, 2, 3], {"x": 1}, [[1, 2, 3, 4]], [1, 2, 3, 4, 5], [1, 2, 3, None]]


@pytest.mark.parametrize("bbox", BAD_BOXES, ids=[repr(b)[:16] for b in BAD_BOXES])
@pytest.mark.parametrize("json_only", [False, True], ids=["fast-reader", "json-reader"])
def test_malformed_boxes_are_skipped(tmp_path, bbox, json_only):
    anns = [coco_annotation(1), annotation_with(id=2, bbox=bbox)]
    if json_only:  # a NaN literal sends the whole file to the json reader
        anns.append(coco_annotation(3, polygon=[float("nan"), 1, 2, 3, 4, 5]))
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    skipped = {s["annotation_id"]: s for s in report["skipped_annotations"]}
    assert skipped[2]["reason"] == "bad_bbox" and "4 numbers" in skipped[2]["message"]
    assert report["rows"] == 1


def spelled(values: list, rng: np.random.Generator) -> list:
    """Some numbers of a list spelled as strings (or booleans): what a careless exporter writes."""
    out = list(values)
    for i in rng.choice(len(out), size=int(rng.integers(1, len(out) + 1)), replace=False).tolist():
        out[i] = str(out[i]) if rng.random() < 0.8 else bool(out[i])
    return out


@pytest.mark.parametrize("seed", range(4))
def test_numbers_spelled_as_strings_are_not_numbers(tmp_path, seed):
    rng = np.random.default_rng(seed)
    polygon = [10.0, 10.0, 50.0, 10.0, 50.0, 40.0, 10.0, 40.0]
    anns = [coco_annotation(1), coco_annotation(2, segmentation=[spelled(polygon, rng)], bbox=[10, 10, 40, 30]),
            coco_annotation(3, keypoints=spelled(person_keypoints(), rng))]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    assert {s["annotation_id"]: s["reason"] for s in report["skipped_annotations"]} == {2: "bad_polygon", 3: "bad_keypoints"}


FAR = [1e308, -1e308, 1e12, -1e12, 2.5e6, 350.0, -250.0]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("json_only", [False, True], ids=["fast-reader", "json-reader"])
def test_coordinates_far_outside_the_image_are_skipped_not_clamped(tmp_path, seed, json_only):
    """A value more than the image's size past an edge, in a polygon, a box or a labeled keypoint (100 x 80 image)."""
    rng = np.random.default_rng(seed)
    anns, far_ids = [coco_annotation(1)], []
    for k in range(12):
        ann = coco_annotation(10 + k, keypoints=person_keypoints())
        where = ["polygon", "bbox", "keypoint"][k % 3]
        value = float(rng.choice(FAR))
        if where == "polygon":
            ann["segmentation"][0][int(rng.integers(0, 8))] = value
        elif where == "bbox":
            ann["bbox"][int(rng.integers(0, 2))] = value
        else:
            ann["keypoints"][3 * int(rng.integers(0, 5)) + int(rng.integers(0, 2))] = value
        anns.append(ann)
        far_ids.append(ann["id"])
    if json_only:
        anns.append(coco_annotation(99, polygon=[float("nan"), 1, 2, 3, 4, 5]))
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    skipped = {s["annotation_id"]: s for s in report["skipped_annotations"]}
    for ann_id in far_ids:
        assert skipped[ann_id]["reason"] == "out_of_image", skipped.get(ann_id)
        assert "outside the 100 x 80 image" in skipped[ann_id]["message"]
    assert report["rows"] == 1


@pytest.mark.parametrize(
    "ann, reason",
    [
        pytest.param(coco_annotation(2, bbox=[150, 10, 20, 20], keypoints=person_keypoints()), "out_of_image", id="box-right-of-image"),
        pytest.param(coco_annotation(2, polygon=[150, 10, 160, 10, 160, 20], bbox=[1, 1, 5, 5]), "out_of_image",
                     id="polygon-right-of-image"),
        pytest.param(coco_annotation(2, bbox=[10, 10, 20, 1e-6]), "bad_bbox", id="box-thinner-than-a-row"),
        pytest.param(coco_annotation(2, polygon=[10, 10, 30, 10, 30, 10.00001]), "bad_polygon", id="polygon-thinner-than-a-row"),
        pytest.param(coco_annotation(2, polygon=[10, 10, 20, 20, 30, 30]), "bad_polygon", id="polygon-collinear"),
        pytest.param(coco_annotation(2, polygon=[10, 10, 10, 10, 10, 10, 10, 10]), "bad_polygon", id="polygon-one-point"),
    ],
)
@pytest.mark.parametrize("task", ["multitask", "pose"])
def test_objects_no_row_can_hold_are_skipped(tmp_path, ann, reason, task):
    """What a row cannot hold (a zero-size box or polygon once clipped to the image) is named, not written."""
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=[coco_annotation(1, keypoints=person_keypoints()), ann]))
    _, report = report_of(tmp_path, ann, tmp_path / "out", "--task", task)
    assert [(s["annotation_id"], s["reason"]) for s in report["skipped_annotations"]] == [(2, reason)]
    dataset_rows(tmp_path / "out")  # every row written reads back


# --- items 15 to 18: what a new user meets ------------------------------------------------------------


@pytest.mark.parametrize("name", ["annotations.json", "coco.json", "data.json", "labels_export.json", "instances_default.json"])
def test_a_lone_file_that_names_no_split_becomes_train(tmp_path, name):
    ann = write_json(tmp_path / "in" / name, coco_dict(annotations=[coco_annotation(1)]))
    result, _ = report_of(tmp_path, ann, tmp_path / "out")
    assert read_data_yaml(tmp_path / "out" / "data.yaml").splits == {"train": ["images/train"]}
    assert (tmp_path / "out" / "labels" / "train" / "img1.txt").is_file()
    assert f"{name} names no split: written as train" in result.stdout and "--split" in result.stdout
    result = convert(ann, tmp_path / "out2", "--split", "val")
    assert result.exit_code == 0 and read_data_yaml(tmp_path / "out2" / "data.yaml").splits == {"val": ["images/val"]}


@pytest.mark.parametrize("split", ["..", "a/b", "../../x", "a\nb"])
def test_split_names_that_cannot_name_a_folder(tmp_path, split):
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=[coco_annotation(1)]))
    assert "split name" in one_error_line(convert(ann, tmp_path / "out", "--split", split))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_pose_only_file_read_as_multitask_says_task_pose(tmp_path):
    anns = [coco_annotation(i, segmentation=[], bbox=[10, 10, 30, 30], keypoints=person_keypoints()) for i in range(1, 4)]
    ann = write_json(tmp_path / "in" / "person_keypoints_val2017.json", coco_dict(annotations=anns))
    result, report = report_of(tmp_path, ann, tmp_path / "out")
    assert report["rows"] == 0 and "--task pose" in result.stdout and "no row was written" in result.stdout
    assert report["skipped_by_reason"] == {"no_mask": 3}
    _, report = report_of(tmp_path, ann, tmp_path / "pose", "--task", "pose")
    assert report["rows"] == 3


@pytest.mark.parametrize("k, skeleton, kept", [
    (5, [[1, 2], [2, 9], [14, 15], [3, 4]], [[0, 1], [2, 3]]),  # CrowdPose: pairs past K
    (3, [[0, 1], [1, 3], [4, 1]], [[0, 2]]),  # 0 is not a 1-based keypoint
    (5, [[1, 2]], [[0, 1]]),
])
def test_skeleton_pairs_beyond_k_are_noted(tmp_path, k, skeleton, kept):
    names = [f"left_{i}" if i % 2 else f"right_{i - 1}" for i in range(k)]
    cats = [person_category(1, keypoints=names, skeleton=skeleton)]
    ann = write_json(tmp_path / "in" / "instances_val.json",
                     coco_dict(categories=cats, annotations=[coco_annotation(1, keypoints=person_keypoints(k=k))]))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    assert read_data_yaml(tmp_path / "out" / "data.yaml").skeleton == kept
    dropped = len(skeleton) - len(kept)
    noted = [n for n in report["notes"] if "skeleton" in n]
    assert (len(noted) == 1 and f"{dropped} pairs" in noted[0]) if dropped else noted == []


def test_left_out_objects_are_named_by_id(tmp_path):
    anns = [coco_annotation(11, keypoints=person_keypoints()), coco_annotation(12, keypoints=person_keypoints(0, 0, 0, 0, 0)),
            coco_annotation(13, category_id=5, segmentation=[], bbox=[1, 1, 5, 5]), coco_annotation(14, segmentation=[], bbox=[1, 1, 5, 5])]
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    for task, left in (("multitask", {13: "no_mask", 14: "no_mask"}), ("pose", {12: "no_keypoints", 14: "no_keypoints"})):
        result, report = report_of(tmp_path, ann, tmp_path / task, "--task", task)
        assert {s["annotation_id"]: s["reason"] for s in report["skipped_annotations"]} == left
        row = next(line for line in result.stdout.splitlines() if next(iter(left.values())) in line)
        assert all(str(i) in row for i in left)  # the "left out" table names them


# --- item 22: overlapping parts of one object ----------------------------------------------------------


def ring(cx: float, cy: float, r: float, n: int = 24, phase: float = 0.0) -> list[float]:
    angles = phase + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1), 3).reshape(-1).tolist()


def lost_share(d: float, r: float, other_area: float = 0.0) -> float:
    """Share of the union of two r-discs d apart (and other parts' area) that their lens is: what an outline round both loses."""
    if d >= 2 * r:
        return 0.0
    lens = 2 * r * r * np.arccos(d / (2 * r)) - d / 2 * np.sqrt(4 * r * r - d * d)
    return lens / (2 * np.pi * r * r - lens + other_area)


@pytest.mark.parametrize("json_only", [False, True], ids=["fast-reader", "json-reader"])
def test_overlapping_parts_are_reported_with_their_mask_iou(tmp_path, json_only):
    """Two discs of one object, 0 to 35 px apart (r = 15), sometimes with a third part apart from them."""
    rng = np.random.default_rng(0)
    anns, expected = [], {}
    for i in range(40):
        d = float(rng.uniform(0, 35))
        parts = [ring(30, 40, 15, phase=float(rng.uniform(0, 1))), ring(30 + d, 40, 15)]
        if i % 3 == 0:
            parts.append(ring(85, 10, 6))
        rng.shuffle(parts)
        anns.append(coco_annotation(i + 1, category_id=5, segmentation=parts, bbox=[1, 1, 90, 70]))
        expected[i + 1] = lost_share(d, 15, np.pi * 36 if len(parts) == 3 else 0.0)
    if json_only:
        anns.append(coco_annotation(101, polygon=[float("nan"), 1, 2, 3, 4, 5]))
    ann = write_json(tmp_path / "in" / "instances_val.json", coco_dict(annotations=anns))
    result, report = report_of(tmp_path, ann, tmp_path / "out")
    lossy = {j["annotation_id"]: j["iou"] for j in report["lossy_joins"]}
    for ann_id, share in expected.items():
        if share > 0.08:
            assert ann_id in lossy and lossy[ann_id] == pytest.approx(1 - share, abs=0.03)
        elif share < 0.03:
            assert ann_id not in lossy
    assert [j["annotation_id"] for j in report["lossy_joins"]] == sorted(lossy)  # file order
    assert "overlapping parts" in result.stdout and report["rows"] == 40


@pytest.mark.parametrize("seed", range(3))
def test_the_finder_resolves_paths_as_realpath_does(tmp_path, seed):
    """Folders resolved once and cached: the same answer as os.path.realpath for files, links and linked folders."""
    from mtdata.convert.files import ImageFinder

    rng = np.random.default_rng(seed)
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", root / "a" / "to-out")
    os.symlink(root / "a" / "b", root / "to-b")
    paths = []
    for i in range(30):
        folder = root / ["", "a", "a/b", "to-b", "a/to-out"][int(rng.integers(0, 5))]
        target = folder.resolve() / f"f{i}.jpg"
        target.write_bytes(b"x")
        if rng.random() < 0.3:
            os.symlink(tmp_path / "out" / f"f{i}.jpg" if (tmp_path / "out" / f"f{i}.jpg").exists() else target, root / f"l{i}.jpg")
            paths.append(root / f"l{i}.jpg")
        paths.append(folder / f"f{i}.jpg")
    finder = ImageFinder(root)
    for path in paths:
        assert finder._real_path(str(path)) == os.path.realpath(path)


@pytest.mark.parametrize("keypoints", ["abc", 5, {"x": 1}, True, [[1, 2, 2]] * 5, ["1"] * 15, [None] * 15])
def test_keypoints_that_are_not_a_list_of_numbers_are_skipped(tmp_path, keypoints):
    """A string, number or object where the keypoint list belongs was read as 'no keypoints' and the row kept."""
    ann = write_json(tmp_path / "in" / "instances_val.json",
                     coco_dict(annotations=[coco_annotation(1), {**coco_annotation(2), "keypoints": keypoints}]))
    _, report = report_of(tmp_path, ann, tmp_path / "out")
    assert [(s["annotation_id"], s["reason"]) for s in report["skipped_annotations"]] == [(2, "bad_keypoints")]


@pytest.mark.parametrize("hole", [0, 6, 14], ids=["solid", "small-hole", "large-hole"])
def test_rle_holes_a_row_cannot_hold_are_reported(tmp_path, hole):
    """A ring (an RLE mask with a hole) becomes one outline round it: the hole is filled, so the row covers more
    than the mask. Losing more than 5% of the mask is reported with its IoU, as overlapping polygon parts are."""
    from pycocotools import mask as mask_utils

    yy, xx = np.mgrid[:80, :100]
    distance = np.hypot(xx - 50, yy - 40)
    mask = (distance <= 25) & (distance >= hole) if hole else distance <= 25
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    seg = {"size": [80, 100], "counts": rle["counts"].decode()}
    ann = write_json(tmp_path / "in" / "instances_val.json",
                     coco_dict(annotations=[coco_annotation(7, category_id=5, segmentation=seg, bbox=[25, 15, 50, 50])]))
    result, report = report_of(tmp_path, ann, tmp_path / "out")
    assert report["rows"] == 1
    lost = {j["annotation_id"]: j["iou"] for j in report["lossy_joins"]}
    share_kept = mask.sum() / (distance <= 25).sum()
    if share_kept > 0.95:
        assert lost == {} and "lose more than 5%" not in result.stdout
    else:
        assert lost[7] == pytest.approx(share_kept, abs=0.01) and "holes of an RLE mask filled" in result.stdout
