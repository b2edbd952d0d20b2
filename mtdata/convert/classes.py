"""COCO categories -> the classes of a YOLO dataset: which are kept, their numbers, keypoint names and row layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtdata.errors import InputError
from mtdata.formats.coco.read import CocoCategory, CocoFile
from mtdata.formats.yolo.rows import LabelLayout
from mtdata.keypoints import derive_flip_idx


@dataclass
class ClassPlan:
    """The classes a conversion writes and how its rows are laid out."""

    categories: list[CocoCategory]  # class i is categories[i]
    kpt_categories: list[CocoCategory]  # the categories with keypoints
    class_of_category: dict[int, int]  # COCO category id -> class
    keypoints_of_category: dict[int, int]  # COCO category id -> its count of keypoints
    num_keypoints: int  # K, the most any category has
    names: dict[int, str]  # class -> name
    kpt_names: dict[int, list[str]]  # class -> K keypoint names (padded); empty for segment output
    flip_idx: list[int] | None
    skeleton: list[list[int]] | None  # 0-based keypoint pairs
    layout: LabelLayout

    @property
    def yolo_task(self) -> str:
        return self.layout.task


def class_plan(files: list[CocoFile], classes: list[str] | None, task: str, first_file: Path, notes: list[str]) -> ClassPlan:
    """The classes (``classes`` in id order, pose: those with keypoints), their keypoint names and the row layout;
    what the keypoint metadata lacks, and a multitask without keypoints, are added to ``notes``."""
    categories = _select_categories(_check_categories(files), classes, first_file)
    kpt_categories = [c for c in categories if c.keypoints]
    if task == "pose":
        if not kpt_categories:
            raise InputError("--task pose needs categories with keypoints; none declare 'keypoints'", file=first_file)
        categories = kpt_categories
    class_of_category = {c.id: i for i, c in enumerate(categories)}
    keypoints_of_category = {c.id: len(c.keypoints) for c in kpt_categories}
    num_keypoints = max(keypoints_of_category.values(), default=0)
    keypoint_class = {class_of_category[c.id] for c in kpt_categories if c.id in class_of_category}
    names = {i: c.name for i, c in enumerate(categories)}

    kpt_names: dict[int, list[str]] = {}
    flip_idx = skeleton = None
    if kpt_categories and task != "segment":
        _, flip_idx, skeleton = _keypoint_metadata(kpt_categories, notes)
        for c in kpt_categories:
            # categories with fewer keypoints than K are padded with unnamed, always-absent ones
            kpt_names[class_of_category[c.id]] = list(c.keypoints) + [f"kpt{i}" for i in range(len(c.keypoints), num_keypoints)]
    yolo_task = task if task != "multitask" or kpt_names else "segment"
    if task == "multitask" and not kpt_names:
        notes.append("no category has keypoints: wrote a segment dataset")
    layout = LabelLayout(
        task=yolo_task, num_classes=len(names), num_keypoints=num_keypoints if yolo_task != "segment" else 0,
        keypoint_classes=frozenset(keypoint_class),
    )
    return ClassPlan(categories, kpt_categories, class_of_category, keypoints_of_category, num_keypoints, names, kpt_names,
                      flip_idx, skeleton, layout)


def _check_categories(files: list[CocoFile]) -> list[CocoCategory]:
    first = files[0]
    for other in files[1:]:
        if [(c.id, c.name) for c in other.categories] != [(c.id, c.name) for c in first.categories]:
            raise InputError(f"categories differ from those of {first.path.name}: every file must declare the same", file=other.path)
    return first.categories


def _select_categories(categories: list[CocoCategory], classes: list[str] | None, path: Path) -> list[CocoCategory]:
    if not classes:
        return categories
    by_name = {c.name: c for c in categories}
    unknown = [n for n in classes if n not in by_name]
    if unknown:
        raise InputError(f"--classes names {unknown}, not among the categories {sorted(by_name)}", file=path)
    wanted = set(classes)
    return [c for c in categories if c.name in wanted]


def _keypoint_metadata(keypoint_categories: list[CocoCategory], notes: list[str]) -> tuple[list[str], list[int], list[list[int]]]:
    """Names, flip_idx and 0-based skeleton of the keypoint category with the most keypoints."""
    main = max(keypoint_categories, key=lambda c: (len(c.keypoints), -c.id))
    names = list(main.keypoints)
    flip_idx, unpaired = derive_flip_idx(names)
    if flip_idx == list(range(len(names))):
        notes.append(
            "flip_idx: no left/right keypoint names found, identity written; horizontal flips will not swap sides"
        )
    elif unpaired:
        notes.append(f"flip_idx: sided names without a partner kept in place: {unpaired}")
    skeleton = [[a - 1, b - 1] for a, b in main.skeleton if 1 <= a <= len(names) and 1 <= b <= len(names)]
    dropped = [[a, b] for a, b in main.skeleton if not (1 <= a <= len(names) and 1 <= b <= len(names))]
    if dropped:  # CrowdPose's skeleton names keypoints it does not have
        notes.append(
            f"skeleton of {main.name!r}: {len(dropped)} pairs name keypoints beyond its {len(names)} (1-based) and are left out: "
            f"{dropped[:10]}"
        )
    for other in keypoint_categories:
        if other is not main and (other.keypoints != main.keypoints[: len(other.keypoints)]):
            notes.append(f"category {other.name!r} has other keypoint names than {main.name!r}; flip_idx and skeleton follow {main.name!r}")
    return names, flip_idx, skeleton
