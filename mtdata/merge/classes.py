"""Which classes pair in a merge: :func:`class_groups` maps each KPT class to the SEG classes whose
masks its poses may take, by equal names or ``--map`` entries."""

from __future__ import annotations

from pathlib import Path

from mtdata.errors import InputError
from mtdata.formats.yolo.data_yaml import DatasetConfig


def _class_id(token: str, names: dict[int, str], side: str, file: Path | None) -> int:
    by_name = {v: k for k, v in names.items()}
    if token in by_name:
        return by_name[token]
    if token.isdigit() and int(token) in names:
        return int(token)
    raise InputError(f"--map names {side} class {token!r}, which is not among its classes {list(names.values())}", file=file)


def class_groups(kpt: DatasetConfig, seg: DatasetConfig, mapping: list[str] | None = None) -> dict[int, list[int]]:
    """KPT class id -> the SEG class ids whose masks its poses may pair with.

    Classes pair by equal names; each ``KPTCLASS=SEGCLASS`` entry (names or ids) replaces what
    that KPT class maps to (several entries for one KPT class give it several SEG classes).
    A SEG class takes poses from one KPT class at most.
    """
    groups: dict[int, list[int]] = {}
    by_seg_name = {v: k for k, v in seg.names.items()}
    for k, name in kpt.names.items():
        if name in by_seg_name:
            groups[k] = [by_seg_name[name]]
    overridden: set[int] = set()
    for entry in mapping or []:
        left, sep, right = entry.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise InputError(f"--map expects KPTCLASS=SEGCLASS, found {entry!r}")
        k = _class_id(left.strip(), kpt.names, "KPT", kpt.file)
        s = _class_id(right.strip(), seg.names, "SEG", seg.file)
        if k not in overridden:
            groups[k] = []
            overridden.add(k)
        if s not in groups[k]:
            groups[k].append(s)
    groups = {k: sorted(v) for k, v in sorted(groups.items()) if v}
    owner: dict[int, int] = {}
    for k, targets in groups.items():
        for s in targets:
            if s in owner:
                raise InputError(
                    f"SEG class {seg.names[s]!r} would take poses from two KPT classes, "
                    f"{kpt.names[owner[s]]!r} and {kpt.names[k]!r}: pass --map to choose one"
                )
            owner[s] = k
    if not groups:
        raise InputError(
            f"no KPT class has the name of a SEG class (KPT: {list(kpt.names.values())}, SEG: {list(seg.names.values())}): "
            "pass --map KPTCLASS=SEGCLASS"
        )
    return groups
