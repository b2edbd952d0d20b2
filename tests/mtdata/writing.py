"""The writing commands of mtdata (convert, merge, check --fix, export, synth) on inputs made for them,
for the interruption and fault tests: their command lines, and digests of what they read and write."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

INPUT_NAMES = ("big", "pose", "seg", "synth", "ds")


@dataclass(frozen=True)
class Command:
    """A writing command: ``mtdata <arguments> OUT [--overwrite]``."""

    name: str
    arguments: tuple[str, ...]
    overwrite: bool  # takes --overwrite (check --fix does not: its OUT must be new)
    out_name: str = "out"  # export writes a file

    def argv(self, out: Path, overwrite: bool = False) -> list[str]:
        return [*self.arguments, os.fsdecode(out), *(["--overwrite"] if overwrite else [])]  # check's OUT is --fix's value


def make_inputs(root: Path, *, coco_images: int, synth_images: int) -> dict[str, Path]:
    """A label-only COCO file (``big``), its pose and segment datasets, a synthetic COCO with images (``synth``)
    and that converted with copied images (``ds``)."""
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import SynthSpec, make_coco, write_synth

    coco, _ = make_coco(SynthSpec(images=coco_images, size=320, objects=(2, 4)), seed=1, draw=False)
    (root / "big").mkdir()
    big = root / "big" / "train.json"
    big.write_text(json.dumps(coco))
    convert_coco([big], root / "pose", task="pose")
    convert_coco([big], root / "seg", task="segment")
    write_synth(root / "synth", images=synth_images, size=64, seed=2)
    annotations = root / "synth" / "annotations"
    convert_coco([annotations / "instances_train.json", annotations / "instances_val.json"], root / "ds",
                 images_dir=root / "synth" / "images", copy=True)
    return {"root": root, "big": big, "pose": root / "pose", "seg": root / "seg", "synth": root / "synth", "ds": root / "ds"}


def commands(paths: dict[str, Path], *, workers: int = 2, synth_images: int = 8) -> dict[str, Command]:
    synth = paths["synth"] / "annotations"
    listed = [
        Command("convert", ("convert", str(paths["big"])), True),
        Command("convert --images", ("convert", str(synth / "instances_train.json"), str(synth / "instances_val.json"),
                                     "--images", str(paths["synth"] / "images"), "--copy"), True),
        Command("merge", ("merge", str(paths["pose"]), str(paths["seg"]), "--workers", str(workers)), True),
        Command("check --fix", ("check", str(paths["ds"] / "data.yaml"), "--workers", str(workers), "--fix"), False),
        Command("export", ("export", str(paths["ds"] / "data.yaml"), "--split", "train"), True, "out.json"),
        Command("synth", ("synth", "--images", str(synth_images), "--size", "64"), True),
    ]
    return {c.name: c for c in listed}


def tree_digest(path: Path) -> str | None:
    """A digest of a file or folder tree: names, kinds, bytes and link targets; None when absent."""
    if not os.path.lexists(path):
        return None
    h = hashlib.sha256()
    if os.path.isfile(path):
        h.update(Path(path).read_bytes())
        return h.hexdigest()
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            full = os.path.join(folder, name)
            h.update(os.fsencode(os.path.relpath(full, path)) + b"\0")
            if os.path.islink(full):
                h.update(b"L" + os.fsencode(os.readlink(full)))
            else:
                with open(full, "rb") as f:
                    h.update(b"F" + f.read())
    return h.hexdigest()


def inputs_digest(paths: dict[str, Path]) -> dict[str, str | None]:
    return {name: tree_digest(paths[name]) for name in INPUT_NAMES}


def temp_beside(out: Path) -> list[str]:
    """Names beside OUT that a run writing OUT made (``.OUT.tmp-*``, ``.OUT.old-*``)."""
    name = os.fsdecode(out.name)
    return sorted(n for n in os.listdir(out.parent) if n.startswith(f".{name}."))
