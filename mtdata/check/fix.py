"""``mtdata check --fix OUT``: a corrected copy of a dataset and a log of every change.

The source is never modified. OUT is built in a temporary folder and renamed into place
(:func:`mtdata._runtime.output.atomic_output_dir`). Label rows are fixed as follows; a row that is not
changed is copied byte for byte, a changed row is rewritten from its parsed values
(:func:`mtdata.check.fix_rows.fix_label_text`, which fixes a file's rows as one batch):

- keypoints with a visibility outside {0, 1, 2}, labeled keypoints outside the image, and
  unlabeled keypoints with non-zero coordinates become ``0 0 0``;
- coordinates outside [0, 1] within the 0.01 tolerance are clipped;
- self-intersecting polygons are repaired (shapely ``make_valid``, parts joined without losing
  area by :func:`mtdata.geometry.join_polygons`);
- duplicate rows, zero-area polygons and rows that still cannot be parsed are dropped;
- label files without an image are left out.

Images are linked (symlinks to the originals, as ``mtdata convert`` does): fixing never touches
pixels. data.yaml is copied with ``path`` pointing at the copy. Nothing else goes into OUT:
only the images and label files of the splits, and the files data.yaml names, each from inside
the dataset folder (a label file or list that links outside it is left out, and logged), so a
``notes.txt -> /etc/shadow`` beside the labels never lands in OUT. Everything the fix cannot
correct (corrupt images, leakage, data.yaml errors, warnings) is counted as ``unfixed``.
"""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mtdata._runtime.output import atomic_output_dir, place_image
from mtdata.check.data_yaml import check_data_yaml
from mtdata.check.dataset import CheckResult, check_dataset
from mtdata.check.fix_rows import FixChange, fix_label_text
from mtdata.errors import MtdataError, raise_os_error
from mtdata.formats.yolo.data_yaml import IMAGE_SUFFIXES, MAX_DATA_YAML_BYTES, dump_yaml, load_yaml_mapping, shown_value
from mtdata.formats.yolo.rows import LabelLayout
from mtdata.input_files import MAX_LABEL_BYTES, InputFileError, read_input_file

__all__ = ["FIXED_RULES", "LOG_NAME", "FixChange", "FixReport", "fix_dataset", "fix_label_text"]

LOG_NAME = "fix_log.json"
FIXED_RULES = frozenset({
    "row_non_numeric", "row_class_not_integer", "row_class_out_of_range", "row_not_finite", "row_wrong_count",
    "row_too_few_points", "row_invalid", "row_duplicate", "coord_out_of_bounds", "coord_clipped", "zero_area",
    "polygon_self_intersecting", "kpt_bad_visibility", "kpt_out_of_image", "kpt_unlabeled_nonzero",
    "label_without_image",
})


@dataclass
class FixReport:
    out: Path
    changes: list[FixChange] = field(default_factory=list)
    files_changed: int = 0
    unfixed: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "out": str(self.out), "files_changed": self.files_changed,
            "changes": [asdict(c) for c in self.changes], "unfixed": dict(self.unfixed),
        }


