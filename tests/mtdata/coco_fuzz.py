"""Structural fuzzing of COCO JSON for ``mtdata convert``: a seeded generator and the promises each case is held to.

A case is a small valid COCO file (polygons of one to three parts, RLE masks, keypoints, crowd
objects) with one to three mutations: a value of another type at a random place, a key
removed, an entry repeated, a huge or tiny number, deep nesting, an odd or hostile
``file_name`` (``../``, absolute, newline, NUL, 300 bytes, a symlink out of the images
folder), corrupt RLE counts, a bad skeleton or category name, numbers spelled as strings,
or corrupt JSON text. Every case is converted with random options through the CLI, in a
forked child bounded in time and memory, and must:

- exit 0 with a dataset whose data.yaml and label files read back without a problem, or
  exit 2 with one line ``error: ...``; never a traceback, a crash or a hang;
- create nothing outside OUT (and the --report file), leave the inputs byte-identical;
- open nothing outside the annotation file, --images and OUT, place no image that
  resolves outside --images (a symlink inside it may, with ``--follow-links``);
- give the same output and report when run again (the second run in two processes).

``python -m tests.mtdata.coco_fuzz --cases 2000`` prints the failures by class.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import resource
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SECRET = b"SECRET-BYTES-OUTSIDE-IMAGES"
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_hand"]


# --- a valid COCO file --------------------------------------------------------------------


def _polygon(rng: np.random.Generator, w: int, h: int) -> list[float]:
    """A star-shaped (simple) polygon of 3-7 points inside a w x h image."""
    n = int(rng.integers(3, 8))
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.05, 0.3, n) * min(w, h)
    xy = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return [round(float(v), 2) for v in xy.reshape(-1)]


def _rle(rng: np.random.Generator, w: int, h: int) -> dict:
    """A rectangle mask, as compressed (string) or uncompressed (list) RLE."""
    from pycocotools import mask as mask_utils

    mask = np.zeros((h, w), dtype=np.uint8, order="F")
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    mask[y0 : y0 + int(rng.integers(2, h // 2 + 2)), x0 : x0 + int(rng.integers(2, w // 2 + 2))] = 1
    if rng.random() < 0.5:
        rle = mask_utils.encode(mask)
        return {"size": [h, w], "counts": rle["counts"].decode()}
    flat = mask.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [h, w], "counts": counts}


def valid_coco(rng: np.random.Generator) -> dict:
    k = int(rng.integers(1, 6))
    names = KEYPOINT_NAMES[:k]
    skeleton = [[int(a), int(b)] for a, b in rng.integers(1, k + 1, size=(int(rng.integers(0, 4)), 2)) if a != b]
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names, "skeleton": skeleton},
                  {"id": 3, "name": "ball", "supercategory": "thing"}]
    if rng.random() < 0.3:
        categories.append({"id": 9, "name": "cup"})
    images, annotations = [], []
    image_ids = rng.choice(np.arange(1, 1000), size=int(rng.integers(1, 5)), replace=False).tolist()
    for i, image_id in enumerate(image_ids):
        w, h = int(rng.integers(16, 120)), int(rng.integers(16, 120))
        folder = "sub/" if rng.random() < 0.2 else ""
        images.append({"id": image_id, "file_name": f"{folder}im{i}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 4))):
            category = categories[int(rng.integers(0, len(categories)))]
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": category["id"], "iscrowd": 0, "area": 1.0}
            if rng.random() < 0.15:
                ann["segmentation"] = _rle(rng, w, h)
                ann["iscrowd"] = int(rng.random() < 0.5)
            elif rng.random() < 0.1:
                ann["segmentation"] = []
            else:
                ann["segmentation"] = [_polygon(rng, w, h) for _ in range(int(rng.integers(1, 4)))]
            flat = [v for part in ann["segmentation"] for v in part] if isinstance(ann["segmentation"], list) else []
            if flat:
                xs, ys = flat[0::2], flat[1::2]
                ann["bbox"] = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
            else:
                ann["bbox"] = [1.0, 1.0, w / 2, h / 2]
            if category.get("keypoints") and rng.random() < 0.8:
                kpts = []
                for _ in range(k):
                    v = int(rng.choice([0, 1, 2]))
                    kpts += [0, 0, 0] if v == 0 else [round(float(rng.uniform(0, w)), 2), round(float(rng.uniform(0, h)), 2), v]
                ann["keypoints"], ann["num_keypoints"] = kpts, sum(1 for v in kpts[2::3] if v)
            annotations.append(ann)
    return {"info": {"description": "fuzz"}, "images": images, "annotations": annotations, "categories": categories}


# --- mutations ----------------------------------------------------------------------------


def odd_values(rng: np.random.Generator) -> list:
    deep = []
    for _ in range(int(rng.integers(2, 40))):
        deep = [deep]
    return [
        None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**63, 2**64, 2**70, -(2**70), 10**400, 1e308, -1e308, 5e-324,
        "", "1", "12.5", "abc", "\n", "a\x00b", "١٢", "0.1_5", [], [[]], [None], [1], [1, 2, 3], ["1", "2", "3", "4"],
        [True, False, True, False], {}, {"a": 1}, {"counts": "", "size": [1, 1]}, deep, "x" * 1000,
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [[1, 2, 3, 4, 5, 6]], [[1, 2], [3, 4]], [float(2**70)] * 6,
    ]


HOSTILE_NAMES = [
    "../secret_direct.jpg", "../../secret_direct.jpg", "sub/../../secret_direct.jpg", "{case}/secret_direct.jpg",
    "/etc/passwd", "/proc/self/environ", "link.jpg", "dirlink/inner.jpg", "loop/loop/im0.jpg", "a\nb.jpg", "evil\n../../pwned.jpg",
    "a\x00b.jpg", "x" * 300 + ".jpg", "é" * 130 + ".jpg", "", ".", "..", "sub/..", "sub/", "...jpg", ".hidden.jpg",
    "a b.jpg", "a\\b.jpg", "a\rb.jpg", "a\tb.jpg", "-rf.jpg", "im0.jpg", "IM0.JPG", "sub/im0.jpg", "\u202egpj.exe",
    "a" * 251 + ".jpg", "b" * 252 + ".jpg", "a/" * 60 + "deep.jpg",
]


def _nodes(value, path=()):
    """Every (path, value) of a JSON tree, the root first."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nodes(item, (*path, i))


