"""``mtdata.merge.config``: each input's data.yaml checked for its task, and OUT's built from both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtdata.errors import DatasetConfigError, InputError
from mtdata.formats.yolo.data_yaml import parse_data_dict
from mtdata.merge.config import output_config, read_pose_config, read_segment_config

POSE = {"path": ".", "train": "images/train", "task": "pose", "names": {0: "person"}, "kpt_shape": [3, 3]}
SEGMENT = {"path": ".", "train": "images/train", "task": "segment", "names": {0: "person", 1: "ball"}}


def write_yaml(folder: Path, data: dict, name: str = "data.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


# (id, reader, data.yaml content (None: no file), the expected error message (None: accepted))
READS = [
    ("pose", read_pose_config, POSE, None),
    ("pose without task (ultralytics)", read_pose_config, {k: v for k, v in POSE.items() if k != "task"}, None),
    ("pose given a segment dataset", read_pose_config, SEGMENT, "KPT must be a pose dataset, but data.yaml says task: segment"),
    ("pose without kpt_shape", read_pose_config, {k: v for k, v in POSE.items() if k != "kpt_shape"}, "KPT needs 'kpt_shape"),
    ("pose without data.yaml", read_pose_config, None, "KPT dataset has no data.yaml"),
    ("segment", read_segment_config, SEGMENT, None),
    ("segment given a pose dataset", read_segment_config, POSE, "SEG must be a segment dataset, but data.yaml says task: pose"),
    ("segment given ultralytics pose", read_segment_config, {k: v for k, v in POSE.items() if k != "task"}, "SEG has 'kpt_shape'"),
    ("segment without data.yaml", read_segment_config, None, "SEG dataset has no data.yaml"),
]


@pytest.mark.parametrize(("name", "read", "data", "message"), READS, ids=[c[0] for c in READS])
def test_inputs_are_read_for_their_task(tmp_path, name, read, data, message):
    folder = write_yaml(tmp_path / "in", data) if data is not None else tmp_path / "in"
    folder.mkdir(exist_ok=True)
    if message is None:
        assert read(folder).file == folder / "data.yaml"
        assert read(folder / "data.yaml").names == read(folder).names  # the folder or the file itself
    else:
        with pytest.raises(DatasetConfigError, match=message):
            read(folder)


def test_a_missing_input_and_a_data_yml(tmp_path):
    with pytest.raises(InputError, match="KPT dataset not found"):
        read_pose_config(tmp_path / "nowhere")
    write_yaml(tmp_path / "seg", SEGMENT, name="data.yml")
    assert read_segment_config(tmp_path / "seg").file == tmp_path / "seg" / "data.yml"


def configs(tmp_path: Path, pose: dict, segment: dict = SEGMENT):
    kpt = parse_data_dict({**POSE, **pose}, tmp_path / "kpt" / "data.yaml", task="pose")
    seg = parse_data_dict(segment, tmp_path / "seg" / "data.yaml", task="segment")
    return kpt, seg


def test_output_config_takes_seg_names_and_kpt_keypoints(tmp_path):
    kpt, seg = configs(tmp_path, {"kpt_names": {0: ["head", "left_hand", "right_hand"]}, "flip_idx": [0, 2, 1]})
    notes: list[str] = []
    config = output_config(tmp_path / "out", kpt, seg, {0: [0]}, {"train": "train2017"}, notes)
    assert config.names == {0: "person", 1: "ball"} and config.task == "multitask" and config.kpt_shape == (3, 3)
    assert config.kpt_names == {0: ["head", "left_hand", "right_hand"]} and config.flip_idx == [0, 2, 1]
    assert config.splits == {"train": ["images/train2017"]} and config.root == (tmp_path / "out").resolve()
    assert notes == []


@pytest.mark.parametrize(
    ("kpt_names", "flip_idx", "note"),
    [
        (["head", "left_hand", "right_hand"], [0, 2, 1], "KPT has no flip_idx: derived [0, 2, 1] from the keypoint names"),
        (None, None, "KPT has no flip_idx and its keypoint names have no left/right pairs: none written"),  # kpt0, kpt1, kpt2
    ],
    ids=["derived from left/right names", "default names: none"],
)
def test_output_config_derives_a_missing_flip_idx(tmp_path, kpt_names, flip_idx, note):
    kpt, seg = configs(tmp_path, {"kpt_names": {0: kpt_names}} if kpt_names else {})
    notes: list[str] = []
    config = output_config(tmp_path / "out", kpt, seg, {0: [0, 1]}, {"train": "train"}, notes)
    assert config.flip_idx == flip_idx
    assert config.kpt_names == {s: kpt_names or ["kpt0", "kpt1", "kpt2"] for s in (0, 1)}
    assert len(notes) == 1 and notes[0].startswith(note)


def test_extra_keys_are_carried_unless_they_name_input_files(tmp_path):
    (tmp_path / "kpt").mkdir()
    (tmp_path / "kpt" / "ids.json").write_text("{}")
    kpt, seg = configs(tmp_path, {"flip_idx": [0, 1, 2], "ids": "ids.json", "source": "kpt", "licence": "CC"},
                       {**SEGMENT, "source": "seg"})
    notes: list[str] = []
    config = output_config(tmp_path / "out", kpt, seg, {0: [0]}, {"train": "train"}, notes)
    assert config.extra == {"source": "seg", "licence": "CC"}  # SEG's first
    assert notes == ["data.yaml keys ['ids'] name files of the inputs; not carried over"]
