"""Fuzz: mtdata check, check --fix and export on datasets strangers send.

Each case is a small converted dataset with a few hostile changes: label files with odd rows,
label files that are FIFOs, folders or links to ``/dev/zero`` or to a secret outside the
dataset, images that are decompression bombs, junk or links to the secret, stray files that
link outside, and data.yaml edits (a huge kpt_shape, an alias bomb, a split list naming
files outside). In a bounded child (tests/mtdata/fuzzing.py) check, fix and export must each
return or raise MtdataError in one line; the inputs must be unchanged, nothing may appear
outside OUT, OUT may hold no byte of the secret and no link but to an image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtdata.check.dataset import check_dataset
from mtdata.check.fix import fix_dataset
from mtdata.errors import MtdataError
from mtdata.export import export_coco
from mtdata.formats.yolo.data_yaml import IMAGE_SUFFIXES, read_data_yaml
from tests.mtdata.factories import png_bomb
from tests.mtdata.fuzzing import FUZZ_SCALE, MESSAGE_LIMIT, hostile_label_text, report, run_cases

SECRET = b"SECRET-MARK-7f3a"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from mtdata.convert.dataset import convert_coco
    from mtdata.synth import write_synth

    root = tmp_path_factory.mktemp("fuzz-base")
    write_synth(root / "coco", images=4, size=64, seed=4)
    anns = [root / "coco" / "annotations" / f"instances_{s}.json" for s in ("train", "val")]
    convert_coco(anns, root / "ds", images_dir=root / "coco" / "images", copy=True)
    data = yaml.safe_load((root / "ds" / "data.yaml").read_text())
    data["path"] = "."
    (root / "ds" / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "ds"


def _secret_dir(case_dir: Path) -> Path:
    """Files outside the dataset that nothing may copy: text, rows, an image, a folder of them."""
    outside = case_dir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET + b"\n")
    (outside / "rows.txt").write_bytes(b"1 0.1 0.1 0.3 0.1 0.3 0.3\n1 0.2 0.2 0.3 0.2 0.3 0.3 " + SECRET + b"\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "secret.txt").write_bytes(SECRET)
    return outside


def _mutate(rng, ds: Path, outside: Path, layout) -> list[str]:
    """A few hostile changes; returns what was done (for the failure messages)."""
    labels = sorted((ds / "labels").rglob("*.txt"))
    images = sorted(p for p in (ds / "images").rglob("*") if p.is_file())
    done = []
    for _ in range(int(rng.integers(1, 5))):
        what = int(rng.integers(0, 15))
        label, image = labels[int(rng.integers(0, len(labels)))], images[int(rng.integers(0, len(images)))]
        if what <= 2:
            if label.is_file() and not label.is_symlink():
                label.write_text(hostile_label_text(rng, layout), encoding="utf-8")
                done.append(f"odd rows in {label.name}")
            continue
        if what == 3:
            label.unlink(missing_ok=True) if not label.is_dir() else None
            target = [outside / "rows.txt", outside / "secret.txt", Path("/dev/zero")][int(rng.integers(0, 3))]
            if not label.exists():
                label.symlink_to(target)
                done.append(f"{label.name} -> {target}")
        elif what == 4 and label.is_file():
            label.unlink()
            os.mkfifo(label) if rng.random() < 0.5 else label.mkdir()
            done.append(f"{label.name} is a FIFO or a folder")
        elif what == 5 and image.is_file():
            image.write_bytes(png_bomb())
            done.append(f"{image.name} is a 20,000 x 20,000 PNG")
        elif what == 6 and image.is_file():
            data = image.read_bytes()
            image.write_bytes([b"", data[: len(data) // 3], bytes(rng.integers(0, 256, 300, dtype=np.uint8))][int(rng.integers(0, 3))])
            done.append(f"{image.name} is junk")
        elif what == 7 and image.is_file():
            image.unlink()
            image.symlink_to(outside / "secret.txt")
            done.append(f"{image.name} -> the secret")
        elif what == 8:
            (ds / "notes.txt").unlink(missing_ok=True)
            (ds / "notes.txt").symlink_to(outside / "secret.txt")
            (ds / "labels" / "train" / "zz_orphan.txt").unlink(missing_ok=True)
            (ds / "labels" / "train" / "zz_orphan.txt").symlink_to(outside / "rows.txt")
            done.append("notes.txt and an orphan label link outside")
        elif what == 9 and not (ds / "labels" / "linked").exists():
            (ds / "labels" / "linked").symlink_to(outside / "folder")
            (ds / "images" / "linked").mkdir(exist_ok=True)
            done.append("a label folder links outside")
        elif what == 10:
            _edit_yaml(ds, lambda d: d.update(kpt_shape=[int(rng.choice([10**9, 2**40, 5000])), 3]))
            done.append("a huge kpt_shape")
        elif what == 11:
            text = (ds / "data.yaml").read_text()
            bomb = "b0: &b0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
                f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 9))
            (ds / "data.yaml").write_text(bomb + text + "notes: *b8\n")
            done.append("an alias bomb")
        elif what == 12:
            lines = ["images/train/" + images[0].name, "../outside/secret.txt", str(outside / "secret.txt"), "/dev/zero",
                     "images/../../outside/folder/secret.txt", "x" * 5000]
            (ds / "train.txt").write_text("\n".join(lines) + "\n")
            _edit_yaml(ds, lambda d: d.update(train="train.txt"))
            done.append("a split list naming files outside")
        elif what == 13:
            _edit_yaml(ds, lambda d: d.update(names={i: f"c{i}" for i in range(int(rng.integers(3, 3000)))}))
            done.append("many classes")
        elif what == 14:
            (ds / "README.md").write_text("notes\n")
            (ds / "labels" / "train.cache").write_bytes(SECRET)
            done.append("stray files")
    return done


def _edit_yaml(ds: Path, change) -> None:
    try:
        data = yaml.safe_load((ds / "data.yaml").read_text())
    except yaml.YAMLError:
        return
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("b")}  # an alias bomb expanded by safe_load: drop it
        change(data)
        (ds / "data.yaml").write_text(yaml.safe_dump(data))


def _snapshot(folder: Path, skip: tuple[Path, ...]) -> dict[str, str]:
    """Every entry below ``folder`` (links not followed, FIFOs not opened): regular files by digest."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(dirpath) / name
            if any(p == s or s in p.parents for s in skip):
                continue
            if p.is_symlink():
                out[str(p)] = "link " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = "other"
    return out


