"""Which files of a merge pair up: one :class:`ImageJob` per image of either dataset.

Images pair by data.yaml split key (train, val, test) and by the label path relative to the
split's label folder, so both datasets may name their split folders differently.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mtdata.errors import InputError, raise_os_error
from mtdata.formats.yolo.data_yaml import SPLIT_KEYS, DatasetConfig, label_dir_for
from mtdata.formats.yolo.splits import folder_images, label_path

IGNORED_TEXT_FILES = {"classes.txt"}  # LabelImg and Roboflow exports keep class lists beside the labels


class ImageJob(NamedTuple):
    """One image of either dataset (a named tuple: a merge plans 20k+ of them and ships them to workers).

    Attributes:
        split: data.yaml split key (train, val, test).
        name: label path relative to the split's label folder, without suffix (posix).
        kpt_label, seg_label: label files, or None when the side has none.
        image: the image file to place in OUT (SEG's, else KPT's), or None.
        in_kpt, in_seg: the side has the image or its label file.
        out_label, out_image: paths relative to OUT; None when not written.
    """

    split: str
    name: str
    kpt_label: str | None
    seg_label: str | None
    image: str | None
    in_kpt: bool
    in_seg: bool
    out_label: str | None
    out_image: str | None


@dataclass(frozen=True)
class JobBatch:
    """Some :class:`ImageJob` s field by field: a chunk of work as a worker process receives it.

    A list per field pickles and unpickles ~5x faster than as many named tuples (20,000 jobs:
    ~65 ms of CPU down to ~12 ms, in the parent and the workers of a merge).
    """

    split: list[str]
    name: list[str]
    kpt_label: list[str | None]
    seg_label: list[str | None]
    image: list[str | None]
    in_kpt: list[bool]
    in_seg: list[bool]
    out_label: list[str | None]
    out_image: list[str | None]

    @classmethod
    def of(cls, jobs: list[ImageJob]) -> JobBatch:
        columns = [list(column) for column in zip(*jobs)] if jobs else [[] for _ in ImageJob._fields]
        return cls(*columns)

    def __len__(self) -> int:
        return len(self.name)


@dataclass
class MergePlan:
    """Every image of both datasets and where its merged files go."""

    jobs: list[ImageJob]
    split_folders: dict[str, str]  # split key -> folder under OUT/images and OUT/labels

    @property
    def has_images(self) -> bool:
        return any(job.out_image for job in self.jobs)

    @property
    def kpt_only(self) -> list[ImageJob]:
        return [job for job in self.jobs if not job.in_seg]

    def seg_only_names(self) -> list[str]:
        return [f"{job.split}/{job.name}" for job in self.jobs if not job.in_kpt]

    def folders(self) -> list[str]:
        return list(self.split_folders.values())

    def parent_dirs(self) -> list[str]:
        """Sub-folders below the split folders that written files need (nested label paths)."""
        parents = {str(Path(p).parent) for job in self.jobs if "/" in job.name for p in (job.out_label, job.out_image) if p}
        return sorted(parents)

    def image_counts(self) -> dict[str, Counter]:
        counts: dict[str, list[int]] = {}
        for job in self.jobs:
            c = counts.get(job.split)
            if c is None:
                c = counts[job.split] = [0, 0, 0, 0, 0]
            c[0] += job.in_seg
            c[1] += job.in_kpt and job.in_seg
            c[2] += job.in_seg and not job.in_kpt
            c[3] += job.in_kpt and not job.in_seg
            c[4] += job.out_image is not None
        keys = ("written", "both", "seg_only", "kpt_only", "with_image")
        return {split: Counter(dict(zip(keys, c))) for split, c in counts.items()}


def _split_dirs(config: DatasetConfig, side: str, notes: list[str]) -> dict[str, list[Path]]:
    """Split key -> image folders; without split keys, each ``labels/<split>`` folder is one."""
    if config.splits:
        dirs = {key: config.image_dirs(key) for key in SPLIT_KEYS if key in config.splits}
        for key, folders in dirs.items():
            for folder in folders:
                if folder.suffix == ".txt" and folder.is_file():
                    raise InputError(f"{side} split {key!r} lists its images in a .txt file; merge needs image/label folders", file=folder)
                if not folder.exists() and not label_dir_for(folder).exists():
                    notes.append(f"{side} split {key!r}: neither {folder} nor {label_dir_for(folder)} exists")
        return dirs
    labels = config.root / "labels"
    dirs: dict[str, list[Path]] = {}
    for name in sorted(p.name for p in labels.iterdir() if p.is_dir()) if labels.is_dir() else []:
        key = next((k for k in SPLIT_KEYS if k in name.lower()), None)
        if key is None:
            notes.append(f"{side} folder labels/{name} is not a train, val or test split (no split keys in data.yaml): skipped")
            continue
        dirs.setdefault(key, []).append(config.root / "images" / name)
    return dirs


def _walk(folder: Path, keep) -> dict[str, str]:
    """Files below ``folder`` whose name ``keep(name)`` accepts, by posix path relative to it without suffix.

    String operations only (no ``os.path`` calls per file): a merge lists 40k files.
    """
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    top = str(folder)
    for parent, _, files in os.walk(top, followlinks=True, onerror=raise_os_error):  # unreadable: an error, not a gap
        prefix = "" if parent == top else os.path.relpath(parent, top).replace(os.sep, "/") + "/"
        base = parent + os.sep
        for file in files:
            if keep(file):
                rel = prefix + file[:file.rfind(".")]
                if rel in found:
                    raise InputError(f"{os.path.basename(found[rel])} and {file} share the label name {rel}.txt: YOLO pairs them with one label file", file=base + file)
                found[rel] = base + file
    return found


def _is_label(name: str) -> bool:
    return name.endswith(".txt") and name not in IGNORED_TEXT_FILES


def _images(folder: Path) -> dict[str, str]:
    """The one split lister's images of ``folder``, by posix path relative to it without suffix."""
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    cut = len(str(folder)) + 1
    for image in folder_images(str(folder)):
        rel = image[cut:image.rfind(".")]
        rel = rel if os.sep == "/" else rel.replace(os.sep, "/")
        if rel in found:
            raise InputError(f"{os.path.basename(found[rel])} and {os.path.basename(image)} share the label name {rel}.txt: "
                             "YOLO pairs them with one label file", file=image)
        found[rel] = image
    return found


