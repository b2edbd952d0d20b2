"""Structural fuzzing of the Labelme and Label Studio readers through ``convert``: valid files with values
swapped for what strangers write, keys dropped and entries repeated.

Seeded and bounded in time (``MTDATA_FUZZ_SECONDS``, default 8 per format): the same cases in the same order
on every run, as many as fit. A case keeps its promises when convert either writes a dataset whose label files
all parse, or raises a one-line MtdataError and leaves no OUT.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtdata.errors import MtdataError
from tests.mtdata.fuzzing import FUZZ_SCALE, report, run_cases
from tests.mtdata.tool_files import encode_brush_rle, random_coco, write_labelme, write_labelstudio

SECONDS = float(os.environ.get("MTDATA_FUZZ_SECONDS", "8"))
HOSTILE = [None, "", "x", "a/b/", -1, 0, 1e308, -1e308, float("nan"), [], {}, [[]], [[1]], [[1, 2, 3]], [[1, 2]] * 2,
           True, 2 ** 70, 10 ** 400, "0.5", {"a": 1}, [1, 2], "/data/upload/../../etc/passwd", "../" * 5 + "x.jpg", "\x00", "line",
           "mask", "point", "circle", "rectangle", "polygonlabels", "brushlabels", "keypointlabels", 1 << 20, 101, -0.0]


def _paths(node, prefix=()) -> list[tuple]:
    """Every place in a JSON document, as the keys and indices that lead there."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:8]):
            found += _paths(value, prefix + (i,))
    return found


def mutate(data, rng):
    """``data`` with one to three values replaced, keys dropped or list entries repeated."""
    for _ in range(int(rng.integers(1, 4))):
        places = [p for p in _paths(data) if p]
        if not places:
            return rng.choice(HOSTILE[:8]) if rng.random() < 0.5 else data
        place = places[int(rng.integers(0, len(places)))]
        parent = data
        for key in place[:-1]:
            parent = parent[key]
        kind = rng.random()
        if kind < 0.6:
            parent[place[-1]] = HOSTILE[int(rng.integers(0, len(HOSTILE)))]
        elif kind < 0.8:
            del parent[place[-1]]
        elif isinstance(parent, list):
            parent.insert(place[-1], json.loads(json.dumps(parent[place[-1]])))
        else:
            parent[place[-1]] = [parent[place[-1]]] * int(rng.integers(2, 4))
    return data


def make_case(fmt: str, seed: int, root: Path) -> tuple[list[Path], Path]:
    """The sources of one case (written under ``root``) and its OUT."""
    rng = np.random.default_rng(seed)
    coco = random_coco(seed, images=int(rng.integers(1, 4)))
    shutil.rmtree(root, ignore_errors=True)  # a batch that failed runs again case by case
    root.mkdir(parents=True)
    if fmt == "labelme":
        files = write_labelme(coco, root / "train", group_ids=bool(rng.random() < 0.5), class_prefix=bool(rng.random() < 0.3))
        for path in files:
            if rng.random() < 0.6:
                path.write_text(json.dumps(mutate(json.loads(path.read_text()), rng)))
        return [root / "train"], root / "out"
    path = write_labelstudio(coco, root / "train.json", variant="min" if rng.random() < 0.4 else "json")
    data = json.loads(path.read_text())
    if data and rng.random() < 0.3 and "annotations" in data[0]:  # a brush mask, for the RLE decoder to meet
        rgba = np.zeros((100, 200, 4), np.uint8)
        rgba[20:50, 10:60, 3] = 255
        data[0]["annotations"][0]["result"].append({"type": "brushlabels", "original_width": 200, "original_height": 100,
                                                    "value": {"format": "rle", "rle": encode_brush_rle(rgba.reshape(-1)), "brushlabels": ["ball"]}})
    path.write_text(json.dumps(mutate(data, rng)))
    return [path], root / "out"


def check(fmt: str, seed: int, root: Path) -> list[str]:
    from mtdata.convert.tools import convert_annotations
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mtdata.formats.yolo.rows import read_label_file

    sources, out = make_case(fmt, seed, root / f"{fmt}{seed}")
    try:
        convert_annotations(sources, out, source_format=fmt if seed % 2 else None)
    except MtdataError as e:
        text = str(e)
        problems = [f"error over one line: {text[:200]!r}"] if "\n" in text or len(text) > 600 else []
        return problems + (["OUT left after an error"] if out.exists() else [])
    layout = read_data_yaml(out / "data.yaml").layout()
    return [f"{p}: {read_label_file(p, layout).problems[:1]}" for p in sorted((out / "labels").rglob("*.txt"))
            if read_label_file(p, layout).problems]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cases run in forked children with an address-space limit")
@pytest.mark.parametrize("fmt", ["labelme", "labelstudio"])
def test_convert_keeps_its_promises_on_fuzzed_tool_files(tmp_path, fmt):
    deadline = time.monotonic() + SECONDS * FUZZ_SCALE
    failures, ran, seed = [], 0, 0
    while time.monotonic() < deadline:
        seeds = list(range(seed, seed + 10))
        failures += run_cases(seeds, lambda s: check(fmt, s, tmp_path), (), batch=10, timeout=30.0)
        ran, seed = ran + len(seeds), seed + 10
    report(f"convert {fmt}", failures, ran)
    assert ran >= 10
    assert failures == [], "\n".join(failures[:5])


def test_the_promises_can_fail(tmp_path, monkeypatch):
    """A reader that raises anything but MtdataError, or leaves OUT behind, is caught."""
    import mtdata.formats.labelme as labelme

    monkeypatch.setattr(labelme, "_shape", lambda *a: 1 / 0)
    assert any("ZeroDivisionError" in f for f in run_cases([3], lambda s: check("labelme", s, tmp_path), ()))
