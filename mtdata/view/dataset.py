"""A multitask, segment or pose dataset as a FiftyOne dataset, for the App and notebooks.

One sample per image, tagged with its split; its objects in ``ground_truth`` (``fo.Detection``:
box + mask) and ``ground_truth_keypoints`` (``fo.Keypoint``), linked by ``fo.Instance`` (see
``mtdata.view.labels``); ``mtdata check`` findings as sample and label tags named by rule.
Samples go in through FiftyOne's public API (``fo.Sample`` + ``Dataset.add_samples``), or,
when the installed FiftyOne is one ``mtdata.view.docs`` was written for, through that faster
seam; the dataset is the same either way.

FiftyOne is imported lazily (it needs MongoDB): ``import_fiftyone()`` sets the private,
offline defaults first (``FIFTYONE_DO_NOT_TRACK=true``) and honours ``FIFTYONE_DATABASE_URI``
and ``FIFTYONE_DATABASE_DIR``, which FiftyOne reads itself.

>>> dataset = build_dataset("data.yaml")  # doctest: +SKIP
>>> dataset.count("ground_truth.detections")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mtdata.errors import DatasetConfigError, Finding, InputError, MtdataError
from mtdata.formats.yolo.data_yaml import DatasetConfig, read_data_yaml
from mtdata.view import docs as view_docs
from mtdata.view.entries import ImageEntry, _split_images, image_info, iter_split
from mtdata.view.fields import (
    FIELD_COLORS,
    GT_FIELD,
    INSTALL_HINT,
    KEYPOINTS_SUFFIX,
    PRED_FIELD,
    import_fiftyone,
    keypoints_field,
)
from mtdata.view.labels import (
    FindingIndex,
    entry_to_sample,
    keypoint_points,
    labels_to_fiftyone,
    object_fields,
    object_mask,
    to_fiftyone_labels,
)

entry_to_doc = view_docs.entry_to_doc
__all__ = [
    "FIELD_COLORS", "GT_FIELD", "INSTALL_HINT", "KEYPOINTS_SUFFIX", "PRED_FIELD", "FindingIndex", "ImageEntry",
    "build_dataset", "configure_dataset", "declare_schema", "default_name", "entry_to_doc", "entry_to_sample",
    "image_info", "import_fiftyone", "iter_split", "keypoint_counts", "keypoint_points", "keypoints_field",
    "labels_to_fiftyone", "object_fields", "object_mask", "to_fiftyone_labels",
]


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


def _split_pairs(config: DatasetConfig, splits: list[str]) -> dict[str, list[tuple[Path, Path]]]:
    """split -> its (image, label file) pairs; every split named must exist and have images."""
    for split in splits:
        if split not in config.splits:
            raise DatasetConfigError(f"no split '{split}' (data.yaml has {', '.join(config.splits) or 'none'})", file=config.file)
    pairs = {split: _split_images(config, split) for split in splits}
    for split, found in pairs.items():
        if not found:
            folders = ", ".join(str(d) for d in config.image_dirs(split))
            raise InputError(f"split '{split}' has no images under {folders}: mtdata view shows images, not labels alone", file=config.file)
    return pairs


def _add_entries(
    dataset, entries: Iterator[ImageEntry], config: DatasetConfig, index: FindingIndex, total: int, bulk: bool
) -> None:
    """Write ``entries`` as samples: through ``mtdata.view.docs`` when ``bulk`` and it supports this
    FiftyOne, else through ``Dataset.add_samples``; the declared schema (``declare_schema``) is not expanded."""
    if bulk and view_docs.available():
        view_docs.insert_samples(dataset, (view_docs.entry_to_doc(entry, config, index) for entry in entries))
        return
    samples = (entry_to_sample(entry, config, index) for entry in entries)
    # The records were validated when parsed and the schema is declared: skip both per-sample passes.
    dataset.add_samples(samples, expand_schema=False, validate=False, progress=False, num_samples=total)


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
        bulk: write FiftyOne's documents directly (``mtdata.view.docs``) when the installed
            FiftyOne is one that seam was written for; False, or any other FiftyOne, goes
            through ``fo.Sample`` and ``Dataset.add_samples``. The dataset is the same.

    Returns:
        the ``fo.Dataset``.

    Raises:
        MtdataError: bad data.yaml, a split without images, the name taken (``overwrite=False``),
            FiftyOne missing or its database unreachable.
    """
    config = read_data_yaml(data_yaml)
    splits = splits or list(config.splits)
    pairs = _split_pairs(config, splits)
    total = sum(len(v) for v in pairs.values())
    index = FindingIndex(findings)
    fo = import_fiftyone()
    dataset = _open_dataset(fo, name or default_name(config), persistent, overwrite)
    configure_dataset(dataset, config)
    declare_schema(dataset, config)

    def entries() -> Iterator[ImageEntry]:
        done = 0
        for split in splits:
            for entry in iter_split(config, split, pairs[split]):
                yield entry
                done += 1
                if progress:
                    progress(done, total)

    _add_entries(dataset, entries(), config, index, total, bulk)
    dataset.info["unattached_findings"] = index.unattached()
    dataset.save()
    return dataset
