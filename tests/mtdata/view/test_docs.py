"""``mtdata.view.docs``, the seam into FiftyOne's internals: what it touches is in place, it writes what
the public API writes, and ``build_dataset`` makes the same dataset through either path."""

from __future__ import annotations

import math

import pytest

from mtdata.formats.yolo.data_yaml import read_data_yaml

fo = pytest.importorskip("fiftyone")

from mtdata.view import docs  # noqa: E402  (after the skip: the view extra is optional)


def test_the_fiftyone_internals_the_seam_touches_are_in_place():
    assert docs.check_internals() == []


def test_the_installed_fiftyone_is_one_the_seam_was_written_for():
    """Fails on a FiftyOne upgrade: run this file on it, then widen SUPPORTED_FIFTYONE (else view runs ~3x slower)."""
    assert docs.version_supported(fo.__version__), (
        f"fiftyone {fo.__version__} is outside mtdata.view.docs.SUPPORTED_FIFTYONE {docs.SUPPORTED_FIFTYONE}: "
        "build_dataset falls back to the public API; check the seam on it and widen the range"
    )
    assert docs.available()


@pytest.mark.parametrize(
    "version, supported",
    [
        ("1.22.1", True),
        ("1.22.0rc1", True),  # a pre-release of a supported minor
        ("1.21.9", False),  # older than the range
        ("1.23.0", False),  # newer: not checked yet
        ("2.0.0", False),
        ("dev", False),  # not a release number
    ],
)
def test_version_supported(version, supported):
    assert docs.SUPPORTED_FIFTYONE == ((1, 22), (1, 23))  # the table is written for this range
    assert docs.version_supported(version) is supported


def _moved_mask_serializer(array, ascii=False, compress=True):  # a signature FiftyOne might move to
    return b""


@pytest.mark.parametrize(
    "target, name, value, message",
    [
        ("fiftyone.core.dataset.Dataset", "_sample_collection", None, "Dataset._sample_collection"),
        ("fiftyone.core.utils", "serialize_numpy_array", _moved_mask_serializer, "serialize_numpy_array"),
        ("fiftyone.core.odm.sample", "_generate_rand", lambda: 0.5, "_generate_rand"),
    ],
    ids=["collection gone", "mask serializer moved", "_rand drawn otherwise"],
)
def test_a_moved_internal_is_named(monkeypatch, target, name, value, message):
    monkeypatch.setattr(f"{target}.{name}", value)
    problems = docs.check_internals()
    assert len(problems) == 1 and message in problems[0], problems


@pytest.fixture()
def unknown_fiftyone(monkeypatch):
    """FiftyOne reporting a release the seam was not written for (``available`` re-decides)."""
    monkeypatch.setattr(fo, "__version__", "1.99.0")
    docs.available.cache_clear()
    yield
    docs.available.cache_clear()


def test_the_seam_refuses_a_fiftyone_it_was_not_written_for(unknown_fiftyone):
    assert not docs.available()
    with pytest.raises(RuntimeError, match="not written for fiftyone 1.99.0"):
        docs.insert_samples(None, [])


def test_documents_written_by_the_seam_equal_what_the_public_api_stores(datasets):
    """The guard of the stored layout: a FiftyOne release that changes it fails here."""
    from mtdata.view.dataset import entry_to_sample, iter_split

    config = read_data_yaml(datasets["multitask"])
    entries = [e for e in iter_split(config, "train") if len(e.labels)][:3]
    assert entries
    for entry in entries:
        public = entry_to_sample(entry, config).to_mongo_dict()
        public = {k: v for k, v in public.items() if v is not None}  # Dataset.add_samples drops top-level Nones
        assert _canonical(docs.entry_to_doc(entry, config)) == _canonical(public)


# Differ between two loads of the same data by design: ids, the random sort key, timestamps.
VOLATILE = {"_id", "_rand", "_dataset_id", "created_at", "last_modified_at"}


def _canonical(doc: dict) -> object:
    """ObjectIds numbered by first appearance (the two paths draw different ids), NaN comparable, no volatiles."""
    from bson import ObjectId

    ids: dict = {}

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k not in VOLATILE - {"_id"}}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, ObjectId):
            return ("id", ids.setdefault(value, len(ids)))
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, bytes):
            return bytes(value)
        return value

    return walk(dict(doc))


