"""``mtdata convert`` of what annotation tools write (Labelme, Label Studio), through the COCO path.

The tool's files are read and their points joined to objects first (:mod:`mtdata.formats.tool_objects`);
:class:`ToolSource` then hands :func:`mtdata.convert.dataset.convert_coco` one COCO file per split and finds
each image (beside its Labelme file, under ``--images``, or embedded), so rows, reports, ``--strict``
and the atomic output are those of COCO input.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mtdata._runtime.output import write_file
from mtdata.convert.dataset import ConvertReport, convert_coco
from mtdata.convert.files import ImageFinder
from mtdata.errors import InputError, MtdataError, raise_os_error, why_missing
from mtdata.formats.coco.checks import file_name_problem
from mtdata.formats.coco.read import Skip
from mtdata.formats.tool_objects import ToolDataset, ToolImage, tool_coco_files

FORMATS = ("coco", "labelme", "labelstudio")
_SNIFF_BYTES = 1 << 20
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames an upload a.jpg to 1a2b3c4d-a.jpg


def _sniff(path: Path) -> str | None:
    """The format a JSON file is written in, from its first bytes (whole, when they do not tell)."""
    from mtdata.formats.labelme import MAX_LABELME_BYTES, is_labelme, load_json

    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):  # a list of tasks; one that names none of a task's keys (an empty list) tells nothing
        return "labelstudio" if any(key in head for key in (b'"data"', b'"annotations"', b'labels"')) else None
    if not text.startswith(b"{"):
        return None
    if b'"shapes"' in head:
        return "labelme"
    if any(key in head for key in (b'"images"', b'"annotations"', b'"categories"')):
        return "coco"
    if len(head) < _SNIFF_BYTES:  # the whole file was read and names none of them
        return None
    data = load_json(path, MAX_LABELME_BYTES, "annotation file")
    return "labelme" if is_labelme(data) else "coco" if isinstance(data, dict) and "annotations" in data else None


def json_files(folder: Path, out: Path | None) -> list[Path]:
    """The .json files below ``folder``, sorted, but those in hidden folders or in OUT (a dataset written there).

    One walk, folders pruned as it goes: resolving each of 20k files to test it against OUT took 2 s.
    """
    skip = os.path.realpath(out) if out is not None else None
    files = []
    for where, dirs, names in os.walk(folder, onerror=raise_os_error):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(where, d)) != skip]
        files += [os.path.join(where, n) for n in names if n.endswith(".json")]
    if not files:
        raise InputError("holds no .json file", file=folder)
    return [Path(p) for p in sorted(files)]


def detect_format(sources: list[Path], out: Path | None = None) -> str:
    """coco, labelme or labelstudio, from the sources' content; :class:`InputError` when it cannot tell or they differ."""
    found: dict[str, Path] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            path = json_files(path, out)[0]
        if not path.is_file():
            raise InputError(why_missing(path, "annotation file not found") if not path.exists() else "not a file", file=path)
        kind = _sniff(path)
        if kind is None:
            raise InputError("cannot tell the format: expected COCO (a JSON object with images, annotations and "
                             "categories), Labelme (a JSON object with shapes) or Label Studio (a list of tasks); pass --from", file=path)
        found.setdefault(kind, path)
    if len(found) > 1:
        (a, pa), (b, pb) = list(found.items())[:2]
        raise MtdataError(f"{pa} is {a} but {pb} is {b}: convert one format at a time")
    return next(iter(found))


def labelme_splits(sources: list[Path], out: Path) -> tuple[list[Path], list[list[ToolImage]]]:
    """(a folder per split, its images): each folder given is a split (its .json files below it); loose files go
    to the split of their folder."""
    from mtdata.formats.labelme import read_labelme

    groups: dict[Path, list[Path]] = {}
    for source in map(Path, sources):
        if source.is_dir():
            groups.setdefault(source, []).extend(json_files(source, out))
        elif source.is_file():
            groups.setdefault(source.parent, []).append(source)
        else:
            raise InputError(why_missing(source, "annotation file not found") if not source.exists() else "not a file", file=source)
    paths = list(groups)
    return paths, [[read_labelme(p) for p in dict.fromkeys(files)] for files in groups.values()]


