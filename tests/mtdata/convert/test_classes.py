"""``mtdata.convert.classes``: COCO categories -> the classes, keypoint names and row layout of a conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtdata.convert.classes import class_plan
from mtdata.errors import InputError
from mtdata.formats.coco.types import CocoCategory, CocoFile

PERSON = CocoCategory(3, "person", ("nose", "left_eye", "right_eye"), ((1, 2), (1, 3)))
HAND = CocoCategory(5, "hand", ("wrist", "thumb"))  # fewer keypoints than person: padded
DISC = CocoCategory(9, "disc")


def _files(*categories_per_file):
    return [CocoFile(Path(f"f{i}.json"), {}, list(cats), None) for i, cats in enumerate(categories_per_file)]


@pytest.mark.parametrize(
    ("categories", "classes", "task", "names", "yolo_task", "kpt_names", "keypoint_classes", "notes"),
    [
        # every category, renumbered 0.. in id order; padding names the missing keypoints kpt<i>
        ([PERSON, HAND, DISC], None, "multitask", {0: "person", 1: "hand", 2: "disc"}, "multitask",
         {0: ["nose", "left_eye", "right_eye"], 1: ["wrist", "thumb", "kpt2"]}, {0, 1},
         ["category 'hand' has other keypoint names than 'person'; flip_idx and skeleton follow 'person'"]),
        # --classes keeps the named ones, still in id order
        ([PERSON, HAND, DISC], ["disc", "person"], "multitask", {0: "person", 1: "disc"}, "multitask",
         {0: ["nose", "left_eye", "right_eye"]}, {0}, []),
        # pose keeps only the categories with keypoints
        ([PERSON, DISC], None, "pose", {0: "person"}, "pose", {0: ["nose", "left_eye", "right_eye"]}, {0}, []),
        # segment writes no keypoints, and derives no flip_idx
        ([PERSON, DISC], None, "segment", {0: "person", 1: "disc"}, "segment", {}, {0}, []),
        # multitask without any keypoint category becomes a segment dataset, and says so
        ([DISC], None, "multitask", {0: "disc"}, "segment", {}, set(), ["no category has keypoints: wrote a segment dataset"]),
    ],
    ids=["all", "--classes", "pose", "segment", "multitask-without-keypoints"],
)
def test_class_plan(categories, classes, task, names, yolo_task, kpt_names, keypoint_classes, notes):
    found_notes: list[str] = []
    plan = class_plan(_files(categories), classes, task, Path("f0.json"), found_notes)
    assert plan.names == names
    assert plan.yolo_task == yolo_task == plan.layout.task
    assert plan.kpt_names == kpt_names
    assert plan.layout.keypoint_classes == frozenset(keypoint_classes)
    assert plan.layout.num_classes == len(names)
    assert plan.layout.num_keypoints == (0 if yolo_task == "segment" else plan.num_keypoints)
    assert found_notes == notes
    assert plan.class_of_category == {c.id: i for i, c in enumerate(plan.categories)}


def test_flip_idx_and_skeleton_follow_the_category_with_the_most_keypoints():
    plan = class_plan(_files([HAND, PERSON]), None, "multitask", Path("f0.json"), [])
    assert plan.num_keypoints == 3
    assert plan.flip_idx == [0, 2, 1]  # left_eye <-> right_eye
    assert plan.skeleton == [[0, 1], [0, 2]]  # 0-based


@pytest.mark.parametrize(
    ("files", "classes", "task", "message"),
    [
        (_files([PERSON, DISC]), ["cat"], "multitask", "--classes names ['cat'], not among the categories ['disc', 'person']"),
        (_files([DISC]), None, "pose", "--task pose needs categories with keypoints; none declare 'keypoints'"),
        (_files([PERSON, DISC], [PERSON]), None, "multitask",
         "categories differ from those of f0.json: every file must declare the same"),
    ],
    ids=["unknown-class", "pose-without-keypoints", "files-disagree"],
)
def test_class_plan_refuses(files, classes, task, message):
    with pytest.raises(InputError) as caught:
        class_plan(files, classes, task, Path("f0.json"), [])
    assert message in str(caught.value)
