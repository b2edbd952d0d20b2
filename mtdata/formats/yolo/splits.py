"""The one split lister: the images of a split and each image's label file, as the trainer finds them.

ultralytics' ``BaseDataset.get_img_files`` and ``img2label_paths`` are the rule; check, fix,
merge, view, export and ``mttrain``'s dataset all list through here:

- a split entry is a folder (every image below it, symlinked folders followed once, names
  starting with ``.`` skipped, as ``glob('**/*.*')`` does) or a ``.txt`` list of images (one a
  line; ``./x`` relative to the list's folder as ultralytics reads it, other relative lines
  relative to the dataset root; lines that do not name an image file are skipped);
- an image's label file: the LAST ``/images/`` path part becomes ``/labels/``, the suffix
  ``.txt`` (``images/train/images/x.jpg`` -> ``images/train/labels/x.txt``).

Images are chosen by their lower-cased suffix (``IMAGE_SUFFIXES``); what the file holds is
check's business (a broken link or a FIFO named ``x.jpg`` is listed, and reported unreadable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mtdata.formats.yolo.data_yaml import read_split_lines
from mtdata.formats.yolo.data_yaml_types import IMAGE_SUFFIXES, DatasetConfig


def label_path(image: str) -> str:
    """The label file of an image path, as ultralytics' ``img2label_paths``: the last ``/images/``
    becomes ``/labels/`` and the suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


_SUFFIXES = frozenset(IMAGE_SUFFIXES)


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in _SUFFIXES


def folder_images(folder: str) -> list[str]:
    """Image files below ``folder``, sorted (os.scandir: 20,000 files in milliseconds).

    Symlinked folders are followed, each real folder walked once (a link loop ends); names
    starting with ``.`` are skipped (``._x.jpg`` from macOS is not an image).

    Raises:
        OSError: a folder below cannot be read (an unreadable folder is an error, not a gap).
    """
    found, stack, seen = [], [folder], {os.path.realpath(folder)}
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real not in seen:
                        seen.add(real)
                        stack.append(entry.path)
                    continue
                dot = name.rfind(".")  # is_image_name, inline: called once per file of the dataset
                if dot > 0 and name[dot:].lower() in _SUFFIXES:
                    found.append(entry.path)
    found.sort()
    return found


def listed_images(list_file: Path, root: Path) -> list[str]:
    """The images a split's ``.txt`` list names, in its order: ``./x`` relative to the list's folder
    (as ultralytics reads it), other relative paths relative to ``root``; lines that do not end in
    an image suffix are left out (ultralytics drops them too).

    Raises:
        DatasetConfigError: the list is too large, unreadable or not UTF-8 text.
    """
    out = []
    for line in read_split_lines(list_file):
        if not is_image_name(os.path.basename(line)):
            continue
        base = list_file.parent if line.startswith("./") else root
        out.append(str(base / line) if not os.path.isabs(line) else str(Path(line)))
    return out


@dataclass
class SplitEntry:
    """One folder or list of a split, as data.yaml names it.

    Attributes:
        path: the folder or ``.txt`` list, under the dataset root.
        kind: ``"folder"``, ``"list"`` or ``"missing"`` (neither exists).
        images: its image paths, sorted for a folder, in the list's order for a list.
        labels: ``label_path`` of each image.
    """

    path: Path
    kind: str
    images: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def list_entry(path: Path, root: Path) -> SplitEntry:
    """One split entry (a folder or a ``.txt`` list of images under dataset ``root``) with its images."""
    if path.is_file() and path.suffix == ".txt":
        images, kind = listed_images(path, root), "list"
    elif path.is_dir():
        images, kind = folder_images(str(path)), "folder"
    else:
        images, kind = [], "missing"
    return SplitEntry(path, kind, images, [label_path(i) for i in images])


def split_entries(config: DatasetConfig, split: str) -> list[SplitEntry]:
    """Every folder or list of ``split`` with its images and their label files (empty when none)."""
    return [list_entry(entry, config.root) for entry in config.image_dirs(split)]


def split_pairs(config: DatasetConfig, split: str) -> list[tuple[str, str]]:
    """(image, label file) of every image of ``split``, sorted by image path, each image once."""
    pairs = {}
    for entry in split_entries(config, split):
        pairs.update(zip(entry.images, entry.labels))
    return sorted(pairs.items())
