"""Structural fuzzing of the COCO reader and ``mtdata convert`` (the generator and promises: tests/mtdata/coco_fuzz.py).

Seeded and bounded in time: the same cases in the same order on every run, as many as fit in
the budget (the whole run of 2,000 cases: ``python -m tests.mtdata.coco_fuzz --cases 2000``).
``MTDATA_FUZZ_SECONDS`` and ``MTDATA_FUZZ_FIRST`` widen or move the window.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.mtdata import coco_fuzz

SECONDS = float(os.environ.get("MTDATA_FUZZ_SECONDS", "8"))
FIRST = int(os.environ.get("MTDATA_FUZZ_FIRST", "0"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cases run in forked children with an address-space limit")
def test_convert_keeps_its_promises_on_fuzzed_coco(tmp_path):
    coco_fuzz.preload()
    ran, failures = coco_fuzz.fuzz(range(FIRST, FIRST + 100_000), tmp_path, deadline=time.monotonic() + SECONDS)
    assert ran >= 10, f"only {ran} cases ran in {SECONDS} s"
    assert failures == {}, "\n".join(f"seed {seed}: {problems}" for seed, problems in list(failures.items())[:5])


def test_the_promises_can_fail(tmp_path, monkeypatch):
    """A converter that takes an image from outside --images, or raises, is caught by the checks."""
    import json

    import mtdata.convert.files as files

    case = coco_fuzz.make_case(3, tmp_path / "case", mutations=False)
    case.args[2:] = ["--images", str(case.images), "--copy", "--report", str(case.root / "report.json")]
    assert json.loads(case.annotation_file.read_text())["images"]
    monkeypatch.setattr(files.ImageFinder, "find", lambda self, name, split: (case.root / "secret_direct.jpg", None))
    problems = coco_fuzz.check_case(case)
    assert any(p.startswith("read outside --images") for p in problems), problems
    assert any(p.startswith("secret copied into OUT") for p in problems), problems

    case = coco_fuzz.make_case(3, tmp_path / "case2", mutations=False)
    case.args[2:] = ["--images", str(case.images)]
    monkeypatch.setattr(files.ImageFinder, "find", lambda self, name, split: 1 / 0)
    assert any(p.startswith("traceback: ZeroDivisionError") for p in coco_fuzz.check_case(case))
