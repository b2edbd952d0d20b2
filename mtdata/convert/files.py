"""The files of one converted split: images found and placed, label files created and filled.

Writing ~20k small label files is dominated by creating them (a directory entry and an
inode each), not by their bytes. :class:`SplitFiles` therefore creates the empty label
files (and finds and places the images) beside the main thread while it turns
annotations into rows; :func:`write_labels` then spells the rows and writes them into files
that already exist.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtdata._runtime.forking import python_child
from mtdata._runtime.output import place_image, write_file
from mtdata.errors import OutputError
from mtdata.formats.yolo.bulk import label_texts
from mtdata.records import ObjectBatch


class ImageFinder:
    """Finds a COCO ``file_name`` inside DIR: as DIR/file_name, DIR/<split>/file_name, DIR/<split>/<name>,
    DIR/<name>, or by its unique name anywhere below DIR.

    Only paths inside DIR are looked at: a ``file_name`` that is absolute or climbs with ``..``
    is looked for by its name alone. A file found must also resolve inside DIR once symlinks
    are resolved, unless ``follow_links`` (the user vouches for the links in DIR): a link to
    ``/etc/passwd`` inside DIR is refused, not copied or linked into OUT.
    """

    def __init__(self, root: Path, follow_links: bool = False, skip: tuple[Path, ...] = ()):
        self.root = Path(os.path.abspath(root))
        self.real_root = os.path.realpath(root)
        self.follow_links = follow_links
        self.skip = {os.path.realpath(p) for p in skip}  # OUT and its temporary folder: never read what is being written
        self._by_name: dict[str, list[Path]] | None = None
        self._real_folders: dict[str, str] = {}

    def find(self, file_name: str, split: str) -> tuple[Path | None, str | None]:
        """(the image, None); (None, why it is refused); or (None, None) when it is not there."""
        base = file_name.rsplit("/", 1)[-1]
        climbs = file_name.startswith("/") or ".." in file_name.split("/")
        candidates = [self.root / split / base, self.root / base]
        if not climbs:
            candidates[:0] = [self.root / file_name, self.root / split / file_name]
        for candidate in candidates:
            if candidate.is_file():
                return self._inside(candidate)
        if self._by_name is None:
            self._by_name = self._names_below()
        found = self._by_name.get(base, [])
        if len(found) == 1:
            return self._inside(found[0])
        if climbs:
            return None, f"points outside --images (absolute or '..'): only {base!r} was looked for inside it, and not found"
        return None, None

    def _inside(self, path: Path) -> tuple[Path | None, str | None]:
        if self.follow_links:
            return path, None
        real = self._real_path(str(path))
        if real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep):
            return path, None
        return None, f"is a link out of --images (to {real}); pass --follow-links to take such links"

    def _real_path(self, path: str) -> str:
        """``os.path.realpath`` with each folder resolved once: one lstat per image, not one per path part (20x faster)."""
        folder, name = os.path.split(path)
        real_folder = self._real_folders.get(folder)
        if real_folder is None:
            real_folder = self._real_folders[folder] = os.path.realpath(folder)
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.realpath(path)
        return os.path.join(real_folder, name)

    def _names_below(self) -> dict[str, list[Path]]:
        """File name -> paths of the files of that name below the root (links to folders followed with ``follow_links``, once each)."""
        by_name: dict[str, list[Path]] = defaultdict(list)
        seen = {os.path.realpath(self.root)} | self.skip
        for folder, dirs, files in os.walk(self.root, followlinks=self.follow_links):
            if self.follow_links:  # a link back up would walk forever
                real = [os.path.realpath(os.path.join(folder, d)) for d in dirs]
                dirs[:] = [d for d, r in zip(dirs, real) if r not in seen]
                seen.update(real)
            for name in files:
                by_name[name].append(Path(folder) / name)
        return by_name


class LabelTexts:
    """Label texts of one split's images, made CHUNK_IMAGES images at a time so memory stays small."""

    CHUNK_IMAGES = 2048

    def __init__(self, task: str, objects: ObjectBatch, keep: np.ndarray, image_index: np.ndarray, wh: np.ndarray,
                 keypoint_classes: frozenset[int]):
        picked = np.flatnonzero(keep)
        self.order = picked[np.argsort(image_index[picked], kind="stable")]  # objects by image, file order within
        self.image_of = image_index[self.order]
        self.task, self.objects, self.wh, self.keypoint_classes = task, objects, wh, keypoint_classes
        self.first = self.last = 0
        self.texts: list[bytes] = []

    def of_image(self, i: int) -> bytes:
        if not self.first <= i < self.last:
            self._make(i)
        return self.texts[i - self.first]

    def _make(self, first: int) -> None:
        last = min(first + self.CHUNK_IMAGES, len(self.wh))
        a, b = np.searchsorted(self.image_of, [first, last])
        images, o = self.image_of[a:b], self.objects.select(self.order[a:b])
        self.texts = label_texts(
            self.task, images - first, last - first, self.wh[images], o.class_id, o.xyxy,
            o.polygon_offsets, o.polygon_xy, o.keypoints, self.keypoint_classes,
        )
        self.first, self.last = first, last