def _set(tree, path, value):
    for step in path[:-1]:
        tree = tree[step]
    tree[path[-1]] = value


def _pick(rng, items):
    return items[int(rng.integers(0, len(items)))]


def _interesting(paths: list, keys: tuple) -> list:
    chosen = [p for p in paths if p and p[-1] in keys]
    return chosen or paths


def mutate(coco: dict, rng: np.random.Generator, case: Path) -> tuple[dict, bytes | None]:
    """One mutation of ``coco`` in place; returns (coco, raw text to write instead of it or None)."""
    kind = _pick(rng, ["replace", "replace", "replace", "delete", "duplicate", "file_name", "file_name", "deep", "huge",
                       "rle", "size", "skeleton", "name", "strings", "top", "raw", "ids", "far", "overlap"])
    paths = [p for p, _ in _nodes(coco) if p]
    if kind == "replace":
        path = _pick(rng, _interesting(paths, ("id", "image_id", "category_id", "bbox", "segmentation", "keypoints", "width",
                                               "height", "file_name", "iscrowd", "counts", "size", "name", "skeleton",
                                               "images", "annotations", "categories")) if rng.random() < 0.7 else paths)
        _set(coco, path, _pick(rng, odd_values(rng)))
    elif kind == "delete":
        keyed = [p for p in paths if isinstance(p[-1], str)]
        if keyed:
            path = _pick(rng, keyed)
            parent = coco
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
    elif kind == "duplicate":
        section = _pick(rng, ["images", "annotations", "categories"])
        entries = coco.get(section)
        if isinstance(entries, list) and entries:
            twin = copy.deepcopy(_pick(rng, entries))
            if isinstance(twin, dict) and section == "images" and rng.random() < 0.5:
                twin["file_name"] = "twin.jpg"
            entries.insert(int(rng.integers(0, len(entries) + 1)), twin)
    elif kind == "file_name":
        if coco["images"]:
            name = _pick(rng, HOSTILE_NAMES).replace("{case}", str(case))
            _pick(rng, coco["images"])["file_name"] = name
    elif kind == "deep":
        depth = int(_pick(rng, [100, 1000, 5000, 100_000]))
        text = json.dumps(coco)
        holder = _pick(rng, ['"segmentation": ', '"keypoints": ', '"bbox": ', '"images": ', '"name": ', '"id": '])
        at = text.find(holder)
        if at >= 0:
            at += len(holder)
            return coco, (text[:at] + "[" * depth + "]" * depth + ", \"_x\": " + text[at:]).encode()
    elif kind == "huge":
        numeric = [p for p in paths if isinstance(_get(coco, p), (int, float)) and not isinstance(_get(coco, p), bool)]
        if numeric:
            _set(coco, _pick(rng, numeric), _pick(rng, [1e308, -1e308, 2**63, 2**64 + 1, 2**70, 10**30, -(2**63) - 1, 1e-320, 1e300]))
    elif kind == "rle":
        rles = [a for a in coco["annotations"] if isinstance(a.get("segmentation"), dict)]
        target = _pick(rng, rles) if rles else (_pick(rng, coco["annotations"]) if coco["annotations"] else None)
        if target is not None:
            image = next((im for im in coco["images"] if im["id"] == target["image_id"]), {"width": 10, "height": 10})
            h, w = image["height"], image["width"]
            target["segmentation"] = _pick(rng, [
                {"size": [h, w], "counts": [1, 2, 3]},  # sums short of h * w
                {"size": [h, w], "counts": [h * w, 5, 7]},  # sums past h * w
                {"size": [h, w], "counts": [-5, h * w + 5]},
                {"size": [h, w], "counts": [0.5, h * w - 0.5]},
                {"size": [h, w], "counts": [True, h * w - 1]},
                {"size": [h, w], "counts": ["3", str(h * w - 3)]},
                {"size": [h, w], "counts": "0"},  # compressed, sums short
                {"size": [h, w], "counts": "\x00\x01\xff"},
                {"size": [h, w], "counts": "" + "?" * 50},
                {"size": [h, w], "counts": "PP" * 400},
                {"size": [h, w], "counts": None},
                {"size": [h, w], "counts": [h * w]},
                {"size": [h, w], "counts": [2**70]},
                {"size": [h, w]},
                {"size": [h, "w"], "counts": [h * w]},
                {"size": [h, w, 3], "counts": [h * w]},
                {"size": [2**40, 2**40], "counts": [2**80]},
                {"counts": [h * w]},
            ])
    elif kind == "size":
        if coco["images"]:
            image = _pick(rng, coco["images"])
            image[_pick(rng, ["width", "height"])] = _pick(rng, [2**70, 2**40, 2**31, 10**6, 0, -5, 1.5, 1e308, True, "100"])
            if rng.random() < 0.5:  # an RLE that asks for a mask that large
                coco["annotations"].append({"id": 9999, "image_id": image["id"], "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 2, 2],
                                            "segmentation": {"size": [image["height"], image["width"]], "counts": [1]}})
    elif kind == "skeleton":
        cat = coco["categories"][0]
        cat["skeleton"] = _pick(rng, [[[1.5, 2]], [[1, 99]], [[0, 1]], [[-1, 2]], [["1", "2"]], [[1, 2, 3]], [[1]], [1, 2], "1-2",
                                      [[True, 2]], [[2**70, 1]], [[None, 1]], [[[1], [2]]], None, {"a": [1, 2]}])
    elif kind == "name":
        cat = _pick(rng, coco["categories"])
        field_name = _pick(rng, ["name", "name", "keypoints"])
        cat[field_name] = _pick(rng, [["person"], {"a": 1}, 7, "", "a\nb", "a\x00b", "x" * 5000, None, True, ["a", 1], [["a"]],
                                      ["a", "a"], [str(i) for i in range(3000)], "- [1, 2]", "{x: 1}", "'quoted'", "&anchor"])
    elif kind == "strings":
        anns = [a for a in coco["annotations"] if isinstance(a.get("segmentation"), list) and a["segmentation"]]
        if anns:
            ann = _pick(rng, anns)
            key = _pick(rng, ["segmentation", "bbox", "keypoints"])
            if key == "segmentation":
                ann[key] = [[str(v) for v in part] for part in ann[key]]
            elif isinstance(ann.get(key), list):
                ann[key] = [str(v) for v in ann[key]]
    elif kind == "top":
        choice = int(rng.integers(0, 6))
        if choice == 0:
            return coco, json.dumps([coco]).encode()
        if choice == 1:
            coco["images"] = {str(im["id"]): im for im in coco["images"]}
        elif choice == 2:
            coco["annotations"] = None
        elif choice == 3:
            del coco[_pick(rng, ["images", "annotations", "categories"])]
        elif choice == 4:
            coco["categories"] = []
        else:
            coco["extra"] = [[1] * 10] * 10
    elif kind == "raw":
        text = json.dumps(coco).encode()
        choice = int(rng.integers(0, 7))
        if choice == 0:
            return coco, text[: int(rng.integers(0, len(text)))]
        if choice == 1:
            return coco, text.replace(b"1.0", b"NaN", 1).replace(b"2", b"Infinity", 1)
        if choice == 2:
            return coco, b"\xef\xbb\xbf" + text
        if choice == 3:
            return coco, text.replace(b"im0", b"im\xff\xfe0", 1)
        if choice == 4:  # a key twice: json keeps the last
            return coco, text.replace(b'"image_id": ', b'"image_id": 424242, "image_id": ', 1)
        if choice == 5:
            return coco, b""
        return coco, text.replace(b'"im0.jpg"', b'"im\\u0000.jpg"', 1).replace(b'"sub/im0.jpg"', b'"\\ud800.jpg"', 1)
    elif kind == "ids":
        anns = coco["annotations"]
        if anns:
            ann = _pick(rng, anns)
            choice = int(rng.integers(0, 6))
            if choice == 0 and len(anns) > 1:
                ann["id"] = anns[0]["id"] if ann is not anns[0] else anns[-1]["id"]
            elif choice == 1:
                del ann["id"]
            elif choice == 2:
                ann["id"] = -int(rng.integers(1, 5))
            elif choice == 3:
                ann["id"] = True
            elif choice == 4:
                ann["id"] = 2**64
            else:
                ann["image_id"] = _pick(rng, [True, 2**70, -3, 1.0, "1", None])
    elif kind == "far":
        anns = [a for a in coco["annotations"] if isinstance(a.get("segmentation"), list) and a["segmentation"]]
        if anns:
            ann = _pick(rng, anns)
            value = _pick(rng, [1e308, -1e308, 1e12, -5000.0, 3e5])
            part = ann["segmentation"][0]
            part[int(rng.integers(0, len(part)))] = value
            if rng.random() < 0.5 and "bbox" in ann:
                ann["bbox"][int(rng.integers(0, 4))] = value
            if rng.random() < 0.5 and ann.get("keypoints"):
                ann["keypoints"][0], ann["keypoints"][2] = value, 2
    elif kind == "overlap":  # two parts of one object that cover each other (DeepFashion2)
        anns = [a for a in coco["annotations"] if isinstance(a.get("segmentation"), list) and a["segmentation"]]
        if anns:
            ann = _pick(rng, anns)
            part = ann["segmentation"][0]
            ann["segmentation"] = [part, [v + 1.0 for v in part]]
    return coco, None


