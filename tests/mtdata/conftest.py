"""Fixtures shared by the mtdata tests (factories live in tests/mtdata/factories.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic COCO dataset (annotations/ + images/), made once per session; treat as read-only."""
    from mtdata.synth import write_synth

    out = tmp_path_factory.mktemp("synth")
    write_synth(out, images=12, size=96, seed=3)
    return out
