"""The one seam into FiftyOne's internals: sample documents written straight into its collection.

``Dataset.add_samples`` builds a mongoengine document per label, serializes it, and after the
insert rebuilds every document from its dict again: most of the load time. Here the same
documents are written as plain dicts, in the layout ``fo.Sample.to_mongo_dict()`` produces,
and inserted in batches: ``benchmarks/view.py --images 1000 --repeats 3`` (fiftyone 1.22.1, 2 shared
cores, three runs) loads in 2.1-2.4 s through here against 8.9-13.3 s through ``add_samples``
(best of 3 each; 0.17-0.27x the public path's time).

``mtdata.view.dataset.build_dataset`` takes this path only when :func:`available` says so: the
installed FiftyOne is a release this module was checked against (``SUPPORTED_FIFTYONE``) and
every internal it touches (:func:`check_internals`) is in place, decided once per process;
otherwise it goes through ``fo.Sample`` and ``Dataset.add_samples``, FiftyOne's public API,
with the same result. The internals touched: ``Dataset._sample_collection`` (the pymongo
collection), ``Dataset._doc.id`` (the ``_dataset_id`` of each sample), the stored layout of
samples, ``Detection``/``Keypoint``/``Instance``/``ImageMetadata`` and of masks
(``fiftyone.core.utils.serialize_numpy_array``), and ``_rand``'s distribution.
``tests/mtdata/view/test_docs.py`` fails, naming what moved, when any of them does.

One more internal, for ``mtdata view``'s shutdown: :func:`close_database_client` calls
``fiftyone.core.odm.database._disconnect`` (checked by :func:`disconnect_problems`); on another FiftyOne
it closes nothing, and FiftyOne's exit hook waits on its database as it would without mtdata.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice

from mtdata.formats.yolo.data_yaml import DatasetConfig
from mtdata.view.entries import ImageEntry
from mtdata.view.fields import GT_FIELD, keypoints_field
from mtdata.view.labels import FindingIndex, sample_parts

# [low, high) (major, minor): the releases whose internals the tests were run against. Widen it
# only after tests/mtdata/view/test_docs.py passes on the new release.
SUPPORTED_FIFTYONE = ((1, 22), (1, 23))
BATCH = 256  # samples per insert_many


def version_supported(version: str) -> bool:
    """Whether FiftyOne ``version`` (``"1.22.1"``) is in ``SUPPORTED_FIFTYONE``."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:  # "2.0.0rc1" parses; "dev" does not: not a release we know
        return False
    low, high = SUPPORTED_FIFTYONE
    return low <= major_minor < high


def check_internals() -> list[str]:
    """What this module expects of FiftyOne's internals and is missing; empty when all is in place."""
    import fiftyone as fo
    import fiftyone.core.odm.sample as odm_sample
    import fiftyone.core.utils as fou

    problems = []
    if not isinstance(inspect.getattr_static(fo.Dataset, "_sample_collection", None), property):
        problems.append("fo.Dataset._sample_collection is no longer a property (the pymongo collection of samples)")
    if "_doc" not in inspect.getsource(fo.Dataset.__init__):
        problems.append("fo.Dataset.__init__ no longer sets self._doc (its .id is each sample's _dataset_id)")
    if "_dataset_id" not in inspect.getsource(fo.Dataset._make_dict):
        problems.append("fo.Dataset._make_dict no longer stores _dataset_id in each sample document")
    if list(inspect.signature(fou.serialize_numpy_array).parameters) != ["array", "ascii"]:
        problems.append("fiftyone.core.utils.serialize_numpy_array(array, ascii) changed signature (masks)")
    rand = getattr(odm_sample, "_generate_rand", None)
    if rand is None or "* 0.001 + 0.999" not in inspect.getsource(rand):
        problems.append("fiftyone.core.odm.sample._generate_rand no longer draws _rand uniform in [0.999, 1)")
    return problems


