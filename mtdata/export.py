"""A YOLO dataset (multitask, segment or pose) -> one COCO JSON file per split.

``export_coco`` is the library entry point behind ``mtdata export``; ``build_coco`` returns the
COCO dict in memory and ``dataset_ids`` the ids it uses, so mttrain's COCO evaluation writes
predictions with exactly the ids of the ground truth.

Ids: a dataset written by ``mtdata convert`` names its ``coco_ids.json`` in data.yaml
(``coco_ids: coco_ids.json``); its category and image ids are reused, so the export (and
predictions) line up with the source COCO file, with the source's supercategories and, for
crowd objects kept by ``--crowd include``, ``iscrowd: 1`` (while their label files are
unchanged). Otherwise categories are ``class + 1`` (supercategory: the name) and images
``1..N`` in sorted path order.

Rows are read as the trainer reads them (:func:`mtdata.check.verify.verify_label_text`): a row that
does not parse, whose polygon has zero area or crosses itself, or that repeats an earlier row,
is left out and reported, so the export holds the same objects that training and validation
see (and that ``mtdata check`` passes). Pixel values are rounded to the precision of the label
file's numbers (:func:`source_decimals`): no ``353.37023999999997``. Images over the size
limit of :mod:`mtdata.image_header` are left out and named.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mtdata._runtime.output import atomic_output_file, check_output_file
from mtdata.check.verify import duplicate_rows, verify_label_text
from mtdata.errors import DatasetConfigError, InputError, OutputError
from mtdata.formats.coco.write import annotation_entries, category_entries, coco_document, image_entry
from mtdata.formats.yolo.data_yaml import DatasetConfig, read_data_yaml, shown_value
from mtdata.formats.yolo.rows import rows_to_labels
from mtdata.formats.yolo.splits import label_path, split_entries
from mtdata.image_header import read_image_header
from mtdata.input_files import MAX_LABEL_BYTES, InputFileError, read_input_file
from mtdata.records import ImageLabels

EXPORT_TASKS = ("multitask", "segment", "pose")
Progress = Callable[[int, int], None]


@dataclass
class DatasetIds:
    """The COCO ids of a split's classes and images.

    Attributes:
        category_ids: class index -> COCO category id.
        image_ids: absolute image path (``os.path.abspath``, links not followed) -> COCO image id.
        image_dirs: absolute image path -> the split folder it was found in.
        source_files: the COCO files the split was converted from (``mtdata convert``), if any.
        from_source: every image's id came from ``source_files``.
        notes: what a user should know about the ids.
        supercategories: class index -> the source's supercategory.
        crowd: absolute image path -> (1-based lines of its crowd rows, blake2b of the label
            file convert wrote): the lines hold only while the file is unchanged.
    """

    category_ids: dict[int, int]
    image_ids: dict[str, int]
    image_dirs: dict[str, Path]
    source_files: list[Path] = field(default_factory=list)
    from_source: bool = False
    notes: list[str] = field(default_factory=list)
    supercategories: dict[int, str] = field(default_factory=dict)
    crowd: dict[str, tuple[frozenset[int], str]] = field(default_factory=dict)


@dataclass
class ExportReport:
    """What an export wrote and left out."""

    out: Path | None
    split: str
    task: str
    images: int = 0
    annotations_per_class: Counter = field(default_factory=Counter)  # class name -> annotations
    rows_left_out: list[str] = field(default_factory=list)  # "file:line: why"
    images_unreadable: list[str] = field(default_factory=list)
    ids_from: str = "1-based"
    notes: list[str] = field(default_factory=list)
    crowd_changed: int = 0  # label files whose crowd rows convert recorded but that changed since

    @property
    def annotations(self) -> int:
        return sum(self.annotations_per_class.values())

    def to_dict(self) -> dict:
        return {
            "out": str(self.out) if self.out else None,
            "split": self.split,
            "task": self.task,
            "images": self.images,
            "annotations": self.annotations,
            "annotations_per_class": dict(self.annotations_per_class),
            "rows_left_out": self.rows_left_out,
            "images_unreadable": self.images_unreadable,
            "ids_from": self.ids_from,
            "notes": self.notes,
        }


def split_images(config: DatasetConfig, split: str) -> list[tuple[Path, Path]]:
    """(image path, split folder it is under) for every image of a split, sorted by path.

    Folders are searched recursively, ``.txt`` lists are read (paths relative to the root), as
    ultralytics' ``get_img_files`` does.
    """
    if split not in config.splits:
        raise DatasetConfigError(f"data.yaml has no '{split}' split (it has: {', '.join(config.splits) or 'none'})", file=config.file)
    found: dict[str, tuple[Path, Path]] = {}
    for entry in split_entries(config, split):
        if entry.kind == "missing":
            raise InputError(f"the '{split}' images folder does not exist", file=entry.path)
        for image in map(os.path.abspath, entry.images):
            found.setdefault(image, (Path(image), Path(os.path.dirname(image) if entry.kind == "list" else os.path.abspath(entry.path))))
    return [found[k] for k in sorted(found)]


def _coco_ids_file(config: DatasetConfig) -> Path | None:
    name = config.extra.get("coco_ids")
    if not name:
        return None
    path = Path(str(name))
    if not path.is_absolute():
        path = (config.file.parent if config.file else config.root) / path
    return path


MAX_COCO_IDS_BYTES = 256 << 20  # COCO's 118k train images take 5 MB


def _read_coco_ids(path: Path) -> dict:
    """``coco_ids.json`` as convert writes it: ``categories`` {class: id}, optional ``supercategories``
    {class: name}, and per split ``annotations``, ``images`` {file name: id} and optional ``crowd``
    {file name: {"lines": [1-based lines], "label_blake2b": hex digest of the label file}}."""
    try:
        data = json.loads(read_input_file(path, MAX_COCO_IDS_BYTES, "coco_ids file"))
        data["categories"] = {int(k): int(v) for k, v in data["categories"].items()}
        data["supercategories"] = {int(k): str(v) for k, v in (data.get("supercategories") or {}).items()}
        for entry in data["splits"].values():
            entry["images"] = {str(k): int(v) for k, v in entry["images"].items()}
            entry["crowd"] = {str(k): (frozenset(int(n) for n in v["lines"]), str(v["label_blake2b"]))
                              for k, v in (entry.get("crowd") or {}).items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise InputError(f"not a coco_ids file written by mtdata convert ({type(e).__name__}: {shown_value(str(e))})", file=path) from e
    return data


def dataset_ids(config: DatasetConfig, split: str) -> DatasetIds:
    """COCO ids for a split: from the source COCO (``coco_ids.json``) when there is one, else 1-based."""
    images = split_images(config, split)
    image_dirs = {str(p): d for p, d in images}
    ids_path = _coco_ids_file(config)
    notes: list[str] = []
    source = None
    if ids_path is not None:
        if ids_path.is_file():
            source = _read_coco_ids(ids_path)
        else:
            notes.append(f"{ids_path} (named by data.yaml 'coco_ids') not found: ids are 1-based")
    if source is None:
        return DatasetIds({c: c + 1 for c in config.names}, {str(p): i for i, (p, _) in enumerate(images, start=1)}, image_dirs, notes=notes)

    missing = sorted(set(config.names) - set(source["categories"]))
    if missing:
        raise InputError(f"{len(missing)} classes have no category id: {shown_value(missing)} "
                         f"(the file maps {shown_value(sorted(source['categories']))})", file=ids_path)
    # convert writes each split's images to images/<split label>/ under the dataset root
    by_folder = {os.path.abspath(config.root / "images" / label): label for label in source["splits"]}
    image_ids: dict[str, int] = {}
    crowd: dict[str, tuple[frozenset[int], str]] = {}
    used: list[str] = []
    unknown: list[str] = []
    for path, folder in images:
        label = by_folder.get(str(folder))
        image_id = source["splits"][label]["images"].get(path.name) if label is not None else None
        if image_id is None:
            unknown.append(str(path))
            continue
        image_ids[str(path)] = image_id
        if path.name in source["splits"][label]["crowd"]:
            crowd[str(path)] = source["splits"][label]["crowd"][path.name]
        if label not in used:
            used.append(label)
    if unknown:  # images added after the conversion: fresh ids above every source id
        taken = [i for entry in source["splits"].values() for i in entry["images"].values()]
        start = max(taken, default=0) + 1
        image_ids.update({p: start + i for i, p in enumerate(unknown)})
        notes.append(f"{len(unknown)} images are not in {ids_path.name} (e.g. {Path(unknown[0]).name}): given new ids from {start}")
    return DatasetIds(
        {c: source["categories"][c] for c in config.names},
        image_ids,
        image_dirs,
        source_files=[Path(source["splits"][label]["annotations"]) for label in used],
        from_source=not unknown and bool(used),
        notes=notes,
        supercategories={c: source["supercategories"][c] for c in config.names if c in source["supercategories"]},
        crowd=crowd,
    )


_FRACTION = re.compile(r"\.([0-9]+)")


def source_decimals(text: str) -> int:
    """Decimals to round a label file's pixel values to: its numbers' most fraction digits + 1 (a box
    centre or side from values of D decimals has D + 1), at most 15 (all a float holds); 15 with exponents."""
    if "e" in text or "E" in text:
        return 15
    return min(15, max((len(m) for m in _FRACTION.findall(text)), default=0) + 1)


def _label_bytes(label_file: Path, report: ExportReport) -> bytes | None:
    """The label file's bytes (bounded, a regular file), None when there is none or it cannot be read (reported)."""
    try:
        return read_input_file(label_file, MAX_LABEL_BYTES, "label file")
    except FileNotFoundError:
        return None
    except InputFileError as e:
        if e.unreadable:  # the export would silently lack its objects: stop, nothing is written
            raise
        report.rows_left_out.append(f"{label_file}: {e.reason}")
        return None


