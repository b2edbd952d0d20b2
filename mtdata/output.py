"""Writing outputs: a dataset folder atomically (a temporary folder beside OUT, then a rename), and small files
fast with system calls (``write_file``, ``write_all`` and its reading twin ``read_to_end``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtdata.errors import OutputError


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_output_dir(out: Path, overwrite: bool, inputs: list[Path]) -> Path:
    """Refuse an OUT that is an input, lies inside one, or holds one; or is non-empty without ``overwrite``."""
    out = Path(out).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if _is_within(out, source) or _is_within(source, out):
            raise OutputError(f"output {out} overlaps the input {source}: choose a separate folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"output {out} is not empty: pass --overwrite to replace it")
    return out


@contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False, inputs: list[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any error it is removed.

    >>> with atomic_output_dir(Path(tmp) / "ds") as work:  # doctest: +SKIP
    ...     (work / "data.yaml").write_text("...")
    """
    out = check_output_dir(out, overwrite, list(inputs))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(trash / "old")
        work.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        work.rename(out)


def write_file(path: str, data: bytes, *, create: bool = True) -> None:
    """Write ``data`` to ``path`` with system calls only (no Python file object: tools here write 20k+ small files).

    Args:
        create: create (or truncate) the file; False writes into a file that exists (and is empty).
    """
    fd = os.open(path, os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a file descriptor (``os.write`` may take less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_to_end(fd: int) -> bytes:
    """Everything left to read from a file descriptor (``os.read`` may return less than there is)."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