def _stored(dataset) -> list:
    """Every sample's stored fields, in filepath order, canonical (see :func:`_canonical`)."""
    out = []
    for sample in dataset.sort_by("filepath"):
        doc = {k: v for k, v in sample.to_mongo_dict(include_id=False).items() if k not in VOLATILE}
        out.append(_canonical(doc))
    return out


@pytest.fixture()
def seam_calls(monkeypatch) -> list[int]:
    """How many documents each ``docs.insert_samples`` call wrote."""
    calls = []
    insert = docs.insert_samples

    def counting(dataset, batch):
        calls.append(insert(dataset, batch))
        return calls[-1]

    monkeypatch.setattr(docs, "insert_samples", counting)
    return calls


@pytest.mark.parametrize("task", ["multitask", "segment", "pose"])
def test_both_paths_build_the_same_dataset(fiftyone_db, datasets, seam_calls, task):
    from mtdata.view.dataset import build_dataset

    fast = build_dataset(datasets[task], name=f"test-docs-seam-{task}")
    assert seam_calls == [len(fast)]  # the seam wrote every sample
    public = build_dataset(datasets[task], name=f"test-docs-public-{task}", bulk=False)
    assert seam_calls == [len(fast)]  # and add_samples the other load
    try:
        assert len(fast) == len(public) > 0 and fast.count("ground_truth.detections") > 0
        assert _stored(fast) == _stored(public)
        assert fast.get_field_schema(flat=True).keys() == public.get_field_schema(flat=True).keys()
        assert fast.info == public.info and fast.default_skeleton == public.default_skeleton
        mask = next(d.mask for s in fast for d in s.ground_truth.detections if d.mask is not None) if task != "pose" else None
        assert mask is None or (mask.dtype == bool and mask.ndim == 2)  # masks read back as arrays, not bytes
    finally:
        fast.delete()
        public.delete()


def test_another_fiftyone_loads_through_the_public_api(fiftyone_db, datasets, seam_calls, unknown_fiftyone):
    from mtdata.view.dataset import build_dataset

    dataset = build_dataset(datasets["multitask"], ["val"], name="test-docs-unknown")
    try:
        assert seam_calls == [] and len(dataset) > 0
        assert dataset.count("ground_truth_keypoints.keypoints") > 0
    finally:
        dataset.delete()


# --- the database client closed at shutdown (mtdata.view.app.disconnect_fiftyone) --------------------------------


def test_the_database_internal_the_shutdown_touches_is_in_place():
    assert docs.disconnect_problems() == []


def _disconnect_with_an_argument(force):
    _client.close()  # noqa: F821  (only its source and signature are read)


def _disconnect_that_closes_nothing():
    return None


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "_disconnect is gone"),
        (_disconnect_with_an_argument, "now needs arguments"),
        (_disconnect_that_closes_nothing, "no longer closes the pymongo client"),
    ],
    ids=["gone", "takes an argument", "closes nothing"],
)
def test_a_moved_disconnect_is_named_and_left_alone(monkeypatch, value, message):
    import fiftyone.core.odm.database as database

    monkeypatch.setattr(database, "_disconnect", value)
    problems = docs.disconnect_problems()
    assert len(problems) == 1 and message in problems[0], problems
    assert docs.close_database_client() is False  # and nothing was called: a moved None would have raised


class _Client:
    closed = False

    def close(self):
        self.closed = True


def test_close_database_client_closes_the_client_fiftyone_holds(monkeypatch):
    """FiftyOne's own ``_disconnect`` runs on a stand-in client (the session's real connection stays untouched)."""
    import fiftyone.core.odm.database as database

    client = _Client()
    monkeypatch.setattr(database, "_client", client)
    monkeypatch.setattr(database, "_async_client", None)
    monkeypatch.setattr(database.mongoengine, "disconnect_all", lambda: None)
    assert docs.close_database_client() is True
    assert client.closed and database._client is None


def test_another_fiftyone_keeps_its_database_client(monkeypatch, unknown_fiftyone):
    import fiftyone.core.odm.database as database

    client = _Client()
    monkeypatch.setattr(database, "_client", client)
    monkeypatch.setattr(database.mongoengine, "disconnect_all", lambda: None)
    assert docs.close_database_client() is False
    assert not client.closed and database._client is client