def _crowd_rows(entry: tuple[frozenset[int], str] | None, data: bytes, lines: list[int], report: ExportReport) -> set[int]:
    """Indices (among ``lines``, the rows kept) of the crowd objects convert recorded for this label file."""
    if entry is None:
        return set()
    crowd_lines, digest = entry
    if hashlib.blake2b(data, digest_size=16).hexdigest() != digest:
        report.crowd_changed += 1
        return set()
    return {i for i, line in enumerate(lines) if line in crowd_lines}


def _check_task(config: DatasetConfig) -> None:
    if config.task not in EXPORT_TASKS:
        raise DatasetConfigError(f"export reads {', '.join(EXPORT_TASKS)} datasets; this one is {config.task!r}", file=config.file)


def build_coco(
    config: DatasetConfig, split: str = "val", progress: Progress | None = None, ids: DatasetIds | None = None
) -> tuple[dict, ExportReport]:
    """One split of a dataset as a COCO dict (pixels), and the report of what it holds.

    Args:
        config: the dataset.
        split: train, val or test.
        progress: called with (images done, images total).
        ids: the split's :func:`dataset_ids`, when the caller has them already.

    Raises:
        MtdataError: no such split, a missing images folder, an unreadable coco_ids file.
    """
    _check_task(config)
    ids = ids or dataset_ids(config, split)
    report = ExportReport(out=None, split=split, task=config.task, notes=list(ids.notes))
    if ids.from_source:
        report.ids_from = "source COCO " + ", ".join(str(p) for p in ids.source_files)
    layout = config.layout()
    keypoint_classes = config.keypoint_class_ids
    images, annotations = [], []
    total = len(ids.image_ids)
    for done, (path_str, image_id) in enumerate(sorted(ids.image_ids.items(), key=lambda kv: kv[1]), start=1):
        path = Path(path_str)
        try:
            resolution_wh = read_image_header(path).resolution_wh  # as the image loads: EXIF applied
        except InputError as e:
            report.images_unreadable.append(f"{path}: {e.message}")
            continue
        labels, crowd, decimals = _image_labels(path_str, resolution_wh, config, layout, ids, report)
        file_name = path.relative_to(ids.image_dirs[path_str]).as_posix()
        images.append(image_entry(image_id, file_name, resolution_wh))
        annotations += annotation_entries(labels, image_id, ids.category_ids, keypoint_classes, first_id=len(annotations) + 1,
                                          crowd=crowd, decimals=decimals)
        for cls in labels.class_id:
            report.annotations_per_class[config.names[int(cls)]] += 1
        if progress is not None and (done % 256 == 0 or done == total):
            progress(done, total)
    report.images = len(images)
    if not images:
        report.notes.append(f"the '{split}' split has no images: the file holds categories only")
    if report.crowd_changed:
        report.notes.append(f"{report.crowd_changed} label files with crowd rows changed since mtdata convert: "
                            "their crowd objects are written with iscrowd 0")
    categories = category_entries(config.names, ids.category_ids, config.kpt_names if keypoint_classes else {}, config.skeleton,
                                  ids.supercategories)
    name = config.file.name if config.file else "data.yaml"
    return coco_document(images, annotations, categories, f"mtdata export of {name}, split {split}"), report