@functools.cache
def available() -> bool:
    """Whether this seam may write to the installed FiftyOne (checked once per process)."""
    import fiftyone as fo

    return version_supported(fo.__version__) and not check_internals()


def disconnect_problems() -> list[str]:
    """What :func:`close_database_client` expects of ``fiftyone.core.odm.database`` and is missing; empty when all is
    in place."""
    import fiftyone.core.odm.database as database

    close = getattr(database, "_disconnect", None)
    if not callable(close):
        return ["fiftyone.core.odm.database._disconnect is gone (it closes FiftyOne's database client)"]
    if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
           for p in inspect.signature(close).parameters.values()):
        return ["fiftyone.core.odm.database._disconnect now needs arguments"]
    if "_client.close()" not in inspect.getsource(close):
        return ["fiftyone.core.odm.database._disconnect no longer closes the pymongo client it holds (_client)"]
    return []


def close_database_client() -> bool:
    """Close FiftyOne's database client, if FiftyOne was imported; return whether it was closed.

    FiftyOne's exit hook (delete non-persistent datasets) otherwise waits 30 s for a database about to be
    stopped; with the client closed it returns at once. Only on a FiftyOne in ``SUPPORTED_FIFTYONE`` whose
    ``_disconnect`` is as :func:`disconnect_problems` expects; on any other nothing is closed (FiftyOne has no
    public call for it), and its exit hook takes its time.
    """
    database = sys.modules.get("fiftyone.core.odm.database")
    if database is None:  # FiftyOne not imported: no client to close, and no reason to import it now
        return False
    version = getattr(sys.modules.get("fiftyone"), "__version__", "")
    problems = [f"fiftyone {version} is outside {SUPPORTED_FIFTYONE}"] if not version_supported(version) else disconnect_problems()
    if problems:
        logging.getLogger(__name__).debug("FiftyOne's database client left open: %s", "; ".join(problems))
        return False
    database._disconnect()
    return True


def _rand() -> float:
    # FiftyOne's sample `_rand` default (fiftyone.core.odm.sample._generate_rand): uniform in [0.999, 1).
    return random.random() * 0.001 + 0.999


def detection_doc(fields: dict, serialize_array) -> dict:
    """One ``fo.Detection`` as stored; ``fields`` as made by ``mtdata.view.labels.object_fields``."""
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


def entry_to_doc(entry: ImageEntry, config: DatasetConfig, findings: FindingIndex | None = None) -> dict:
    """An ``ImageEntry`` as the sample document FiftyOne stores: ``entry_to_sample(...).to_mongo_dict()``."""
    from fiftyone.core.utils import serialize_numpy_array

    tags, detections, keypoints = sample_parts(entry, config, findings or FindingIndex())
    fields = {
        "label_file": str(entry.label_file) if entry.label_file else None,
        GT_FIELD: detections_doc([detection_doc(d, serialize_numpy_array) for d in detections]),
    }
    if config.num_keypoints:
        fields[keypoints_field(GT_FIELD)] = keypoints_doc([keypoint_doc(k) for k in keypoints])
    return sample_doc(str(entry.image), tags, entry.metadata, fields)


def insert_samples(dataset, docs: Iterable[dict]) -> int:
    """Insert sample documents into ``dataset`` in batches; returns how many.

    The dataset's schema must already declare every field the documents use (see
    ``mtdata.view.dataset.declare_schema``): nothing here expands it.

    Raises:
        RuntimeError: the installed FiftyOne is not one this seam was written for (:func:`available`).
    """
    import fiftyone as fo

    if not available():
        raise RuntimeError(f"mtdata.view.docs was not written for fiftyone {fo.__version__}: use Dataset.add_samples")
    if dataset.media_type is None:
        dataset.media_type = "image"
    collection = dataset._sample_collection
    dataset_id = dataset._doc.id
    count = 0
    for batch in _batches(iter(docs), BATCH):
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
