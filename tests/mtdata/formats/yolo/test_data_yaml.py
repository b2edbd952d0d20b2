"""data.yaml: names and kpt_names in both spellings, validation by key, write-then-read."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.data_yaml import (
    DatasetConfig,
    dump_yaml,
    label_dir_for,
    parse_data_dict,
    read_data_yaml,
    write_data_yaml,
)
from mtdata.formats.yolo.rows import LabelLayout
from mtdata.formats.yolo.splits import label_path, split_pairs

FILE = Path("/data/set/data.yaml")


def multitask_dict(**changes) -> dict:
    data = {
        "path": "/data/set", "train": "images/train", "val": "images/val",
        "names": {0: "person", 1: "ball"}, "kpt_shape": [3, 3],
        "kpt_names": {0: ["nose", "left_eye", "right_eye"]}, "flip_idx": [0, 2, 1], "skeleton": [[0, 1], [0, 2]],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "names, expected",
    [
        pytest.param(["a", "b"], {0: "a", 1: "b"}, id="list"),
        pytest.param({0: "a", 1: "b"}, {0: "a", 1: "b"}, id="dict"),
        pytest.param({"1": "b", "0": "a"}, {0: "a", 1: "b"}, id="dict-string-keys"),
    ],
)
def test_names(names, expected):
    assert parse_data_dict({"names": names}, FILE).names == expected


@pytest.mark.parametrize(
    "kpt_names, expected",
    [
        pytest.param({0: ["nose", "left_eye", "right_eye"]}, {0: ["nose", "left_eye", "right_eye"]}, id="dict-by-id"),
        pytest.param({"person": ["nose", "left_eye", "right_eye"]}, {0: ["nose", "left_eye", "right_eye"]}, id="dict-by-name"),
        pytest.param({"0": ["a", "b", "c"]}, {0: ["a", "b", "c"]}, id="dict-string-id"),
        pytest.param(["person"], {0: ["kpt0", "kpt1", "kpt2"]}, id="list-of-classes"),
        pytest.param(["person", "ball"], {0: ["kpt0", "kpt1", "kpt2"], 1: ["kpt0", "kpt1", "kpt2"]}, id="two-keypoint-classes"),
    ],
)
def test_kpt_names(kpt_names, expected):
    config = parse_data_dict(multitask_dict(kpt_names=kpt_names), FILE)
    assert config.task == "multitask"
    assert config.kpt_names == expected
    assert config.keypoint_class_ids == frozenset(expected)


@pytest.mark.parametrize(
    "changes, key",
    [
        pytest.param({"names": None}, "names", id="names-missing"),
        pytest.param({"names": "person"}, "names", id="names-a-string"),
        pytest.param({"names": {0: "a", 2: "b"}}, "names", id="names-ids-with-a-gap"),
        pytest.param({"names": {"x": "a"}}, "names", id="names-ids-not-numbers"),
        pytest.param({"names": []}, "names", id="names-empty"),
        pytest.param({"kpt_shape": [3]}, "kpt_shape", id="kpt-shape-one-number"),
        pytest.param({"kpt_shape": [0, 3]}, "kpt_shape", id="kpt-shape-zero-keypoints"),
        pytest.param({"kpt_shape": [3, 4]}, "kpt_shape", id="kpt-shape-dims-4"),
        pytest.param({"kpt_shape": "3,3"}, "kpt_shape", id="kpt-shape-a-string"),
        pytest.param({"kpt_shape": [3, 2]}, "kpt_shape", id="multitask-needs-visibility"),
        pytest.param({"kpt_names": {0: ["nose"]}}, "kpt_names", id="kpt-names-too-few"),
        pytest.param({"kpt_names": {"cat": ["a", "b", "c"]}}, "kpt_names", id="kpt-names-unknown-class"),
        pytest.param({"kpt_names": "person"}, "kpt_names", id="kpt-names-a-string"),
        pytest.param({"task": "multitask", "kpt_names": None}, "kpt_names", id="multitask-without-kpt-names"),
        pytest.param({"flip_idx": [0, 1]}, "flip_idx", id="flip-idx-too-short"),
        pytest.param({"flip_idx": [0, 2, 2]}, "flip_idx", id="flip-idx-not-a-permutation"),
        pytest.param({"flip_idx": [1, 2, 0]}, "flip_idx", id="flip-idx-not-an-involution"),
        pytest.param({"flip_idx": [0, "2", 1]}, "flip_idx", id="flip-idx-not-integers"),
        pytest.param({"skeleton": [[0, 3]]}, "skeleton", id="skeleton-out-of-range"),
        pytest.param({"skeleton": [[-1, 0]]}, "skeleton", id="skeleton-negative"),
        pytest.param({"skeleton": [[0, 1, 2]]}, "skeleton", id="skeleton-triple"),
        pytest.param({"kpt_sigmas": [0.1, 0.2]}, "kpt_sigmas", id="sigmas-too-few"),
        pytest.param({"kpt_sigmas": [0.1, 0.2, -1]}, "kpt_sigmas", id="sigmas-negative"),
        pytest.param({"task": "classify"}, "task", id="unknown-task"),
        pytest.param({"task": "pose", "kpt_shape": None, "kpt_names": None, "flip_idx": None, "skeleton": None}, "kpt_shape",
                     id="pose-without-kpt-shape"),
        pytest.param({"train": 3}, "train", id="train-not-a-folder"),
    ],
)
def test_bad_config_names_the_key(changes, key):
    with pytest.raises(DatasetConfigError) as raised:
        parse_data_dict(multitask_dict(**changes), FILE)
    assert f"'{key}'" in str(raised.value) or key in str(raised.value)
    assert str(raised.value).startswith(str(FILE))


def test_not_a_mapping():
    with pytest.raises(DatasetConfigError, match="mapping"):
        parse_data_dict(["names"], FILE)


@pytest.mark.parametrize(
    "data, task",
    [
        pytest.param({"names": ["a"]}, "segment", id="no-keypoints-segment"),
        pytest.param({"names": ["a"], "kpt_shape": [2, 3]}, "pose", id="kpt-shape-pose"),
        pytest.param({"names": ["a"], "kpt_shape": [2, 3], "kpt_names": {0: ["x", "y"]}}, "multitask", id="kpt-names-multitask"),
        pytest.param({"names": ["a"], "task": "detect"}, "detect", id="explicit"),
    ],
)
def test_task_inference(data, task):
    assert parse_data_dict(data, FILE).task == task


def test_pose_layout_treats_every_class_as_a_keypoint_class():
    config = parse_data_dict({"names": ["a", "b"], "kpt_shape": [4, 2]}, FILE)
    assert config.layout() == LabelLayout("pose", 2, 4, 2, frozenset({0, 1}))


def test_layout_of_multitask():
    config = parse_data_dict(multitask_dict(), FILE)
    assert config.layout() == LabelLayout("multitask", 2, 3, 3, frozenset({0}))


def test_write_then_read_round_trip(tmp_path):
    config = DatasetConfig(
        root=tmp_path, splits={"train": ["images/train"], "val": ["images/val", "images/extra"]},
        names={0: "person", 1: "ball"}, task="multitask", kpt_shape=(3, 3),
        kpt_names={0: ["nose", "left_eye", "right_eye"]}, flip_idx=[0, 2, 1], skeleton=[[0, 1], [0, 2]],
        kpt_sigmas=[0.1, 0.2, 0.2], extra={"coco_ids": "coco_ids.json"},
    )
    path = tmp_path / "data.yaml"
    write_data_yaml(config, path)
    text = path.read_text()
    assert "kpt_shape: [3, 3]" in text and "flip_idx: [0, 2, 1]" in text  # short lists stay on one line
    back = read_data_yaml(path)
    assert back.file == path
    back.file = None
    assert back == config


def test_relative_path_and_moved_dataset(tmp_path):
    (tmp_path / "ds").mkdir()
    path = tmp_path / "ds" / "data.yaml"
    path.write_text(dump_yaml({"path": "/nowhere/that/exists", "train": "images/train", "names": ["a"]}))
    assert read_data_yaml(path).root == (tmp_path / "ds").resolve()  # moved: its folder is the root
    path.write_text(dump_yaml({"path": "..", "train": "images/train", "names": ["a"]}))
    assert read_data_yaml(path).root == tmp_path.resolve()
    path.write_text(dump_yaml({"train": "images/train", "names": ["a"]}))
    config = read_data_yaml(path)
    assert config.root == (tmp_path / "ds").resolve()
    assert config.image_dirs("train") == [config.root / "images/train"]
    assert config.label_dirs("train") == [config.root / "labels/train"]


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param("names: [a\n", "not valid YAML at line", id="bad-yaml"),
        pytest.param("- a\n- b\n", "mapping", id="a-list"),
        pytest.param(b"\xff\xfe\x00", "not a text file", id="binary"),
    ],
)
def test_read_bad_files(tmp_path, content, message):
    path = tmp_path / "data.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetConfigError, match=message) as raised:
        read_data_yaml(path)
    assert str(path) in str(raised.value)


def test_label_paths():
    assert label_dir_for(Path("/d/images/train")) == Path("/d/labels/train")
    assert label_dir_for(Path("/images/d/images/val")) == Path("/images/d/labels/val")  # the last 'images' only
    assert label_path("/d/images/train/sub/a.jpg") == "/d/labels/train/sub/a.txt"  # the image's own rule (formats.splits)


def test_split_pairs_folders_and_lists(tmp_path):
    images = tmp_path / "images" / "train"
    (images / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.PNG", "sub/c.jpeg", "notes.txt"):
        (images / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text(f"images/train/b.jpg\n\n{images / 'a.PNG'}\n")
    config = parse_data_dict({"path": str(tmp_path), "train": "images/train", "val": "list.txt", "names": ["a"]}, tmp_path / "data.yaml")
    assert [Path(p).name for p, _ in split_pairs(config, "train")] == ["a.PNG", "b.jpg", "c.jpeg"]
    assert [Path(p).name for p, _ in split_pairs(config, "val")] == ["a.PNG", "b.jpg"]
    assert split_pairs(config, "test") == []


# --- a stranger's data.yaml: bounded before anything walks it ---------------------------------


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes whose aliases expand to width ** levels strings (9 ** 9: 387M)."""
    lines = ["a0: &a0 [" + ", ".join(['"x"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nnames: *a{levels - 1}\ntrain: *a{levels - 1}\n"


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(_alias_bomb(), "expands to more than", id="alias-bomb-9^9"),
        pytest.param(_alias_bomb(levels=4, width=60), "expands to more than", id="alias-bomb-60^4"),
        pytest.param("names: &n [a, *n]\n", "refers to itself", id="recursive-alias"),
        pytest.param("names: " + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply|nesting depth", id="nested-2000-deep"),
        pytest.param("names: [" + ", ".join(["c"] * 150_000) + "]\n", "expands to more than", id="a-150000-item-list"),
    ],
)
def test_hostile_yaml_is_one_line_and_quick(tmp_path, content, message):
    path = tmp_path / "data.yaml"
    path.write_text(content)
    with pytest.raises(DatasetConfigError, match=message) as e:
        read_data_yaml(path)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300 and str(path) in str(e.value)


def test_aliases_that_stay_small_are_read(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text("classes: &c [cat, dog]\nnames: *c\ntrain: images/train\n")
    assert read_data_yaml(path).names == {0: "cat", 1: "dog"}


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    from mtdata.formats.yolo.data_yaml import MAX_DATA_YAML_BYTES

    path = tmp_path / "data.yaml"
    with open(path, "wb") as f:
        f.write(b"names: [a]\n# ")
        f.truncate(MAX_DATA_YAML_BYTES + 1)  # sparse: no disk used
    with pytest.raises(DatasetConfigError, match="at most"):
        read_data_yaml(path)


@pytest.mark.parametrize(
    "kpt_shape",
    [
        pytest.param([1_000_000_000, 3], id="a-billion-keypoints"),
        pytest.param([2**70, 3], id="2^70"),
        pytest.param([1025, 3], id="one-over-the-limit"),
        pytest.param([True, 3], id="a-boolean"),
        pytest.param([0, 3], id="zero"),
    ],
)
def test_kpt_shape_is_bounded_the_same_way_by_every_reader(tmp_path, kpt_shape):
    """The parser (every command, the trainer) and mtdata check give the same one-line verdict."""
    from mtdata.check.data_yaml import check_data_yaml

    path = tmp_path / "data.yaml"
    path.write_text(dump_yaml(multitask_dict(path=str(tmp_path), kpt_shape=kpt_shape, flip_idx=None, skeleton=None)))
    with pytest.raises(DatasetConfigError) as e:
        read_data_yaml(path)
    found = [f for f in check_data_yaml(path).findings if f.rule == "yaml_bad_kpt_shape"]
    assert [f.message for f in found] == [e.value.message]
    assert "0 < K <= 1024" in e.value.message and len(e.value.message) < 120


def test_kpt_shape_at_the_limit_is_read():
    config = parse_data_dict(multitask_dict(kpt_shape=[1024, 3], kpt_names=["person"], flip_idx=None, skeleton=None), FILE)
    assert config.num_keypoints == 1024


def test_long_values_are_cut_in_messages():
    with pytest.raises(DatasetConfigError) as e:
        parse_data_dict(multitask_dict(train=list(range(100_000))), FILE)
    assert len(str(e.value)) < 200


def test_split_list_is_bounded_and_must_be_text(tmp_path):
    from mtdata.formats.yolo.data_yaml import MAX_SPLIT_LIST_BYTES, read_split_list

    listed = tmp_path / "train.txt"
    listed.write_bytes(b"images/a.jpg\n\xff\xfe\n")
    with pytest.raises(DatasetConfigError, match="UTF-8"):
        read_split_list(listed, tmp_path)
    with open(listed, "wb") as f:
        f.truncate(MAX_SPLIT_LIST_BYTES + 1)
    with pytest.raises(DatasetConfigError, match="at most"):
        read_split_list(listed, tmp_path)


# --- the one reader: every finding for check, the first error for every other command ---
# (id, data.yaml mapping, [(rule, message)] mtdata check reports). parse_data_dict (merge, view,
# export, the trainer) raises the first error's message, or reads the file when there is none.
# Changed when the two validators became one (ultralytics' check_det_dataset decided): 'nc as text'
# (check refused nc: '2'), 'nc mismatch' (the commands ignored nc), 'train empty list' (check refused
# []), and the commands' flip_idx / skeleton / kpt_sigmas messages are now check's.
FINDINGS_TABLE = [
    ('good', {'names': ['a', 'b'], 'train': 'i', 'val': 'i'},
     []),
    ('no names', {'train': 'i', 'val': 'i'},
     [('yaml_missing_key', "missing key 'names' (class names, list or dict)")]),
    ('names a string', {'names': 'a', 'train': 'i', 'val': 'i'},
     [('yaml_bad_value', "'names' must be a list or a dict of class names, found str")]),
    ('names gap', {'names': {0: 'a', 2: 'b'}, 'train': 'i', 'val': 'i'},
     [('yaml_bad_value', "'names' ids must be 0..1, found [0, 2]")]),
    ('names keys not ids', {'names': {'x': 'a'}, 'train': 'i', 'val': 'i'},
     [('yaml_bad_value', "'names' keys must be class ids 0..n-1, found ['x']")]),
    ('names empty', {'names': [], 'train': 'i', 'val': 'i'},
     [('yaml_bad_value', "'names' is empty")]),
    ('nc mismatch', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'nc': 3},
     [('yaml_bad_value', "'nc' is 3 but 'names' lists 2 classes")]),
    ('nc as text', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'nc': '2'},
     []),
    ('nc float', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'nc': 2.0},
     []),
    ('unknown task', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'task': 'classify'},
     [('yaml_bad_value', "'task' must be one of detect, segment, pose, multitask, found 'classify'")]),
    ('pose without kpt_shape', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'task': 'pose'},
     [('yaml_missing_key', "a pose dataset needs 'kpt_shape: [K, 3]'")]),
    ('kpt_shape one number', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3], 'kpt_names': {0: ['l', 'm', 'r']}},
     [('yaml_bad_kpt_shape', "'kpt_shape' must be [K, 2 or 3] with 0 < K <= 1024, found [3]")]),
    ('kpt_shape zero', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [0, 3], 'kpt_names': {0: ['l', 'm', 'r']}},
     [('yaml_bad_kpt_shape', "'kpt_shape' must be [K, 2 or 3] with 0 < K <= 1024, found K = 0")]),
    ('multitask 2-D', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 2], 'kpt_names': {0: ['l', 'm', 'r']}},
     [('yaml_bad_kpt_shape', 'multitask rows carry x, y, visibility: kpt_shape must be [K, 3], found [3, 2]')]),
    ('multitask without kpt_names', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'task': 'multitask'},
     [('yaml_missing_key', "a multitask dataset needs 'kpt_names': the classes that have keypoints")]),
    ('kpt_names a string', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': 'a'},
     [('yaml_bad_kpt_names', "'kpt_names' must be a list of class names or a dict, found str")]),
    ('kpt_names unknown class', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {'cat': ['l', 'm', 'r']}},
     [('yaml_bad_kpt_names', "'kpt_names' names class 'cat', which is not in 'names'")]),
    ('kpt_names too few', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l']}},
     [('yaml_bad_kpt_names', "'kpt_names' for class 0 lists 1 keypoints, kpt_shape says 3")]),
    ('kpt_names empty list', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': []},
     []),
    ('flip_idx too short', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'flip_idx': [0, 1]},
     [('yaml_bad_flip_idx', "'flip_idx' has 2 entries, kpt_shape says 3 keypoints")]),
    ('flip_idx repeated', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'flip_idx': [0, 2, 2]},
     [('yaml_bad_flip_idx', "'flip_idx' must be a permutation of 0..2; repeated or out of range: [2]")]),
    ('flip_idx not involution', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'flip_idx': [1, 2, 0]},
     [('yaml_bad_flip_idx', "'flip_idx' must be its own inverse (left<->right pairs): 0 -> 1 -> 2")]),
    ('flip_idx not ints', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'flip_idx': [0, '2', 1]},
     [('yaml_bad_flip_idx', "'flip_idx' must be a list of integers, found [0, '2', 1]")]),
    ('flip_idx without kpt_shape', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'flip_idx': [0]},
     [('yaml_bad_flip_idx', "'flip_idx' is given but 'kpt_shape' is not (or is invalid)")]),
    ('flip_idx empty without kpt_shape', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'flip_idx': []},
     [('yaml_bad_flip_idx', "'flip_idx' is given but 'kpt_shape' is not (or is invalid)")]),
    ('skeleton out of range', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'skeleton': [[0, 3]]},
     [('yaml_bad_skeleton', "'skeleton' pairs [[0, 3]] are outside keypoints 0..2 (0-based)")]),
    ('skeleton negative', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'skeleton': [[-1, 0]]},
     [('yaml_bad_skeleton', "'skeleton' pairs [[-1, 0]] are outside keypoints 0..2 (0-based)")]),
    ('skeleton triple', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'skeleton': [[0, 1, 2]]},
     [('yaml_bad_skeleton', "'skeleton' must be a list of [a, b] keypoint index pairs, found [[0, 1, 2]]")]),
    ('skeleton not ints', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'skeleton': [[0, '1']]},
     [('yaml_bad_skeleton', "'skeleton' must be a list of [a, b] keypoint index pairs, found [[0, '1']]")]),
    ('skeleton a string', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'skeleton': '1-2'},
     [('yaml_bad_skeleton', "'skeleton' must be a list of [a, b] keypoint index pairs, found '1-2'")]),
    ('skeleton without kpt_shape', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'skeleton': [[0, 1]]},
     [('yaml_bad_skeleton', "'skeleton' is given but 'kpt_shape' is not (or is invalid)")]),
    ('sigmas too few', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'kpt_sigmas': [0.1]},
     [('yaml_bad_value', "'kpt_sigmas' must be 3 positive numbers, found [0.1]")]),
    ('sigmas negative', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_shape': [3, 3], 'kpt_names': {0: ['l', 'm', 'r']}, 'kpt_sigmas': [0.1, 0.2, -1]},
     [('yaml_bad_value', "'kpt_sigmas' must be 3 positive numbers, found [0.1, 0.2, -1]")]),
    ('sigmas without kpt_shape', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'kpt_sigmas': [0.1]},
     [('yaml_bad_value', "'kpt_sigmas' must be K positive numbers, found [0.1]")]),
    ('train a number', {'names': ['a', 'b'], 'train': 3, 'val': 'i'},
     [('yaml_bad_value', "'train' must be a folder or a list of folders, found 3")]),
    ('train empty list', {'names': ['a', 'b'], 'train': [], 'val': 'i'},
     []),
    ('train list with a number', {'names': ['a', 'b'], 'train': ['i', 3], 'val': 'i'},
     [('yaml_bad_value', "'train' must be a folder or a list of folders, found ['i', 3]")]),
    ('no splits', {'names': ['a']},
     [('yaml_missing_key', "no split: data.yaml needs 'train' and 'val' (image folders)")]),
    ('no val', {'names': ['a'], 'train': 'i'},
     [('yaml_missing_split', "no 'val' split: training needs both 'train' and 'val'")]),
    ('path a number', {'names': ['a', 'b'], 'train': 'i', 'val': 'i', 'path': 3},
     [('yaml_bad_value', "'path' must be the dataset folder, found 3")]),
    ('two problems', {'names': {0: 'a', 2: 'b'}, 'train': 'i', 'val': 'i', 'task': 'classify'},
     [('yaml_bad_value', "'names' ids must be 0..1, found [0, 2]"), ('yaml_bad_value', "'task' must be one of detect, segment, pose, multitask, found 'classify'")]),]