def _image_labels(path_str: str, resolution_wh: tuple[int, int], config: DatasetConfig, layout, ids: DatasetIds,
                  report: ExportReport) -> tuple[ImageLabels, set[int], int | None]:
    """(the objects of an image's label file in pixels, the indexes of its crowd objects, the decimals its numbers
    were written with (None: no text)); rows the trainer would refuse, and repeated rows, are left out and named in
    ``report``."""
    label_file = Path(label_path(path_str))  # the one rule (mtdata.formats.yolo.splits)
    empty = ImageLabels.empty(resolution_wh, config.num_keypoints), set(), None
    data = _label_bytes(label_file, report)
    if data is None:
        return empty
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        report.rows_left_out.append(f"{label_file}: not UTF-8 text: {e.reason} at byte {e.start}")
        return empty
    parsed, findings = verify_label_text(text, layout, label_file)  # the trainer's rows, the trainer's verdict
    report.rows_left_out += [f"{f.file}:{f.line}: {f.message}" if f.line else f"{f.file}: {f.message}"
                             for f in findings if f.severity.value == "error"]
    repeated = {i for i, _ in duplicate_rows(parsed)}
    kept = [i for i in range(len(parsed.rows)) if i not in repeated]
    labels = rows_to_labels([parsed.rows[i] for i in kept], resolution_wh, config.num_keypoints)
    crowd = _crowd_rows(ids.crowd.get(path_str), data, [parsed.lines[i] for i in kept], report)
    return labels, crowd, source_decimals(text)