def _index(folders: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, images) of a split's folders by relative name; an image's label is where ultralytics
    looks (the last ``/images/`` -> ``/labels/``), label files without an image come from the label folder."""
    labels: dict[str, str] = {}
    images: dict[str, str] = {}
    for folder in folders:
        label_dir = label_dir_for(folder)
        walked, found = _walk(label_dir, _is_label), _images(folder)
        for rel, image in found.items():
            if "images/" not in rel:  # then label_path(image) is label_dir/rel.txt: the walk has it
                continue
            label = label_path(image)
            if label != os.path.join(str(label_dir), rel.replace("/", os.sep) + ".txt"):  # an 'images' folder below the split's
                walked.pop(rel, None)
                if os.path.isfile(label):
                    walked[rel] = label
        for index, part in ((labels, walked), (images, found)):
            for rel, path in part.items():
                if rel in index and index[rel] != path:
                    raise InputError(f"{index[rel]} and {path} are both named {rel} in one split", file=path)
                index[rel] = path
    return labels, images


def _folder_name(config: DatasetConfig, folders: list[Path], key: str) -> str:
    """``images/val2017`` -> ``val2017``; ``train/images`` -> ``train``; several folders -> the key."""
    if len(folders) != 1:
        return key
    try:
        parts = folders[0].relative_to(config.root).parts
    except ValueError:
        parts = folders[0].parts[-2:]
    parts = [p for p in parts if p not in ("images", ".", "..")]
    return parts[-1] if parts else key


def count_seg_labels(seg: DatasetConfig) -> int:
    """Entries of SEG's label folders (not below them): a quick size estimate, before the plan lists everything."""
    folders = {label_dir_for(d) for dirs in _split_dirs(seg, "SEG", []).values() for d in dirs}  # the plan's folders; its notes come later
    total = 0
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                total += sum(1 for _ in entries)
        except OSError:  # missing or not a folder: the plan reports it
            continue
    return total


def build_jobs(kpt: DatasetConfig, seg: DatasetConfig, notes: list[str]) -> MergePlan:
    """Pair the images of both datasets by split key and relative label path."""
    kpt_dirs = _split_dirs(kpt, "KPT", notes)
    seg_dirs = _split_dirs(seg, "SEG", notes)
    jobs: list[ImageJob] = []
    folders: dict[str, str] = {}
    seg_files = 0
    for key in [*seg_dirs, *(k for k in kpt_dirs if k not in seg_dirs)]:
        k_labels, k_images = _index(kpt_dirs.get(key, []))
        s_labels, s_images = _index(seg_dirs.get(key, []))
        seg_files += len(s_labels) + len(s_images)
        if key in seg_dirs:
            folder = _folder_name(seg, seg_dirs[key], key)
            folders[key] = key if folder in folders.values() else folder
        else:
            notes.append(f"split {key!r} is in KPT only: its pose rows are listed in unmatched.json")
        folder = folders.get(key)
        for name in sorted({*k_labels, *k_images, *s_labels, *s_images}):
            in_seg = name in s_labels or name in s_images
            image = s_images.get(name) or k_images.get(name)
            out_image = f"images/{folder}/{name}{image[image.rfind('.'):]}" if in_seg and image else None
            out_label = f"labels/{folder}/{name}.txt" if in_seg else None
            if out_image and "images/" in name:  # an 'images' folder inside the split: its label is where ultralytics looks
                out_label = label_path(os.sep + out_image)[1:]
            jobs.append(ImageJob(
                key, name, k_labels.get(name), s_labels.get(name), image,
                name in k_labels or name in k_images, in_seg, out_label, out_image,
            ))
    if not seg_files:
        where = ", ".join(str(label_dir_for(d)) for dirs in seg_dirs.values() for d in dirs) or str(seg.root / "labels")
        raise InputError(f"SEG has no label files or images (looked in {where})", file=seg.file)
    return MergePlan(jobs, folders)