def _get(tree, path):
    for step in path:
        tree = tree[step]
    return tree


# --- one case on disk ---------------------------------------------------------------------


@dataclass
class Case:
    seed: int
    root: Path
    annotation_file: Path
    args: list[str]
    mutations: list[str] = field(default_factory=list)
    follow_links: bool = False

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def out(self) -> Path:
        return self.root / "out"


def make_case(seed: int, root: Path, *, follow_links_option: bool = True, mutations: bool = True) -> Case:
    """Write case ``seed`` under ``root`` (created): in/<annotations>, images/, the secrets beside, cwd/.

    ``mutations=False`` keeps the valid file (to show that the promises can fail).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    root = root.resolve()
    coco = valid_coco(rng)
    raw = None
    for _ in range(int(rng.integers(1, 4)) if mutations else 0):
        if raw is not None:
            break
        try:
            coco, raw = mutate(coco, rng, root)
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            pass  # an earlier mutation broke what this one needs: the case keeps what it has
    name = _pick(rng, ["instances_train.json", "instances_val2017.json", "annotations.json", "person_keypoints_train2017.json"])
    ann = root / "in" / name
    ann.parent.mkdir()
    ann.write_bytes(raw if raw is not None else json.dumps(coco).encode())
    (root / "secret_direct.jpg").write_bytes(SECRET + b" direct")
    (root / "secret_linked.jpg").write_bytes(SECRET + b" linked")
    (root / "cwd").mkdir()
    images = root / "images"
    images.mkdir()
    (root / "linked").mkdir()
    (root / "linked" / "inner.jpg").write_bytes(SECRET + b" linked folder")
    os.symlink(root / "secret_linked.jpg", images / "link.jpg")  # out of --images: only with --follow-links
    os.symlink(root / "linked", images / "dirlink")  # likewise
    os.symlink(images, images / "loop")  # a walk that follows links must not go round forever
    split = name.removeprefix("instances_").removeprefix("person_keypoints_").removesuffix(".json")
    for im in (coco.get("images") if isinstance(coco, dict) and isinstance(coco.get("images"), list) else []):
        file_name = im.get("file_name") if isinstance(im, dict) else None
        if not isinstance(file_name, str) or not file_name or "\x00" in file_name or ".." in file_name or file_name.startswith("/"):
            continue
        where = images / (split if rng.random() < 0.3 else "") / file_name
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            if not where.exists():
                where.write_bytes(b"IMAGE " + file_name.encode("utf-8", "replace"))
        except OSError:
            pass  # a name the file system refuses (too long, a folder of that name): not on disk then
    args = [str(ann), str(root / "out"), "--task", _pick(rng, ["multitask", "multitask", "segment", "pose"])]
    if rng.random() < 0.7:
        args += ["--images", str(images)]
        if rng.random() < 0.5:
            args.append("--copy")
    follow = follow_links_option and rng.random() < 0.2
    if follow:
        args.append("--follow-links")
    if rng.random() < 0.2:
        args += ["--crowd", "include"]
    if rng.random() < 0.1:
        args.append("--strict")
    if rng.random() < 0.1:
        args += ["--split", _pick(rng, ["val", "train2017", "x"])]
    if rng.random() < 0.1:
        args += ["--classes", _pick(rng, ["ball", "person", "ball,cup", "nothing"])]
    args += ["--report", str(root / "report.json")]
    (root / "args.json").write_text(json.dumps(args))  # to rerun a case by hand
    return Case(seed, root, ann, args, follow_links=follow)


# --- the promises -------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, str]:
    """relative path -> sha256 (files), 'link:<target>' (symlinks) or 'dir' of everything below ``folder``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _within(path: str, folder) -> bool:
    folder = str(folder)
    return path == folder or path.startswith(folder + os.sep)