def _exists(path: str) -> bool:
    """``os.path.lexists``, except that an error other than "no such file" (a link loop, a folder that cannot be
    searched) is raised: --fix must not take an unreadable label file for a missing one."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:  # a name no file system holds names no file
            return False
        raise
    return True


def _cannot_read(error: Exception) -> bool:
    """An OS error reading a file of the dataset (permissions, a link loop), as against a file --fix leaves out by
    rule (not a regular file, over the size bound)."""
    return isinstance(error, OSError) or (isinstance(error, InputFileError) and error.unreadable)


def _inside(path: Path, root: Path) -> bool:
    """Does ``path``, links resolved, lie inside ``root`` (resolved)?"""
    try:
        return Path(os.path.realpath(path)).is_relative_to(root)
    except (OSError, ValueError):
        return False


def _write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _named_files(data: dict, config, yaml_dir: Path) -> list[Path]:
    """Files data.yaml names that belong in the copy: split lists (``train: train.txt``) and ``coco_ids``."""
    named = [folder for split in config.splits for folder in config.image_dirs(split) if folder.suffix == ".txt"]
    if isinstance(data.get("coco_ids"), str):
        ids = Path(data["coco_ids"])
        named.append(ids if ids.is_absolute() else yaml_dir / ids)
    return named


def fix_dataset(data_yaml: str | Path, out: str | Path, result: CheckResult | None = None) -> FixReport:
    """Write a corrected copy of the dataset of ``data_yaml`` to ``out`` with ``out/fix_log.json``.

    What goes into ``out``: the label files of the dataset's splits (fixed), links to their
    images, data.yaml and the files it names (split lists, ``coco_ids``), each only from inside
    the dataset folder once links are resolved (images excepted: a link to an image is copied as
    a link, never its bytes). Everything else (notes, caches, a link to ``/etc/shadow``) is
    left out, and the log says so.

    Args:
        data_yaml: the dataset's data.yaml.
        out: a new (or empty) folder outside the dataset.
        result: this dataset's check result, when already computed (for the unfixed counts
            and the label files without an image).

    Raises:
        MtdataError: data.yaml leaves the row layout unknown, a split lies outside the
            dataset folder, or ``out`` overlaps the dataset.
    """
    path = Path(data_yaml).resolve()
    checked = check_data_yaml(path)
    if not checked.layout_ok:
        first = next(f for f in checked.findings if f.severity.value == "error")
        raise MtdataError(f"--fix needs a readable data.yaml layout; fix this first: {first.message}", file=path, line=first.line)
    config, layout = checked.config, checked.config.layout()
    root = config.root
    for split in config.splits:
        for folder in config.image_dirs(split):
            if root not in folder.resolve().parents and folder.resolve() != root:
                raise MtdataError(f"--fix copies the dataset folder {root}, but split '{split}' lies outside it: {folder}", file=path)
    result = result or check_dataset(path)
    orphans = {os.path.abspath(f.file) for f in result.findings if f.rule == "label_without_image"}
    report = FixReport(Path(out).resolve())
    data = load_yaml_mapping(path)
    with atomic_output_dir(out, False, [root, path]) as work:
        copy = _Copy(root, work, report, orphans)
        for _, image, label in result.pairs:
            if image is not None:
                copy.link_image(image)
            if label is not None:
                copy.fix_label_file(label, layout)
        for named in _named_files(data, config, path.parent):
            copy.copy_named_file(named)
        copy.log_the_rest(path)
        _write_data_yaml(copy, path, data, checked.key_lines.get("path"))
        unfixed = Counter(f.rule for f in result.findings if f.rule not in FIXED_RULES)
        report.unfixed = dict(sorted(unfixed.items()))
        (work / LOG_NAME).write_text(json.dumps({"source": str(path), **report.to_dict()}, indent=2))
    return report


@dataclass
class _Copy:
    """The files of the dataset folder ``root`` going into ``work`` (OUT's temporary folder), each once."""

    root: Path
    work: Path
    report: FixReport
    orphans: set[str]  # absolute paths of label files without an image: left out
    placed: set[str] = field(default_factory=set)  # absolute source paths (links not resolved) that went into OUT

    def relative(self, source: str) -> Path | None:
        """The place of a source path in OUT, or None when it is not below the dataset folder."""
        rel = Path(os.path.relpath(os.path.abspath(source), self.root))
        return None if rel.parts[:1] == ("..",) or rel.is_absolute() else rel

    def leave_out(self, source: str | Path, why: str) -> None:
        rel = self.relative(str(source))
        self.report.changes.append(FixChange(str(rel if rel is not None else source), None, None, f"left out: {why}"))

    def link_image(self, image: str) -> None:
        """Link an image of the dataset into OUT (a link, never the bytes: fixing does not touch pixels)."""
        if image in self.placed:
            return
        rel = self.relative(image)
        if rel is not None and rel.suffix.lower() in IMAGE_SUFFIXES:
            (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
            place_image(image, self.work / rel)
            self.placed.add(image)

    def fix_label_file(self, label: str, layout: LabelLayout) -> None:
        """Write the fixed copy of a label file (its bytes when nothing changes), or log why it is left out.

        Raises:
            OSError, InputFileError: the file cannot be read (OUT would silently lack it: nothing is written).
        """
        if label in self.placed:
            return
        self.placed.add(label)
        rel = self.relative(label)
        if rel is None or not _exists(label):
            return
        if os.path.abspath(label) in self.orphans:
            self.report.changes.append(FixChange(str(rel), None, "label_without_image", "left out: no image"))
            return
        if not _inside(Path(label), self.root):
            self.leave_out(label, "a link to a file outside the dataset folder")
            return
        try:
            raw = read_input_file(label, MAX_LABEL_BYTES, "label file")
        except (OSError, InputFileError) as e:
            if _cannot_read(e):
                raise
            self.leave_out(label, getattr(e, "reason", None) or str(e))
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:  # label_unreadable: not fixable, copied as it is
            _write_bytes(self.work / rel, raw)
            return
        new_text, changes = fix_label_text(text, layout, str(rel))
        _write_bytes(self.work / rel, new_text.encode("utf-8") if changes else raw)
        if changes:
            self.report.changes += changes
            self.report.files_changed += 1

    def copy_named_file(self, named: Path) -> None:
        """Copy a file data.yaml names (a split list, ``coco_ids``) when it lies inside the dataset folder."""
        rel = self.relative(str(named))
        if rel is None or str(named) in self.placed or not named.is_file():
            return
        self.placed.add(str(named))
        if not _inside(named, self.root):
            self.leave_out(named, "a link to a file outside the dataset folder")
            return
        try:
            _write_bytes(self.work / rel, read_input_file(named, MAX_LABEL_BYTES, "file"))
        except (OSError, InputFileError) as e:
            if _cannot_read(e):
                raise
            self.leave_out(named, getattr(e, "reason", None) or str(e))

    def log_the_rest(self, data_yaml: Path) -> None:
        """Log every other file of the dataset folder as left out (an unreadable folder is an error)."""
        for folder, dirs, files in os.walk(self.root, onerror=raise_os_error):
            dirs.sort()
            for name in sorted(files):
                source = os.path.join(folder, name)
                if source not in self.placed and os.path.abspath(source) != str(data_yaml) and os.path.abspath(source) not in self.orphans:
                    self.leave_out(source, "not an image, label file or file named by data.yaml")


def _write_data_yaml(copy: _Copy, path: Path, data: dict, path_line: int | None) -> None:
    """data.yaml into OUT, where it was in the dataset: with ``path`` pointing at the copy (a logged change), else its
    bytes."""
    yaml_target = path.relative_to(copy.root) if copy.root in path.parents else Path(path.name)
    target = copy.work / yaml_target
    target.parent.mkdir(parents=True, exist_ok=True)
    new_path = os.path.relpath(copy.work, target.parent)
    if "path" in data and str(data["path"]) != new_path:
        shown = data["path"] if isinstance(data["path"], str) else shown_value(data["path"])
        copy.report.changes.append(FixChange(str(yaml_target), path_line, None, f"path: {shown} -> {new_path}"))
        data["path"] = new_path
        target.write_text(dump_yaml(data))
    else:
        _write_bytes(target, read_input_file(path, MAX_DATA_YAML_BYTES, "data.yaml"))
