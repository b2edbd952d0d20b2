"""``mtdata check``: every rule over a dataset, as findings with a rule id, a file and a line.

Flow: data.yaml rules (:mod:`mtdata.formats.yolo.data_yaml_rules`), then per image and label file, in parallel
across files: :func:`mtdata.check.verify.verify_image` (full decode, EXIF, content hash),
:func:`mtdata.check.verify.verify_label_text` (the rows the trainer reads) and the geometry and
keypoint rules (:mod:`mtdata.check.objects`); then rules across files: label files without an
image and the same image content in two splits.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from mtdata._runtime.parallel import WorkerPool
from mtdata.check.data_yaml import check_data_yaml
from mtdata.check.objects import FileRows, object_findings_batch
from mtdata.check.rules import RULES, finding
from mtdata.check.verify import verify_image, verify_label_texts
from mtdata.errors import Finding, MtdataError, Severity
from mtdata.formats.yolo.data_yaml import SPLIT_KEYS, DatasetConfig, label_dir_for
from mtdata.formats.yolo.rows import LabelLayout, read_label_text
from mtdata.formats.yolo.splits import label_path, split_entries  # noqa: F401  (label_path: callers of mtdata.check.dataset)
from mtdata.input_files import MAX_IMAGE_BYTES, InputFileError, read_input_file

Progress = Callable[[int, int], None]
_CHUNK = 128  # files per task sent to a worker: large enough to amortize the pickling
_PARALLEL_MIN = 256  # below this many files a process pool costs more than it saves


@dataclass(frozen=True)
class _Item:
    """One unit of work: an image and/or its label file, in a split."""

    split: str
    image: str | None
    label: str | None
    hash_only: bool = False  # an image of a split not being checked: hashed for leakage only
    orphan: bool = True  # a label without image is a finding (not when the whole image folder is missing)


@dataclass
class _ItemResult:
    item: _Item
    digest: str | None = None
    rows: int = 0
    has_label: bool = False
    unusable: bool = False  # the trainer drops this image
    findings: list[Finding] = field(default_factory=list)


@dataclass
class CheckResult:
    """What ``mtdata check`` found.

    Attributes:
        data_yaml: the checked file.
        findings: sorted by file and line; data.yaml first.
        summary: counts (see :func:`check_dataset`).
        pairs: (split, image path or None, label path or None) of every file checked, for
            tools that attach findings to images (``mtdata view``).
    """

    data_yaml: Path
    findings: list[Finding]
    summary: dict
    pairs: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def exit_code(self, strict: bool = False) -> int:
        """2 with any error, 1 with warnings under ``strict``, else 0."""
        if self.errors:
            return 2
        return 1 if strict and self.warnings else 0

    def to_dict(self) -> dict:
        return {"findings": [f.to_dict() for f in self.findings], "summary": self.summary}


# --- listing --------------------------------------------------------------------------------


def _list_files(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files below a folder whose lower-cased suffix is in ``suffixes``, sorted (os.scandir: 20,000 files in
    milliseconds). A broken link is kept: it is reported unreadable."""
    found, stack = [], [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in suffixes:
                    found.append(entry.path)
    return sorted(found)


def _split_items(config: DatasetConfig, split: str, hash_only: bool, lines: dict[str, int], findings: list[Finding]) -> list[_Item]:
    """Images of a split paired with their label files, and label files with no image."""
    items: list[_Item] = []
    claimed: set[str] = set()
    label_dirs: dict[Path, bool] = {}  # label folder -> its image folder exists
    for entry in split_entries(config, split):
        if entry.kind == "list":
            items += [_Item(split, image, label, hash_only) for image, label in zip(entry.images, entry.labels)]
        elif entry.kind == "folder":
            for image, label in zip(entry.images, entry.labels):
                claimed.add(label)
                items.append(_Item(split, image, label, hash_only))
            label_dirs[label_dir_for(entry.path)] = True
        elif not hash_only:
            findings.append(finding(
                "yaml_split_not_found", config.file, lines.get(split),
                f"'{split}' folder {entry.path} does not exist" + (" (nor does its label folder)" if not label_dir_for(entry.path).is_dir() else ""),
            ))
            label_dirs.setdefault(label_dir_for(entry.path), False)  # a label-only split still gets its rows checked
    if hash_only:
        return items
    if not items and all(e.exists() for e in config.image_dirs(split)):
        findings.append(finding("yaml_split_empty", config.file, lines.get(split), f"'{split}' has no images ({', '.join(config.splits[split]) or 'an empty list'})"))
    for label_dir, has_images in label_dirs.items():
        if label_dir.is_dir():
            items += [_Item(split, None, label, orphan=has_images) for label in _list_files(str(label_dir), (".txt",)) if label not in claimed]
    return items


# --- per-file work (runs in worker processes) -----------------------------------------------


def _check_item(item: _Item, layout: LabelLayout | None) -> tuple[_ItemResult, str | None, tuple[int, int] | None]:
    """Image rules of one item and its label text; returns (result, label text to verify or None, image size)."""
    result = _ItemResult(item)
    if item.hash_only:
        try:
            result.digest = hashlib.blake2b(read_input_file(item.image, MAX_IMAGE_BYTES, "image"), digest_size=16).hexdigest()
        except (OSError, InputFileError):
            pass
        return result, None, None
    resolution = None
    if item.image is not None:
        image = verify_image(item.image, digest=True)
        result.digest, resolution = image.digest, image.resolution_wh
        result.findings += image.findings
        result.unusable = not image.ok
    if item.label is None:
        return result, None, resolution
    try:
        text = read_label_text(item.label)
        result.has_label = True
    except FileNotFoundError:
        result.findings.append(finding("image_without_label", item.image, None, f"no label file {item.label}: trained as background"))
        return result, None, resolution
    except InputFileError as e:
        result.has_label = True
        result.findings.append(finding("label_unreadable", item.label, None, e.reason))
        result.unusable = item.image is not None
        return result, None, resolution
    if item.image is None and item.orphan:
        result.findings.append(finding("label_without_image", item.label, None, "no image for this label file"))
    if layout is None:  # data.yaml errors leave the row layout unknown
        return result, None, resolution
    return result, text, resolution


def _check_chunk(args: tuple[list[_Item], LabelLayout | None, dict]) -> list[_ItemResult]:
    items, layout, kpt_names = args
    # OpenCV and libpng print every decoding failure to stderr; the findings say it better
    level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        checked = [_check_item(item, layout) for item in items]
    finally:
        cv2.utils.logging.setLogLevel(level)
    with_text = [(result, text, resolution) for result, text, resolution in checked if text is not None]
    if with_text:
        # the rows the trainer reads, for every file of the chunk at once (one shapely pass)
        verified = verify_label_texts([(text, result.item.label) for result, text, _ in with_text], layout)
        files = []
        for (result, text, resolution), (parsed, row_findings, shapes) in zip(with_text, verified):
            result.rows = len(parsed.rows) + len(parsed.problems)
            result.findings += row_findings
            files.append(FileRows(parsed, text.splitlines(), resolution, result.item.label, shapes))
        found = object_findings_batch(files, layout, kpt_names)
        for (result, _, _), extra in zip(with_text, found):
            result.findings += extra
    return [result for result, _, _ in checked]


def _run(items: list[_Item], layout: LabelLayout | None, kpt_names: dict, workers: int, progress: Progress | None) -> list[_ItemResult]:
    chunks = [(items[i:i + _CHUNK], layout, kpt_names) for i in range(0, len(items), _CHUNK)]
    results: list[_ItemResult] = []
    with WorkerPool(workers if len(items) >= _PARALLEL_MIN else 1) as pool:
        for chunk in pool.map(_check_chunk, chunks):
            results.extend(chunk)
            if progress is not None:
                progress(len(results), len(items))
    return results


# --- across files ---------------------------------------------------------------------------


def _duplicates(results: list[_ItemResult], order: list[str]) -> list[Finding]:
    """The same content twice: an error across splits (leakage), a warning within one."""
    seen: dict[str, list[_ItemResult]] = defaultdict(list)
    for r in results:
        if r.digest is not None:
            seen[r.digest].append(r)
    findings = []
    for group in seen.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda r: (order.index(r.item.split), r.item.image))
        for i, r in enumerate(group[1:], start=1):
            if r.item.hash_only:
                continue
            earlier = group[:i]
            other = [g for g in earlier if g.item.split != r.item.split]
            if other:
                first = other[0]
                findings.append(finding(
                    "image_duplicate_across_splits", r.item.image, None,
                    f"same content as {first.item.image} in split '{first.item.split}' (leakage between '{first.item.split}' and '{r.item.split}')",
                ))
            else:
                findings.append(finding("image_duplicate", r.item.image, None, f"same content as {earlier[0].item.image} in this split"))
    return findings