def _ours(path: str, allowed) -> bool:
    """``path`` is ``allowed``, inside it, a sibling named after it, or the temporary folder an atomic write of it
    makes beside it (``.NAME.tmp-*``, mtdata._runtime.output)."""
    allowed = str(allowed)
    parent, name = os.path.split(allowed)
    return _within(path, allowed) or path.startswith(allowed + "-") or path.startswith(os.path.join(parent, f".{name}.tmp-"))


def _run_cli(args: list[str], cwd: Path, watch: Path, allowed: list[Path], linked: bool, two_processes: bool) -> dict:
    """Run ``mtdata convert args`` here (a forked child): exit code, output, opened paths outside ``allowed``."""
    from typer.testing import CliRunner

    import mtdata.convert.labels
    from mtdata.cli import app

    bad_opens: list[str] = []

    def audit(event, event_args):
        if event in ("open", "os.symlink", "shutil.copyfile") and event_args and isinstance(event_args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(event_args[0])
            if not os.path.isabs(path):  # relative to a folder's descriptor (shutil.rmtree): not ours to judge
                return
            real = os.path.realpath(path)
            inside = any(_ours(real, a) for a in allowed)
            if linked:  # --follow-links: what the links in --images lead to may be read, nothing else
                inside = inside or real == str(watch / "secret_linked.jpg") or _within(real, watch / "linked")
            hostile = real == "/etc/passwd" or (real.startswith("/proc/") and real.endswith("/environ"))
            if (hostile or _within(real, str(watch))) and not inside:
                bad_opens.append(f"{event} {real} {event_args!r:.100}" + ("".join(__import__("traceback").format_stack()[-4:-1]) if os.environ.get("FUZZ_STACKS") else ""))

    sys.addaudithook(audit)
    os.chdir(cwd)
    if two_processes:
        mtdata.convert.labels.PARALLEL_MIN_IMAGES = 2
    result = CliRunner().invoke(app, ["convert", *args])
    trace = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(*result.exc_info))
    return {"code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr, "trace": trace,
            "exception": type(result.exception).__name__ if trace else None, "bad_opens": bad_opens}


