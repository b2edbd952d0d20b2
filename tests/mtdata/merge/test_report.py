"""``mtdata.merge.report``: the matched pairs' IoU statistics and the report's JSON form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdata.merge.report import MergeReport


def report(ious=(), threshold: float = 0.5, **fields) -> MergeReport:
    return MergeReport(out=Path("o"), kpt=Path("k"), seg=Path("s"), iou_threshold=threshold, ious=np.array(ious, dtype=float), **fields)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.5, 1.0), min_size=1, max_size=40), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_iou_quantiles_are_numpys(ious, qs):
    assert report(ious).iou_quantiles(qs) == pytest.approx(np.quantile(np.array(ious), qs).tolist(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("threshold", "ious", "expected"),
    [
        # the default bins from 0.5; 1.0 falls in the last, closed bin
        (0.5, [0.5, 0.65, 1.0, 1.0], [(0.5, 0.6, 1), (0.6, 0.7, 1), (0.7, 0.8, 0), (0.8, 0.9, 0), (0.9, 0.95, 0), (0.95, 1.0, 2)]),
        # a threshold between the bins starts the first bin
        (0.75, [0.76, 0.97], [(0.75, 0.8, 1), (0.8, 0.9, 0), (0.9, 0.95, 0), (0.95, 1.0, 1)]),
        # threshold 1: one bin [1, 1]
        (1.0, [1.0], [(1.0, 1.0, 1)]),
        # no pairs: every bin empty
        (0.9, [], [(0.9, 0.95, 0), (0.95, 1.0, 0)]),
    ],
    ids=["default bins", "threshold between bins", "threshold one", "no pairs"],
)
def test_iou_histogram_starts_at_the_threshold(threshold, ious, expected):
    assert report(ious, threshold).iou_histogram() == expected


def test_to_dict_without_pairs_has_no_iou_statistics():
    data = report(class_map={"person": ["man", "woman"]}).to_dict()
    assert data["matched"] == 0
    assert data["iou"] | {"histogram": None} == {"min": None, "p05": None, "median": None, "mean": None, "histogram": None}
    assert data["seg_unmatched"] == {"man": 0, "woman": 0} and data["unmatched_file"] is None


def test_to_dict_rounds_the_iou_statistics():
    data = report([0.5, 0.123456789 + 0.5, 1.0]).to_dict()
    assert data["matched"] == 3
    assert (data["iou"]["min"], data["iou"]["median"], data["iou"]["mean"]) == (0.5, 0.6235, 0.7078)