# Run by a child Python: creates the empty files named on stdin, NUL after each (no path holds a NUL;
# a newline may be in a name, so it cannot split them).
_CREATE_FILES = (
    "import os, sys\n"
    "for path in sys.stdin.buffer.read().split(b'\\0'):\n"
    "    if path:\n"
    "        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))\n"
)


class SplitFiles:
    """Images and label files of one split, prepared while the caller computes the rows.

    Creating ~20k files costs seconds and is not CPU work: without images it is done by a
    child process (a thread would wait for the GIL behind the main thread's numpy work: on the 20k-image
    convert benchmark a thread cost 5% more CPU, 4.02 -> 4.23 s median of 3; its time was within the
    noise of a loaded machine);
    with images, a thread finds and places them and creates the label files of those found.

    Use as a context manager (or :meth:`start` ... :meth:`close`); :meth:`wait` returns which images were found (their label
    files then exist, empty); :meth:`write_label` fills one. Leaving the block, by error or
    interrupt too, stops the helper, so nothing is written behind the caller's clean-up.

    Args:
        images: the split's CocoImage entries; stems: their unique label names (None: the image is refused).
        label_dir, image_dir: where labels/<split> and images/<split> go (label_dir exists).
        finder: an ImageFinder, or None to write labels only.
        refused: image index -> why it is left out (its name); the finder adds those it refuses.
    """

    def __init__(self, images: list, stems: list[str | None], label_dir: Path, image_dir: Path, split: str, finder, copy: bool,
                 refused: dict[int, str] | None = None):
        self.images, self.split, self.finder, self.copy = images, split, finder, copy
        self.label_paths = [None if stem is None else os.path.join(label_dir, f"{stem}.txt") for stem in stems]
        self.image_dir = image_dir
        self.refused: dict[int, str] = dict(refused or {})
        self.found = np.zeros(len(images), dtype=bool)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None

    def __enter__(self) -> SplitFiles:
        return self.start()

    def start(self) -> SplitFiles:
        """Start the helper; pair with :meth:`close` (or use the object as a context manager)."""
        if self.finder is None:
            self._child = subprocess.Popen(python_child(_CREATE_FILES), stdin=subprocess.PIPE,  # dies with this process
                                           stderr=subprocess.PIPE)
            paths = [p for p in self.label_paths if p is not None]
            try:
                self._child.stdin.write(os.fsencode("\0".join(paths) + "\0") if paths else b"")
                self._child.stdin.close()
            except BaseException:  # interrupted here, the caller never gets this object to close: stop the helper now
                self.close()
                raise
        else:
            self._thread = threading.Thread(target=self._prepare, name="mtdata-split-files", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helper (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
            self._child.wait()

    def _prepare(self) -> None:
        try:
            for i, image in enumerate(self.images):
                if self._stop.is_set():
                    return
                if self.label_paths[i] is None:
                    continue
                source, refused = self.finder.find(image.file_name, self.split)
                if refused:
                    self.refused[i] = f"file_name {image.file_name!r} {refused}"
                if source is None:
                    continue
                self.image_dir.mkdir(parents=True, exist_ok=True)
                target = self.image_dir / image.file_name.rsplit("/", 1)[-1]
                if source != target:  # else written there already (an image a Labelme file embeds)
                    place_image(source, target, self.copy)
                os.close(os.open(self.label_paths[i], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                self.found[i] = True
        except BaseException as e:  # noqa: BLE001  (handed to the main thread by wait())
            self._error = e

    def wait(self) -> np.ndarray:
        """(N,) bool: images found (all when there is no finder); raises what the helper met."""
        if self._child is not None:
            error = self._child.stderr.read().decode(errors="replace").strip()
            if self._child.wait() != 0:
                folder = Path(next(p for p in self.label_paths if p is not None)).parent
                raise OutputError(f"could not create the label files in {folder}: {error.splitlines()[-1:]}")
            self.found[:] = True
            self.found[list(self.refused)] = False
            return self.found
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.found

    def write_label(self, i: int, text: bytes) -> None:
        """Fill the (existing, empty) label file of image i."""
        if text:
            try:
                write_existing(self.label_paths[i], text)
            except OSError as e:
                raise OutputError(f"cannot write this label file: {e.strerror or e}", file=self.label_paths[i]) from e


def write_existing(path: str, data: bytes) -> None:
    """Write into a label file that exists: two system calls, no Python file object."""
    write_file(path, data, create=False)


def write_labels(split_files: SplitFiles, texts: LabelTexts, indices: list[int], progress: Callable[[int], None] | None = None) -> None:
    """Fill the label files of images ``indices`` with their texts; ``progress`` gets how many are written."""
    for n, i in enumerate(indices, start=1):
        split_files.write_label(i, texts.of_image(i))
        if progress is not None and n % 256 == 0:
            progress(n)
