"""COCO JSON -> records -> a YOLO dataset (multitask, segment or pose rows).

``convert_coco`` is the library entry point behind ``mtdata convert``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtdata._runtime.output import atomic_output_dir, check_output_dir
from mtdata.convert.classes import ClassPlan, class_plan
from mtdata.convert.files import ImageFinder, SplitFiles
from mtdata.convert.labels import ObjectRules, write_split_labels
from mtdata.errors import InputError, MtdataError
from mtdata.formats.coco.checks import file_names_problems, split_name_problem
from mtdata.formats.coco.read import CocoFile, Skip, read_coco
from mtdata.formats.yolo.data_yaml import DatasetConfig, write_data_yaml

CONVERT_TASKS = ("multitask", "segment", "pose")
SPLIT_PREFIXES = ("instances_", "person_keypoints_")
Progress = Callable[[int, int], None]


def split_name(annotation_file: Path) -> str:
    """``person_keypoints_val2017.json`` -> ``val2017``."""
    stem = Path(annotation_file).stem
    for prefix in SPLIT_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    return stem


def split_key(split: str) -> str | None:
    """Which data.yaml key a split name serves: ``train2017`` -> train."""
    lowered = split.lower()
    for key in ("train", "val", "test"):
        if key in lowered:
            return key
    return None


@dataclass
class ConvertReport:
    """What a conversion did: counts, skips by reason, notes."""

    out: Path
    task: str
    splits: dict[str, int] = field(default_factory=dict)  # split -> images written
    rows_per_class: Counter = field(default_factory=Counter)  # class name -> rows
    skipped: list[Skip] = field(default_factory=list)  # every annotation left out: invalid, crowd, no_mask, no_keypoints
    images_not_found: list[str] = field(default_factory=list)
    images_refused: list[dict] = field(default_factory=list)  # {image_id, file_name, why}: named, never looked for outside
    lossy_joins: list[dict] = field(default_factory=list)  # {annotation_id, image_id, iou}: overlapping parts joined
    unmatched_keypoints: list[dict] = field(default_factory=list)  # tool input: {file, label, x, y, why} of points no object took
    keypoint_ties: list[dict] = field(default_factory=list)  # tool input: {file, label, x, y, objects, chosen}
    notes: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> list[Skip]:
        return [s for s in self.skipped if s.invalid]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_class.values())

    def skip_counts(self) -> Counter:
        return Counter(s.reason for s in self.skipped)

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "task": self.task,
            "images": dict(self.splits),
            "rows": self.rows,
            "rows_per_class": dict(self.rows_per_class),
            "skipped_by_reason": dict(self.skip_counts()),
            "skipped_annotations": [s.__dict__ for s in self.skipped],
            "images_not_found": self.images_not_found,
            "images_refused": self.images_refused,
            "lossy_joins": self.lossy_joins,
            "unmatched_keypoints": self.unmatched_keypoints,
            "keypoint_ties": self.keypoint_ties,
            "notes": self.notes,
        }


def _note_what_fits(report: ConvertReport, task: str, has_keypoints: bool) -> None:
    """Say when the objects a task leaves out would fit another task (a pose-only file read as multitask)."""
    no_mask = report.skip_counts()["no_mask"]
    if task != "pose" and no_mask and has_keypoints:
        what = f"no row was written: all {no_mask} objects" if not report.rows else f"{no_mask} objects"
        report.notes.append(f"{what} have no segmentation, which {task} rows need; --task pose writes their boxes and keypoints")


def _start_split_files(images: list, split_label: str, path: Path, work: Path, finder, copy: bool) -> SplitFiles:
    """Check the label names of a split's images and start preparing its files.

    An image whose ``file_name`` cannot name its files (a newline, NUL, ``..`` as the last part,
    more than 255 bytes) is refused: left out with its annotations, and named in the report.
    """
    file_names = [image.file_name for image in images]
    refused = {i: f"file_name {file_names[i]!r} {why}" for i, why in file_names_problems(file_names).items()}
    names_on_disk = [name.rsplit("/", 1)[-1] for name in file_names]  # Path(...).name without a Path each
    stems = [None if i in refused else name.rsplit(".", 1)[0] if "." in name else name for i, name in enumerate(names_on_disk)]
    named = [stem for stem in stems if stem is not None]
    if len(set(named)) < len(named):  # a.jpg and sub/a.jpg (or a.png) would share labels/<split>/a.txt
        seen: set[str] = set()
        twice = next(stem for stem in named if stem in seen or seen.add(stem))
        raise InputError(f"two images are named {twice!r} in split {split_label!r}: YOLO needs unique names", file=path)
    label_dir = work / "labels" / split_label
    label_dir.mkdir(parents=True)
    split_files = SplitFiles(images, stems, label_dir, work / "images" / split_label, split_label, finder, copy, refused)
    return split_files.start()


def _split_names(annotation_files: list[Path], split: str | None, report: ConvertReport) -> list[str]:
    """The split of each file: --split, else from its stem; a lone file whose stem names no split is ``train``."""
    if split:
        splits = [split]
    else:
        splits = [split_name(p) for p in annotation_files]
        if len(splits) == 1 and split_key(splits[0]) is None:  # annotations.json, the usual name outside COCO
            report.notes.append(f"{annotation_files[0].name} names no split: written as train (--split names it)")
            splits = ["train"]
    for name in splits:
        problem = split_name_problem(name)
        if problem:
            raise MtdataError(f"{problem}: pass --split" if not split else problem)
    repeated = [s for s, n in Counter(splits).items() if n > 1]
    if repeated:
        raise MtdataError(f"two annotation files give the split {repeated[0]!r}: rename one")
    return splits


def convert_coco(
    annotation_files: list[Path],
    out: Path,
    *,
    images_dir: Path | None = None,
    task: str = "multitask",
    split: str | None = None,
    classes: list[str] | None = None,
    copy: bool = False,
    overwrite: bool = False,
    crowd: str = "skip",
    strict: bool = False,
    follow_links: bool = False,
    progress: Progress | None = None,
    source=None,
) -> ConvertReport:
    """Convert COCO files to one YOLO dataset at ``out`` (written atomically).

    Args:
        annotation_files: COCO JSON files, one split each (named from the file stem).
        out: output folder; must be empty or absent unless ``overwrite``.
        images_dir: where the images are; None writes labels and data.yaml only.
        task: multitask, segment or pose.
        split: split name for a single file (default: from its stem).
        classes: category names to keep (default all), renumbered 0..n-1 in id order.
        copy: copy images instead of symlinking them.
        crowd: ``skip`` (default, counted) or ``include``.
        strict: any invalid annotation (or image not found or refused) fails the conversion and nothing is written.
        follow_links: take images that are symlinks out of ``images_dir`` (default: refused, named).
        progress: called with (images done, images total).
        source: what to read instead of COCO files (a :class:`mtdata.convert.tools.ToolSource`: Labelme, Label Studio).

    Raises:
        MtdataError: file-level problems, or invalid annotations with ``strict``.
    """
    annotation_files = _checked_options(annotation_files, images_dir, task, split, crowd)
    inputs = annotation_files + ([Path(images_dir)] if images_dir else [])
    # Validate the output location before the (possibly long) read of the inputs.
    report = ConvertReport(out=check_output_dir(out, overwrite, inputs), task=task)
    splits = _split_names(annotation_files, split, report)
    with atomic_output_dir(out, overwrite, inputs) as work:
        finder = _image_finder(images_dir, follow_links, work, report.out, source)
        # Creating ~20k label files takes seconds of system time: as soon as a file's images
        # are read, a helper creates them while the annotations are read and converted.
        prepared: dict[str, SplitFiles] = {}
        try:
            files = _read_files(annotation_files, splits, source, prepared, work, finder, copy)
            plan = class_plan(files, classes, task, annotation_files[0], report.notes)
            if finder is None:
                report.notes.append("no --images given: wrote labels and data.yaml only; images/<split>/ must be filled in")
            coco_ids = _write_splits(files, splits, prepared, plan, crowd == "include", task, report, progress)
        finally:
            for split_files in prepared.values():
                split_files.close()
        _finish_output(work, report, splits, plan, coco_ids, strict, source)
    return report


def _image_finder(images_dir: Path | None, follow_links: bool, work: Path, out: Path, source) -> ImageFinder | None:
    """Where the images are looked up: under ``images_dir`` (skipping OUT and its temporary folder ``work``),
    through the tool source when there is one; None without images."""
    finder = ImageFinder(Path(images_dir), follow_links, skip=(work, out)) if images_dir else None
    if source is not None:
        finder = source.image_finder(finder, work)
    return finder


def _finish_output(work: Path, report: ConvertReport, splits: list[str], plan: ClassPlan, coco_ids: dict, strict: bool,
                   source) -> None:
    """After the labels: the tool source's last findings, --strict's refusal, the notes, then data.yaml and
    coco_ids.json into ``work``."""
    if source is not None:
        source.finish(report)
    if strict:
        _refuse_what_strict_forbids(report)
    _note_what_fits(report, report.task, bool(plan.kpt_categories))
    write_data_yaml(_dataset_config(report, splits, plan), work / "data.yaml")
    (work / "coco_ids.json").write_text(json.dumps(coco_ids))


def _checked_options(annotation_files: list[Path], images_dir: Path | None, task: str, split: str | None,
                     crowd: str) -> list[Path]:
    """The annotation files as Paths, once the options that need no reading are valid (else MtdataError)."""
    if task not in CONVERT_TASKS:
        raise MtdataError(f"--task must be one of {', '.join(CONVERT_TASKS)}, found {task!r}")
    if crowd not in ("skip", "include"):
        raise MtdataError(f"--crowd must be skip or include, found {crowd!r}")
    annotation_files = [Path(p) for p in annotation_files]
    if not annotation_files:
        raise MtdataError("no annotation file given")
    if split and len(annotation_files) > 1:
        raise MtdataError("--split names the split of a single file; with several files each is named from its stem")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError("--images must be a folder of images", file=images_dir)
    return annotation_files


def _read_files(annotation_files: list[Path], splits: list[str], source, prepared: dict[str, SplitFiles], work: Path,
                finder, copy: bool) -> list[CocoFile]:
    """Read each file (COCO, or ``source``'s tool files); as each file's images are read, its split's files are started
    into ``prepared`` (split -> SplitFiles)."""
    files = []
    for path, split_label in zip(annotation_files, splits):
        def start(images, split_label=split_label, path=path):
            prepared[split_label] = _start_split_files(images, split_label, path, work, finder, copy)

        files.append(read_coco(path, on_images=start) if source is None else source.read(path, split_label, start))
    return files


def _write_splits(files: list[CocoFile], splits: list[str], prepared: dict[str, SplitFiles], plan: ClassPlan,
                  include_crowd: bool, task: str, report: ConvertReport, progress: Progress | None) -> dict:
    """Write every split's labels (and images) into its prepared files, counting into ``report``; return the
    ``coco_ids.json`` content: classes -> category ids (and supercategories), and per split the file names -> image ids."""
    names = plan.names
    total = sum(len(f.images) for f in files)
    done = 0
    coco_ids: dict = {"categories": {i: c.id for i, c in enumerate(plan.categories)}, "splits": {}}
    if any(c.supercategory is not None for c in plan.categories):  # for mtdata export
        coco_ids["supercategories"] = {i: c.supercategory for i, c in enumerate(plan.categories) if c.supercategory is not None}
    rules = ObjectRules(
        class_of_category=plan.class_of_category, keypoints_of_category=plan.keypoints_of_category,
        num_keypoints=plan.num_keypoints if plan.yolo_task != "segment" else 0, include_crowd=include_crowd, task=task,
        yolo_task=plan.yolo_task, keypoint_classes=plan.layout.keypoint_classes, num_classes=len(names),
    )
    for coco, split_label in zip(files, splits):
        images = list(coco.images.values())
        names_on_disk = [image.file_name.rsplit("/", 1)[-1] for image in images]  # Path(...).name without a Path each
        split_files = prepared[split_label]  # started by read_coco's on_images
        outcome = write_split_labels(coco.annotations, coco.images, rules, split_files,
                                     None if progress is None else lambda n, done=done: progress(done + n, total))
        written_mask = outcome.written
        refused = split_files.refused
        report.images_not_found.extend(images[i].file_name for i in np.flatnonzero(~written_mask).tolist() if i not in refused)
        report.images_refused.extend({"image_id": images[i].id, "file_name": images[i].file_name, "why": why}
                                     for i, why in sorted(refused.items()))
        report.lossy_joins.extend(outcome.lossy_joins)
        done += len(images)
        if progress is not None:
            progress(done, total)
        image_ids = {names_on_disk[i]: images[i].id for i in np.flatnonzero(written_mask).tolist()}
        report.skipped.extend(outcome.skips)
        for cls, count in enumerate(outcome.rows_per_class.tolist()):
            if count:
                report.rows_per_class[names[cls]] += count
        report.splits[split_label] = int(written_mask.sum())
        coco_ids["splits"][split_label] = {"annotations": str(coco.path.resolve()), "images": image_ids}
        if outcome.crowd:  # crowd rows kept by --crowd include, for mtdata export's iscrowd
            coco_ids["splits"][split_label]["crowd"] = {
                names_on_disk[i]: {"lines": lines, "label_blake2b": digest} for i, (lines, digest) in outcome.crowd.items()}
    return coco_ids


def _refuse_what_strict_forbids(report: ConvertReport) -> None:
    """--strict: any invalid annotation, image not found or image refused fails the conversion (MtdataError)."""
    if not (report.invalid or report.images_not_found or report.images_refused):
        return
    first = report.invalid[0] if report.invalid else None
    if first:
        what = f"annotation {first.annotation_id}: {first.message}"
    elif report.images_refused:
        what = f"image {report.images_refused[0]['image_id']}: {report.images_refused[0]['why']}"
    else:
        what = f"image {report.images_not_found[0]!r} not found"
    raise MtdataError(
        f"--strict: {len(report.invalid)} invalid annotations, {len(report.images_not_found)} images not found, "
        f"{len(report.images_refused)} refused (first: {what}); nothing written"
    )


def _dataset_config(report: ConvertReport, splits: list[str], plan: ClassPlan) -> DatasetConfig:
    """The data.yaml of the output: each split under the key its name contains (train, val, test), else its own name."""
    yolo_task = plan.yolo_task
    split_keys: dict[str, list[str]] = defaultdict(list)
    for split_label in splits:
        key = split_key(split_label) or split_label
        split_keys[key].append(f"images/{split_label}")
    if not any(k in split_keys for k in ("train", "val")):
        report.notes.append(f"no split name contains train or val: data.yaml lists {sorted(split_keys)}")
    return DatasetConfig(
        root=report.out,
        splits={k: v for k, v in split_keys.items() if k in ("train", "val", "test")},
        names=plan.names,
        task=yolo_task,
        kpt_shape=(plan.num_keypoints, 3) if yolo_task != "segment" else None,
        kpt_names=plan.kpt_names if yolo_task != "segment" else {},
        flip_idx=plan.flip_idx if yolo_task != "segment" else None,
        skeleton=plan.skeleton or None if yolo_task != "segment" else None,
        extra={"coco_ids": "coco_ids.json", **{k: v for k, v in split_keys.items() if k not in ("train", "val", "test")}},
    )