def _check_each_file_once(items: list[_Item], layout: LabelLayout | None, kpt_names: dict, workers: int,
                          progress: Progress | None) -> list[_ItemResult]:
    """The results of every item, each file checked once: its other listings (a file listed by two
    splits) come after the checked ones and share the content hash."""
    groups: dict[tuple, list[_Item]] = defaultdict(list)
    for item in items:
        groups[(item.image, item.label)].append(item)
    for group in groups.values():
        group.sort(key=lambda i: i.hash_only)  # a checked listing first, when the file has one
    results = _run([g[0] for g in groups.values()], layout, kpt_names, workers, progress)
    for group, r in zip(list(groups.values()), list(results)):
        results += [_ItemResult(extra, digest=r.digest) for extra in group[1:]]
    return results


def _summary(path: Path, task: str | None, rows_checked: bool, targets: list[str], checked_results: list[_ItemResult],
             findings: list[Finding]) -> dict:
    """The counts of :func:`check_dataset`'s summary, per checked split and in all."""
    per_split = {}
    for s in targets:
        mine = [r for r in checked_results if r.item.split == s]
        per_split[s] = {
            "images": sum(r.item.image is not None for r in mine),
            "label_files": sum(r.has_label for r in mine),
            "rows": sum(r.rows for r in mine),
        }
    by_rule = Counter(f.rule for f in findings)
    severity = Counter(f.severity.value for f in findings)
    return {
        "data_yaml": str(path),
        "task": task,
        "rows_checked": rows_checked,
        "splits": per_split,
        "images": sum(v["images"] for v in per_split.values()),
        "label_files": sum(v["label_files"] for v in per_split.values()),
        "rows": sum(v["rows"] for v in per_split.values()),
        "unusable_images": sum(r.unusable for r in checked_results),
        "errors": severity["error"],
        "warnings": severity["warning"],
        "info": severity["info"],
        "rules": {rule: {"severity": RULES[rule].severity.value, "count": n} for rule, n in sorted(by_rule.items())},
    }


