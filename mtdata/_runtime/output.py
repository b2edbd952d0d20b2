"""Writing outputs atomically (a dataset folder or a file), and small files fast with system calls
(``write_file``, ``write_all`` and its reading twin ``read_to_end``).

OUT is built in a temporary folder beside it, ``.OUT.tmp-<run>-XXXXXXXX/out``, and renamed into place
when complete: at every moment OUT is absent, the old OUT, or the new one in full. Replacing an
OUT (``--overwrite``) swaps the two in one step where Linux can (``renameat2(RENAME_EXCHANGE)``);
elsewhere the old OUT is moved aside, and moved back if the new one cannot take its place.

The temporary folder also holds ``run.json`` (``<run>`` in its name says the same): who made it. A
run killed outright (SIGKILL, power loss) cannot remove its folder; the next run writing the same
OUT removes it once it has proved that run gone (:mod:`mtdata._runtime.stale_runs`).

Errors of the file system while OUT is built (full disk, read-only folder, unreadable input)
become one :class:`~mtdata.errors.OutputError` (or InputError) naming the path: a path inside the
temporary folder is named as it would be in OUT.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtdata._runtime import interrupts
from mtdata._runtime.stale_runs import (
    remove_folder,
    remove_stale_temporaries,
    temporary_prefix,
    this_run,
    write_run_file,
)
from mtdata.errors import InputError, MtdataError, OutputError

__all__ = ["atomic_output_dir", "atomic_output_file", "check_output_dir", "check_output_file", "check_output_name", "exchange",
           "place_image", "printable", "read_to_end", "remove_stale_temporaries", "resolve_path", "write_all", "write_file"]


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def printable(path: str | os.PathLike) -> str:
    """A path as text that any terminal can print: bytes that are not UTF-8 shown as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def resolve_path(path: str | os.PathLike, what: str, error: type[MtdataError] = InputError) -> Path:
    """``Path(path).resolve()``, with a symlink loop or an unreadable folder on the way as one error naming ``what``."""
    try:
        return Path(path).resolve()
    except RuntimeError as e:  # Python 3.11-3.12 raise RuntimeError("Symlink loop from ...")
        raise error(f"{what} {printable(path)} is a symlink loop") from e
    except OSError as e:
        raise error(f"{what} {printable(path)}: {e.strerror or e}") from e


def check_output_name(out: str | os.PathLike) -> None:
    """Refuse an OUT whose name is not UTF-8: data.yaml, reports and most tools cannot hold it."""
    try:
        os.fsencode(out).decode("utf-8")
    except UnicodeDecodeError as e:
        raise OutputError(f"output {printable(out)} is not valid UTF-8 (byte {e.object[e.start]:#x} at {e.start}): "
                          "choose a UTF-8 name") from e


def check_output_dir(out: Path, overwrite: bool, inputs: list[Path]) -> Path:
    """Refuse an OUT that is an input, lies inside one, or holds one; or is non-empty without ``overwrite``."""
    check_output_name(out)
    out = resolve_path(out, "output", OutputError)
    for source in inputs:
        source = resolve_path(source, "input")
        if _is_within(out, source) or _is_within(source, out):
            raise OutputError(f"output {out} overlaps the input {source}: choose a separate folder")
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"output {out} exists and is not a folder")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise OutputError(f"output {out} is not empty: pass --overwrite to replace it")
    except OSError as e:
        raise OutputError(f"output {out}: {e.strerror or e}") from e
    return out


@contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False, inputs: list[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any error it is removed.

    >>> with atomic_output_dir(Path(tmp) / "ds") as work:  # doctest: +SKIP
    ...     (work / "data.yaml").write_text("...")
    """
    out = check_output_dir(out, overwrite, list(inputs))
    with _Temporary(out) as temporary:
        work = temporary.path
        work.mkdir()  # not mkdtemp's mode 0700: OUT gets the mode any new folder gets (the umask's)
        yield work
        temporary.commit(_move_folder_into_place)


def check_output_file(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a file OUT that is a folder, a symlink loop, not UTF-8, or exists without ``overwrite``;
    returns it absolute (a link stays a link: it is what gets replaced)."""
    check_output_name(out)
    resolve_path(out, "output", OutputError)
    out = Path(os.path.abspath(out))
    try:
        if out.is_dir():
            raise OutputError(f"output {out} is a folder: name the file to write")
        if out.exists() and not overwrite:
            raise OutputError(f"output {out} exists: pass --overwrite to replace it")
    except OSError as e:
        raise OutputError(f"output {out}: {e.strerror or e}") from e
    return out


@contextmanager
def atomic_output_file(out: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a path to write the file ``out`` to; on success it replaces ``out``, on any error it is removed.

    Raises:
        OutputError: ``out`` is refused by :func:`check_output_file`, or cannot be written.
    """
    out = check_output_file(out, overwrite)
    with _Temporary(out) as temporary:
        yield temporary.path
        temporary.commit(os.replace)


class _Temporary:
    """The temporary folder of one output: ``.OUT.tmp-XXXXXXXX/`` holding ``run.json`` and ``out``
    (what becomes OUT); removed on leaving, whatever happened."""

    def __init__(self, out: Path):
        self.out = out
        self.folder: Path | None = None
        self.path: Path | None = None
        self.committed = False

    def __enter__(self) -> _Temporary:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out)
            try:
                with interrupts.deferred():  # a folder without its run file could never be proved ours
                    run = this_run()
                    self.folder = Path(tempfile.mkdtemp(prefix=temporary_prefix(self.out, run), dir=self.out.parent))
                    write_run_file(self.folder, self.out, run)
            except BaseException:  # __exit__ does not run when __enter__ fails: remove the folder here
                if self.folder is not None:
                    with interrupts.deferred():
                        remove_folder(self.folder)
                raise
        except OSError as e:
            raise OutputError(f"cannot create {self.out}: {e.strerror or e}") from e
        self.path = self.folder / "out"
        return self

    def commit(self, move) -> None:
        """Put ``self.path`` in OUT's place with ``move(path, out)``."""
        with interrupts.deferred():  # moved and known to be moved, or neither
            interrupts.stop_if_asked()  # asked to stop at any moment before: OUT stays as it was
            move(self.path, self.out)
            self.committed = True

    def __exit__(self, kind, error, trace) -> None:
        try:
            with interrupts.deferred():  # removed in full, even when stopped meanwhile
                remove_folder(self.folder)  # after a swap it holds the old OUT
        except BaseException as late:  # noqa: BLE001  (the interrupt held back, or a third one)
            if self.committed:  # OUT is complete
                late.written = self.out
            raise
        if error is None:
            return
        if self.committed:
            error.written = self.out  # an interrupt after OUT was put in place: it is complete
        if isinstance(error, OSError):
            raise _os_error(error, self.path, self.out) from error
        if isinstance(error, MtdataError):  # name paths as they would be in OUT: the temporary folder is gone
            error.message = error.message.replace(os.fspath(self.path), os.fspath(self.out))
            if error.file is not None:
                error.file = error.file.replace(os.fspath(self.path), os.fspath(self.out))
            error.args = (error.message, *error.args[1:])


def _os_error(error: OSError, work: Path, out: Path) -> MtdataError:
    """One error naming the path of ``error``: under ``work`` as it would be in OUT."""
    reason = error.strerror or str(error)
    for name in (error.filename2, error.filename):  # a link or copy names its target second
        if name is None or isinstance(name, int):
            continue
        path = Path(os.fsdecode(name))
        if _is_within(path, work):
            shown = out / path.relative_to(work)
            return OutputError(f"cannot write {printable(shown)}: {reason}")
    if isinstance(error.filename, (str, bytes)):
        if _is_within(Path(os.fsdecode(error.filename)), work.parent):
            return OutputError(f"cannot write {printable(out)}: {reason}")
        return InputError(f"{printable(error.filename)}: {reason}")
    return OutputError(f"cannot write {printable(out)}: {reason}")


def _move_folder_into_place(work: Path, out: Path) -> None:
    """Rename ``work`` to ``out``; an existing ``out`` ends up at ``work``'s path (removed with it)."""
    if not os.path.lexists(out):
        os.rename(work, out)
        return
    if exchange(work, out):  # one step: OUT is never missing
        return
    aside = work.parent / "old"  # no exchange here: keep the old OUT until the new one is in place
    os.rename(out, aside)
    try:
        os.rename(work, out)
    except BaseException:
        os.rename(aside, out)
        raise


# --- swapping two paths (Linux renameat2) ------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EINVAL), getattr(errno, "EOPNOTSUPP", errno.EINVAL)}


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or the file system cannot (then nothing moved); raises
    OSError for any other failure.
    """
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))


# --- small files with system calls ---------------------------------------------------------------


def place_image(source: str | os.PathLike, target: str | os.PathLike, copy: bool = False) -> None:
    """Put an image at ``target``: a copy of ``source`` (``shutil.copy2``), or a symlink to where ``source``
    points, links resolved. The target's folder must exist (callers that write many images make it once)."""
    if copy:
        shutil.copy2(source, target)
    else:
        os.symlink(os.path.realpath(source), target)


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
