"""benchmarks/labelme.py runs end to end on a small set and prints its ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_labelme_benchmark_runs(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "labelme.py"), "--images", "40", "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mtdata labelme / mtdata coco: time" in done.stdout
    assert len(list((tmp_path / "w" / "out_labelme" / "labels" / "train").glob("*.txt"))) == 40
