"""``mtdata.merge.classes``: which KPT class's poses may take which SEG class's masks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtdata.errors import InputError
from mtdata.formats.yolo.data_yaml import parse_data_dict
from mtdata.merge.classes import class_groups


def config(names: list[str], task: str):
    data = {"path": ".", "train": "images/train", "names": names}
    if task == "pose":
        data["kpt_shape"] = [1, 3]
    return parse_data_dict(data, Path("/nowhere") / task / "data.yaml", task=task)


# (id, KPT names, SEG names, --map entries, the groups or the expected error message)
CASES = [
    ("equal names pair", ["person", "robot"], ["car", "person"], None, {0: [1]}),
    ("a map replaces the equal name", ["person"], ["person", "man"], ["person=man"], {0: [1]}),
    ("ids work as names", ["human"], ["man", "woman"], ["0=1"], {0: [1]}),
    ("several entries give several SEG classes, sorted", ["human"], ["man", "woman", "dog"], ["human=woman", "human=man", "0=woman"],
     {0: [0, 1]}),
    ("map without =", ["person"], ["person"], ["person"], "--map expects KPTCLASS=SEGCLASS, found 'person'"),
    ("map with an empty side", ["person"], ["person"], ["person= "], "--map expects KPTCLASS=SEGCLASS"),
    ("unknown KPT class", ["person"], ["person"], ["ghost=person"], "--map names KPT class 'ghost'"),
    ("unknown SEG class", ["person"], ["person"], ["person=7"], "--map names SEG class '7'"),
    ("a SEG class taken twice", ["person", "robot"], ["person"], ["robot=person"],
     "SEG class 'person' would take poses from two KPT classes, 'person' and 'robot'"),
    ("nothing in common", ["person"], ["car"], None, "no KPT class has the name of a SEG class"),
]


@pytest.mark.parametrize(("name", "kpt_names", "seg_names", "mapping", "expected"), CASES, ids=[c[0] for c in CASES])
def test_class_groups(name, kpt_names, seg_names, mapping, expected):
    kpt, seg = config(kpt_names, "pose"), config(seg_names, "segment")
    if isinstance(expected, str):
        with pytest.raises(InputError, match=re.escape(expected)):
            class_groups(kpt, seg, mapping)
    else:
        assert class_groups(kpt, seg, mapping) == expected