def run_forked(work, timeout_s: float = 20.0, memory_bytes: int = 2 << 30):
    """``work()`` in a forked child with ``memory_bytes`` more address space than now and an alarm; (status, value)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (used + memory_bytes, resource.RLIM_INFINITY))
            signal.alarm(int(timeout_s))
            payload = ("ok", work())
        except BaseException as e:  # noqa: BLE001  (whatever the case raised goes back to the parent as words)
            payload = ("error", f"{type(e).__name__}: {e}")
        try:
            data = pickle.dumps(payload)
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("timeout" if sig == signal.SIGALRM else f"signal {signal.Signals(sig).name}"), None
    if not data:
        return "no result", None
    return pickle.loads(data)


def check_case(case: Case) -> list[str]:
    """The broken promises of one case (empty: all kept)."""
    problems = []
    before = _tree(case.root)
    linked = True if case.follow_links else None

    def convert(out_name: str, two: bool):
        args = [a if a != str(case.out) else str(case.root / out_name) for a in case.args]
        allowed = [case.root / "in", case.images.resolve(), case.root / "report.json", case.root / out_name]
        allowed += [case.root / f".{out_name}.tmp"]  # the atomic writer's folder beside OUT (a prefix)
        return run_forked(lambda: _run_cli(args, case.root / "cwd", case.root, allowed, linked, two))

    status, first = convert("out", False)
    if status != "ok":
        return [f"crash: {status}" if first is None else f"crash: {first}"]
    problems += _outcome_problems(case, first, "out")
    after = _tree(case.root)
    for rel, digest in before.items():
        if after.get(rel) != digest:
            problems.append(f"input changed: {rel}")
    for rel in after:
        top = rel.split(os.sep)[0]
        if rel not in before and top not in ("out", "report.json") and not top.startswith(".out."):
            problems.append(f"file outside OUT: {rel!r}")
        if top.startswith(".out."):
            problems.append(f"temp folder left: {rel!r}")
    if not problems and first["code"] == 0:
        # the same input again (the first OUT moved out of the case: a link in --images may lead to it), in two processes
        report = (case.root / "report.json").read_text()
        out_tree = _tree(case.out)
        os.rename(case.out, case.root.parent / f"{case.root.name}-first")
        status, second = convert("out", True)
        if status != "ok" or second["trace"]:
            problems.append(f"second run: {status} {second and second['exception']}")
        elif second["code"] != 0 or _tree(case.out) != out_tree:
            problems.append("nondeterministic: another run wrote another dataset")
        elif (case.root / "report.json").read_text() != report:
            problems.append("nondeterministic: another run wrote another report")
    return problems


def _outcome_problems(case: Case, result: dict, out_name: str) -> list[str]:
    problems = []
    if result["trace"]:
        last = result["trace"].strip().splitlines()[-1]
        problems.append(f"traceback: {result['exception']}: {last[:120]}")
        return problems
    problems += [f"read outside --images: {p}" for p in result["bad_opens"]]
    if result["code"] == 2:
        lines = result["stderr"].strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"exit 2 without one error line: {result['stderr'][:200]!r}")
        elif "Traceback" in result["stderr"]:
            problems.append("traceback in the error line")
    elif result["code"] != 0:
        problems.append(f"exit {result['code']}: {result['stderr'][:200]!r}")
    else:
        problems += _dataset_problems(case, case.root / out_name)
    return problems


def _dataset_problems(case: Case, out: Path) -> list[str]:
    from mtdata.errors import MtdataError
    from mtdata.formats.yolo.data_yaml import read_data_yaml
    from mtdata.formats.yolo.rows import read_label_file

    problems = []
    images_root = case.images.resolve()
    reachable = [images_root] + ([case.root / "linked", case.root / "secret_linked.jpg"] if case.follow_links else [])
    for path in out.rglob("*"):
        if path.is_symlink():
            target = os.path.realpath(path)
            if not any(_within(target, r) for r in reachable):
                problems.append(f"image placed from outside --images: {target}")
        elif path.is_file() and SECRET in (data := path.read_bytes()) and not (case.follow_links and b"linked" in data):
            problems.append(f"secret copied into OUT: {path.relative_to(out)}")
    try:
        config = read_data_yaml(out / "data.yaml")
        layout = config.layout()
    except MtdataError as e:
        return [*problems, f"data.yaml unreadable: {e}"]
    for path in sorted((out / "labels").rglob("*.txt")):
        parsed = read_label_file(path, layout)
        if parsed.problems:
            problems.append(f"label file does not read back: {parsed.problems[0]}")
            break
    return problems


def preload() -> None:
    """Import what every case needs once, before the cases fork (as a user's process has it when it converts)."""
    import importlib

    for module in ("mtdata.cli", "mtdata.convert.dataset", "mtdata.formats.coco.columns", "pycocotools.mask", "typer.testing"):
        importlib.import_module(module)


def problem_class(problem: str) -> str:
    """A failure's class, for counts: the text up to the first colon, and the exception type of a traceback."""
    head = problem.split(":")[0]
    if head in ("traceback", "crash"):
        return ":".join(problem.split(":")[:2]).strip()
    return head


def fuzz(seeds, workdir: Path, deadline: float | None = None, follow_links_option: bool = True) -> tuple[int, dict[int, list[str]]]:
    """(cases run, seed -> problems) over ``seeds`` until ``deadline`` (time.monotonic)."""
    failures, ran = {}, 0
    for seed in seeds:
        if deadline is not None and time.monotonic() > deadline:
            break
        case = make_case(seed, workdir / f"case{seed}", follow_links_option=follow_links_option)
        problems = check_case(case)
        ran += 1
        if problems:
            failures[seed] = problems
    return ran, failures


def main(argv: list[str] | None = None) -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--no-follow-links", action="store_true", help="never pass --follow-links (code without it)")
    parser.add_argument("--show", type=int, default=3, help="examples printed per class")
    parser.add_argument("--keep", type=Path, help="write the cases here and keep them")
    args = parser.parse_args(argv)
    preload()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        ran, failures = fuzz(range(args.first, args.first + args.cases), args.keep, follow_links_option=not args.no_follow_links)
        return _print(ran, failures, args.show)
    with tempfile.TemporaryDirectory(prefix="coco-fuzz-") as tmp:
        ran, failures = fuzz(range(args.first, args.first + args.cases), Path(tmp), follow_links_option=not args.no_follow_links)
    _print(ran, failures, args.show)


def _print(ran: int, failures: dict, show: int) -> None:
    classes: Counter = Counter()
    examples: dict[str, list] = {}
    for seed, problems in failures.items():
        for cls in sorted({problem_class(p) for p in problems}):
            classes[cls] += 1
            examples.setdefault(cls, []).append((seed, next(p for p in problems if problem_class(p) == cls)))
    print(f"{ran} cases, {len(failures)} failing")
    for cls, count in classes.most_common():
        print(f"{count:5d}  {cls}")
        for seed, problem in examples[cls][:show]:
            print(f"         seed {seed}: {problem[:200]!r}")


if __name__ == "__main__":
    main()
