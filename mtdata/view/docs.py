"""FiftyOne's sample documents written directly, for bulk loading (fiftyone 1.x).

``Dataset.add_samples`` builds a mongoengine document per label, serializes it, and after the
insert rebuilds every document from its dict again: ~2 ms per rich sample, most of the load
time. Here the same documents are written as plain dicts, in the layout
``fo.Sample.to_mongo_dict()`` produces, and inserted in batches. This module is the only
place that knows that layout and touches FiftyOne internals (``Dataset._doc``,
``Dataset._sample_collection``); ``tests/mtdata/view/test_dataset.py`` compares its output with
``to_mongo_dict()`` of the same labels built through the public API, so a FiftyOne release
that changes the layout fails there, loudly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice

SUPPORTED_FIFTYONE = (1,)  # major versions whose sample layout this module writes
BATCH = 256  # samples per insert_many


def check_version(fo) -> None:
    major = int(fo.__version__.split(".")[0])
    if major not in SUPPORTED_FIFTYONE:
        raise RuntimeError(f"mtdata.view.docs writes fiftyone 1.x sample documents; found fiftyone {fo.__version__}")


def _rand() -> float:
    # FiftyOne's sample `_rand` default (fiftyone.core.odm.sample._generate_rand): uniform in [0.999, 1).
    return random.random() * 0.001 + 0.999


def detection_doc(fields: dict, serialize_array) -> dict:
    """One ``fo.Detection`` as stored; ``fields`` as made by ``mtdata.view.dataset.object_fields``."""
    doc = {
        "_id": fields["id"], "_cls": "Detection", "attributes": {}, "tags": list(fields["tags"]),
        "label": fields["label"], "bounding_box": list(fields["bounding_box"]),
    }
    if fields.get("mask") is not None:
        from bson import Binary

        doc["mask"] = Binary(serialize_array(fields["mask"]))
    if fields.get("confidence") is not None:
        doc["confidence"] = fields["confidence"]
    doc["index"] = fields["index"]
    doc["instance"] = {"_id": fields["instance_id"], "_cls": "Instance"}
    doc.update(fields["attributes"])
    return doc


def keypoint_doc(fields: dict) -> dict:
    """One ``fo.Keypoint`` as stored."""
    doc = {
        "_id": fields["id"], "_cls": "Keypoint", "attributes": {}, "tags": list(fields["tags"]),
        "label": fields["label"], "points": fields["points"], "confidence": fields.get("confidence"),
        "index": fields["index"], "instance": {"_id": fields["instance_id"], "_cls": "Instance"},
    }
    doc.update(fields["attributes"])
    return doc


def sample_doc(filepath: str, tags: list[str], metadata: dict | None, fields: dict) -> dict:
    """A sample's top-level document, without ``_dataset_id`` and timestamps (added on insert).

    Args:
        filepath: the image path.
        tags: sample tags.
        metadata: ``ImageMetadata`` fields (width, height, ...) or None.
        fields: other top-level fields: plain values, or label documents from
            :func:`detections_doc` / :func:`keypoints_doc`.
    """
    doc = {"filepath": filepath, "tags": list(tags), "_media_type": "image", "_rand": _rand()}
    if metadata is not None:
        doc["metadata"] = {"_cls": "ImageMetadata", **{k: v for k, v in metadata.items() if v is not None}}
    doc.update({k: v for k, v in fields.items() if v is not None})
    return doc


def detections_doc(detections: list[dict]) -> dict:
    return {"_cls": "Detections", "detections": detections}


def keypoints_doc(keypoints: list[dict]) -> dict:
    return {"_cls": "Keypoints", "keypoints": keypoints}


def insert_samples(dataset, docs: Iterable[dict]) -> int:
    """Insert sample documents into ``dataset`` in batches; returns how many.

    The dataset's schema must already declare every field the documents use (see
    ``mtdata.view.dataset.declare_schema``): nothing here expands it.
    """
    import fiftyone as fo

    check_version(fo)
    if dataset.media_type is None:
        dataset.media_type = "image"
    collection = dataset._sample_collection
    dataset_id = dataset._doc.id
    count = 0
    docs = iter(docs)
    for batch in _batches(docs, BATCH):
        now = datetime.now(UTC).replace(tzinfo=None)  # FiftyOne stores naive UTC
        for doc in batch:
            doc["_dataset_id"] = dataset_id
            doc["created_at"] = now
            doc["last_modified_at"] = now
        collection.insert_many(batch, ordered=True)
        count += len(batch)
    dataset.reload()
    return count


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while True:
        batch = list(islice(items, size))
        if not batch:
            return
        yield batch