def labelstudio_splits(sources: list[Path]) -> tuple[list[Path], list[list[ToolImage]]]:
    """(an export file per split, its images)."""
    from mtdata.formats.labelstudio import read_labelstudio

    paths = [Path(p) for p in sources]
    for path in paths:
        if not path.is_file():
            raise InputError("Label Studio exports are JSON files, found a folder" if path.is_dir()
                             else why_missing(path, "annotation file not found"),
                             file=path)
    return paths, [read_labelstudio(p) for p in paths]


class ToolSource:
    """What :func:`convert_coco` reads instead of COCO files: the splits' COCO files, and where their images are."""

    def __init__(self, dataset: ToolDataset, kind: str, follow_links: bool, out: Path):
        self.dataset, self.kind, self.follow_links, self.out = dataset, kind, follow_links, Path(out)
        self.paths = [f.path for f in dataset.files]
        self.images_finder: ImageFinder | None = None
        self.work: Path | None = None
        self.found: dict[tuple[str, str], tuple[Path | None, str | None]] = {}
        self._beside: dict[Path, ImageFinder] = {}

    def image_finder(self, finder: ImageFinder | None, work: Path):
        """The finder SplitFiles uses: self (Labelme: images beside the files), else the --images one (or None)."""
        self.images_finder, self.work = finder, work
        return self if self.kind == "labelme" or finder is not None else None

    def find(self, file_name: str, split: str) -> tuple[Path | None, str | None]:
        return self.found.get((split, file_name), (None, None))

    def read(self, path: Path, split: str, on_images) -> object:
        """The COCO file of split ``path``; its images found (embedded ones written into OUT) before ``on_images``."""
        i = self.paths.index(path)
        coco = self.dataset.files[i]
        for image in self.dataset.images[i]:
            self.found[(split, image.file_name)] = self._resolve(image, split)
        on_images(list(coco.images.values()))
        return coco

    def _resolve(self, image: ToolImage, split: str) -> tuple[Path | None, str | None]:
        found, why = None, None
        if self.kind == "labelme":
            folder = image.source.parent
            if folder not in self._beside:
                self._beside[folder] = ImageFinder(folder, self.follow_links, skip=(self.work, self.out))
            found, _ = self._beside[folder].find(image.image_ref, split)
        names = [image.image_ref, image.file_name]
        if self.kind == "labelstudio" and _UPLOAD_PREFIX.match(image.file_name):
            names.append(image.file_name[9:])
        for name in names:
            if found is None and self.images_finder is not None:
                found, why = self.images_finder.find(name, split)
        if found is None and why is None and image.embedded and file_name_problem(image.file_name) is None:
            from mtdata.formats.labelme import embedded_image

            found = self.work / "images" / split / image.file_name
            found.parent.mkdir(parents=True, exist_ok=True)
            write_file(str(found), embedded_image(image.source))
        return found, why

    def finish(self, report: ConvertReport) -> None:
        """Name the tool's file and shape in each skip, add the shapes left out and the points no object took."""
        where = self.dataset.where
        skips = [Skip(s.annotation_id, s.image_id, s.reason, f"{where[s.annotation_id]}: {s.message}") if s.annotation_id in where else s
                 for s in report.skipped]
        skips += [Skip(aid, image_id, p.reason, f"{where[aid]}: {p.message}") for aid, image_id, p in self.dataset.skipped]
        report.skipped = sorted(skips, key=lambda s: s.annotation_id)
        report.unmatched_keypoints = list(self.dataset.unmatched)
        report.keypoint_ties = list(self.dataset.ties)
        if self.dataset.unmatched:
            u = self.dataset.unmatched[0]
            report.notes.append(f"{len(self.dataset.unmatched)} keypoints joined no object (first: {u['file']} {u['label']!r} at "
                                f"({u['x']:g}, {u['y']:g}): {u['why']}); all in --report")
        several = [i for images in self.dataset.images for i in images if i.other_annotations]
        if several:
            report.notes.append(f"{len(several)} tasks hold several annotations (first: {several[0].where}): the first one not "
                                "cancelled is converted, the others left out")
        climbing = [i.image_ref for images in self.dataset.images for i in images if i.image_ref.startswith(("/", "../"))]
        if self.kind == "labelme" and report.images_not_found and climbing and self.images_finder is None:
            report.notes.append(f"imagePath leads out of the Labelme folder (e.g. {climbing[0]!r}): images are looked for inside it "
                                "by name; pass --images with the folder that holds them")
        if self.dataset.ties:
            t = self.dataset.ties[0]
            report.notes.append(f"{len(self.dataset.ties)} keypoints lie in several objects and joined the smallest (first: {t['file']} "
                                f"{t['label']!r} in shapes {t['objects']}, joined {t['chosen']}); all in --report")