@pytest.mark.parametrize("data, expected", [c[1:] for c in FINDINGS_TABLE], ids=[c[0] for c in FINDINGS_TABLE])
def test_one_reader_every_finding_and_the_first_error(data, expected):
    from mtdata.check.data_yaml import check_data_dict

    checked = check_data_dict(data, FILE)
    assert [(f.rule, f.message) for f in checked.findings] == expected
    # a missing split is check's alone: merge reads datasets without split keys, the trainer says so itself
    errors = [message for rule, message in expected if rule != "yaml_missing_split" and not message.startswith("no split:")]
    if errors:
        with pytest.raises(DatasetConfigError) as raised:
            parse_data_dict(data, FILE)
        assert raised.value.message == errors[0]
    else:
        assert parse_data_dict(data, FILE) == checked.config


def test_the_first_error_is_raised_with_the_file():
    with pytest.raises(DatasetConfigError) as raised:
        parse_data_dict(["names"], FILE)
    assert str(raised.value) == f"{FILE}: expected a mapping of keys, found list"


def test_merge_reads_a_dataset_without_split_keys():
    # check reports a missing split; the commands read the file (merge finds labels/<split> itself)
    assert parse_data_dict({"names": ["a"]}, FILE).splits == {}


def test_an_empty_split_list_is_a_split_without_images():
    config = parse_data_dict({"names": ["a"], "train": [], "val": "images/val"}, FILE)
    assert config.splits["train"] == [] and config.image_dirs("train") == []


def test_what_the_commands_raise_is_always_an_error():
    # parse_data_dict raises the first problem: without the split-presence rules, every rule the reader has is an error
    from mtdata.check.rules import RULES
    from mtdata.errors import Severity
    from mtdata.formats.yolo.data_yaml_rules import read_data_dict

    rules = {p.rule for _, data, _ in FINDINGS_TABLE for p in read_data_dict(data, FILE, splits_required=False).problems}
    assert len(rules) == 6 and all(RULES[r].severity is Severity.ERROR for r in rules), rules