def check_dataset(
    data_yaml: str | Path,
    split: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    """Run every rule over the dataset of a data.yaml.

    Args:
        data_yaml: the dataset's data.yaml.
        split: check only this split (train, val or test); the others are still hashed so
            that leakage into it is found.
        workers: processes for the per-file work (default: every CPU).
        progress: called with (files done, files total).

    Returns:
        the findings and a summary: per split images/label files/rows, totals, error/warning/
        info counts, ``unusable_images`` (the images the trainer drops) and counts per rule.

    Raises:
        DatasetConfigError: data.yaml is missing, not YAML or not a mapping.
        MtdataError: ``split`` is not one of the data.yaml's splits.
    """
    path = Path(data_yaml).absolute()
    checked = check_data_yaml(path)
    config = checked.config
    findings = list(checked.findings)
    order = [s for s in SPLIT_KEYS if s in config.splits]
    if split is not None and split not in order:
        raise MtdataError(f"--split {split!r} is not in data.yaml (it has: {', '.join(order) or 'no splits'})", file=path)
    targets = [split] if split else order
    layout = config.layout() if checked.layout_ok else None

    items: list[_Item] = []
    for s in order:
        items += _split_items(config, s, s not in targets, checked.key_lines, findings)
    results = _check_each_file_once(items, layout, config.kpt_names, workers or os.cpu_count() or 1, progress)
    for r in results:
        findings += r.findings
    findings += _duplicates(results, order)
    findings.sort(key=lambda f: (f.file != str(path), f.file, f.line or 0, f.rule))

    checked_results = [r for r in results if not r.item.hash_only]
    summary = _summary(path, config.task if checked.layout_ok else None, layout is not None, targets, checked_results, findings)
    pairs = [(r.item.split, r.item.image, r.item.label) for r in checked_results]
    return CheckResult(path, findings, summary, pairs)