def convert_annotations(sources: list[Path], out: Path, *, source_format: str | None = None,
                        keypoints: dict[str, list[str]] | None = None, classes: list[str] | None = None,
                        follow_links: bool = False, **options) -> ConvertReport:
    """Convert COCO, Labelme or Label Studio files to one YOLO dataset (``options`` as :func:`convert_coco`).

    Args:
        source_format: coco, labelme or labelstudio; None detects it from the content.
        keypoints: class -> keypoint names, the order of the rows (tool formats; default: first seen).
        classes: class names to keep; for tool formats also their order (default: first seen).
    """
    if source_format is not None and source_format not in FORMATS:
        raise MtdataError(f"--from must be one of {', '.join(FORMATS)}, found {source_format!r}")
    sources = [Path(p) for p in sources]
    if not sources:
        raise MtdataError("no annotation file given")
    kind = source_format or detect_format(sources, out)
    if kind == "coco":
        if keypoints:
            raise MtdataError("--keypoints orders the points of Labelme or Label Studio files; COCO categories name their own")
        return convert_coco(sources, out, classes=classes, follow_links=follow_links, **options)
    paths, splits = labelme_splits(sources, out) if kind == "labelme" else labelstudio_splits(sources)
    dataset = tool_coco_files(paths, splits, keypoints=keypoints, classes=classes)
    source = ToolSource(dataset, kind, follow_links, out)
    return convert_coco(paths, out, classes=classes, follow_links=follow_links, source=source, **options)


def parse_keypoint_order(values: list[str] | None) -> dict[str, list[str]] | None:
    """``--keypoints``: ``class=a,b,c`` items, or one YAML file mapping each class to its list of names."""
    if not values:
        return None
    order: dict[str, list[str]] = {}
    for value in values:
        if "=" not in value:
            order.update(_keypoint_order_file(Path(value)))
            continue
        cls, names = value.split("=", 1)
        listed = [n.strip() for n in names.split(",") if n.strip()]
        if not cls.strip() or not listed:
            raise MtdataError(f"--keypoints takes CLASS=name,name,... or a YAML file, found {value!r}")
        order[cls.strip()] = listed
    for cls, names in order.items():
        if len(set(names)) < len(names):
            raise MtdataError(f"--keypoints of {cls!r} names a keypoint twice: {names}")
    return order


def _keypoint_order_file(path: Path) -> dict[str, list[str]]:
    import yaml

    from mtdata.input_files import read_input_file

    if not path.is_file():
        raise InputError("--keypoints: neither CLASS=name,... nor a YAML file", file=path)
    try:
        data = yaml.safe_load(read_input_file(path, 1 << 20, "--keypoints file"))
    except yaml.YAMLError as e:
        raise InputError(f"--keypoints file is not YAML: {str(e).splitlines()[0]}", file=path) from e
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, list) and v and all(isinstance(n, str) for n in v)
                                             for k, v in data.items()):
        raise InputError("--keypoints file must map each class name to a list of keypoint names", file=path)
    return {k: list(v) for k, v in data.items()}