def write_json_atomic(data: dict, out: Path) -> None:
    """Write JSON to a temporary file beside ``out``, then rename it over ``out`` (:func:`mtdata._runtime.output.atomic_output_file`)."""
    with atomic_output_file(out) as work, open(work, "w") as f:
        json.dump(data, f)


def export_coco(
    data_yaml: str | Path,
    out: str | Path,
    *,
    split: str = "val",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Export one split of a YOLO dataset to a COCO JSON file (written atomically).

    Args:
        data_yaml: the dataset's data.yaml (multitask, segment or pose).
        out: the COCO file to write; must not exist unless ``overwrite``.
        split: train, val or test.
        progress: called with (images done, images total).

    Raises:
        MtdataError: a bad data.yaml or output location.
    """
    data_yaml, out = Path(data_yaml), Path(out)
    config = read_data_yaml(data_yaml)
    _check_task(config)
    out = check_output_file(out, overwrite)
    ids = dataset_ids(config, split)
    ids_file = _coco_ids_file(config)
    protected = [data_yaml] + ([ids_file] if ids_file else []) + ids.source_files
    if any(out.resolve() == p.resolve() for p in protected):
        raise OutputError(f"output {out} is one of the inputs: choose another file")
    data, report = build_coco(config, split, progress, ids)
    write_json_atomic(data, out)
    report.out = out.resolve()
    return report
