"""Fuzz: data.yaml as strangers write it -> a config, or one short line; never a traceback, a hang or gigabytes.

Seeded and bounded (tests/mtdata/fuzzing.py): each case writes a data.yaml built from random
pieces (every known key with values of every type, huge numbers, aliases that repeat
aliases, self-reference, deep nesting, tags, binary junk) and reads it as every command does
(read_data_yaml) and as mtdata check does (check_data_yaml): both must return, or raise
DatasetConfigError in one line; check's findings are short lines too.
"""

from __future__ import annotations

import numpy as np

from mtdata.check.data_yaml import check_data_yaml
from mtdata.errors import DatasetConfigError
from mtdata.formats.yolo.data_yaml import read_data_yaml
from tests.mtdata.fuzzing import FUZZ_SCALE, MESSAGE_LIMIT, report, run_cases

KEYS = ["path", "train", "val", "test", "names", "nc", "task", "kpt_shape", "kpt_names", "flip_idx", "skeleton",
        "kpt_sigmas", "coco_ids", "extra"]
SCALARS = ["0", "1", "3", "-1", "17", "1000000000", "18446744073709551617", "1e308", ".nan", ".inf", "true", "null", "~",
           "''", "person", "multitask", "pose", "segment", "images/train", "../../../etc", "/etc/passwd", "\"\\u0000\"",
           "!!binary aGVsbG8=", "!!python/object:os.system ls", "!!float 3", "2001-12-14", "0o17", "0x1F", "'a' * 3"]


def _value(rng, depth: int = 0) -> str:
    """A YAML flow value: a scalar, a list or a mapping, nested a little."""
    kind = rng.random()
    if depth > 2 or kind < 0.5:
        return str(rng.choice(SCALARS))
    if kind < 0.8:
        return "[" + ", ".join(_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))) + "]"
    return "{" + ", ".join(f"{rng.choice(SCALARS)}: {_value(rng, depth + 1)}" for _ in range(int(rng.integers(0, 4)))) + "}"


def _plausible(rng) -> dict[str, str]:
    """Mostly a valid multitask data.yaml, so that the deeper keys are reached."""
    k = int(rng.choice([1, 3, 5, 17]))
    return {
        "path": ".", "train": "images/train", "val": "images/val", "names": "{0: person, 1: ball}", "task": "multitask",
        "kpt_shape": f"[{k}, 3]", "kpt_names": "{0: [" + ", ".join(f"p{i}" for i in range(k)) + "]}",
        "flip_idx": "[" + ", ".join(map(str, range(k))) + "]", "skeleton": "[[0, " + str(k - 1) + "]]",
    }


def _bomb(rng) -> str:
    width, levels = int(rng.integers(2, 12)), int(rng.integers(2, 10))
    lines = [f"b0: &b0 [{', '.join(['x'] * width)}]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n", f"*b{levels - 1}"


def hostile_yaml(rng) -> str:
    data = _plausible(rng)
    for _ in range(int(rng.integers(0, 4))):  # some keys get any value, some go
        key = str(rng.choice(KEYS))
        if rng.random() < 0.2:
            data.pop(key, None)
        else:
            data[key] = _value(rng)
    head = ""
    trick = rng.random()
    if trick < 0.15:
        head, alias = _bomb(rng)
        data[str(rng.choice(KEYS))] = alias
    elif trick < 0.2:
        data[str(rng.choice(KEYS))] = "&self [a, *self]"
    elif trick < 0.25:
        depth = int(rng.integers(50, 3000))
        data[str(rng.choice(KEYS))] = "[" * depth + "]" * depth
    elif trick < 0.3:
        data["names"] = "[" + ", ".join(f"c{i}" for i in range(int(rng.integers(1000, 120_000)))) + "]"
    elif trick < 0.33:
        data["kpt_shape"] = f"[{int(rng.choice([10**9, 2**70, 1025, 0, -3]))}, 3]"
    text = head + "".join(f"{key}: {value}\n" for key, value in data.items())
    damage = rng.random()
    if damage < 0.05:
        cut = int(rng.integers(0, len(text)))
        text = text[:cut]
    elif damage < 0.08:
        text = "\t" + text
    elif damage < 0.1:
        text = text.replace(": ", ":", 1)
    return text


def test_fuzz_data_yaml(tmp_path):
    rng = np.random.default_rng(99)
    cases = [hostile_yaml(rng) for _ in range(100 * FUZZ_SCALE)]
    junk = [bytes(rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8)) for _ in range(10 * FUZZ_SCALE)]
    cases += [b.decode("latin-1") for b in junk[: len(junk) // 2]] + [b"\xff\xfe" + b for b in junk[len(junk) // 2:]]
    path = tmp_path / "data.yaml"

    def check(case):
        path.write_bytes(case if isinstance(case, bytes) else case.encode("utf-8"))
        out = []
        for read in (read_data_yaml, check_data_yaml):
            try:
                result = read(path)
            except DatasetConfigError as e:
                if "\n" in str(e) or len(str(e)) > MESSAGE_LIMIT:
                    out.append(f"{read.__name__}: a message of {len(str(e))} characters")
                continue
            for f in getattr(result, "findings", []):
                if "\n" in f.message or len(f.message) > MESSAGE_LIMIT:
                    out.append(f"{read.__name__}: finding {f.rule} of {len(f.message)} characters")
        return out

    failures = run_cases(cases, check, batch=10, timeout=15, memory=1 << 30)
    report("data.yaml", failures, len(cases))
    assert not failures