def _check_case(case) -> list[str]:
    base, case_dir, seed = case
    rng = np.random.default_rng(seed)
    if case_dir.exists():  # a batch that failed runs again case by case
        shutil.rmtree(case_dir)
    case_dir.mkdir()
    ds = case_dir / "ds"
    shutil.copytree(base, ds, symlinks=True)
    outside = _secret_dir(case_dir)
    layout = read_data_yaml(ds / "data.yaml").layout()
    done = _mutate(rng, ds, outside, layout)
    out, out_json = case_dir / "fixed", case_dir / "out.json"
    before = _snapshot(case_dir, (out, out_json))
    problems = []

    def one_line(name, call):
        try:
            return call()
        except MtdataError as e:
            if "\n" in str(e) or len(str(e)) > MESSAGE_LIMIT:
                problems.append(f"{name}: an error of {len(str(e))} characters or lines")
        return None

    result = one_line("check", lambda: check_dataset(ds / "data.yaml", workers=1))
    for f in (result.findings if result else []):
        if "\n" in f.message or len(f.message) > MESSAGE_LIMIT:
            problems.append(f"check: finding {f.rule} of {len(f.message)} characters")
    one_line("fix", lambda: fix_dataset(ds / "data.yaml", out))
    one_line("export", lambda: export_coco(ds / "data.yaml", out_json, split="val"))
    if _snapshot(case_dir, (out, out_json)) != before:
        problems.append("an input changed, or a file appeared outside OUT")
    for p in out.rglob("*") if out.is_dir() else []:
        if p.is_symlink():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append(f"OUT holds a link that is not an image: {p.relative_to(out)}")
        elif p.is_file() and SECRET in p.read_bytes():
            problems.append(f"OUT holds the secret: {p.relative_to(out)}")
    if out_json.is_file() and SECRET in out_json.read_bytes():
        problems.append("the COCO file holds the secret")
    return [f"{p} (after: {'; '.join(done)})" for p in problems]


def test_fuzz_check_fix_and_export(base, tmp_path):
    cases = [(base, tmp_path / f"case{i}", 1000 + i) for i in range(12 * FUZZ_SCALE)]
    failures = run_cases(cases, _check_case, batch=4, timeout=30, memory=1 << 30)
    report("check, fix, export", failures, len(cases))
    assert not failures
