"""Writing outputs atomically (a dataset folder or a file), and small files fast with system calls
(``write_file``, ``write_all`` and its reading twin ``read_to_end``).

OUT is built in a temporary folder beside it, ``.OUT.tmp-<run>-XXXXXXXX/out``, and renamed into place
when complete: at every moment OUT is absent, the old OUT, or the new one in full. Replacing an
OUT (``--overwrite``) swaps the two in one step where Linux can (``renameat2(RENAME_EXCHANGE)``);
elsewhere the old OUT is moved aside, and moved back if the new one cannot take its place.

The temporary folder also holds ``run.json``: the host, boot, pid namespace, process id and start
time of the run that made it (``<run>`` in its name holds the same: the process id, start time and a
digest of the rest). A run killed outright (SIGKILL, power loss) cannot remove its folder; the next
run writing the same OUT removes it once it has proved, from that file or name, that the run is
gone (:func:`remove_stale_temporaries`). Folders it cannot prove are left alone.

Errors of the file system while OUT is built (full disk, read-only folder, unreadable input)
become one :class:`~mtdata.errors.OutputError` (or InputError) naming the path: a path inside the
temporary folder is named as it would be in OUT.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtdata import interrupts
from mtdata.errors import InputError, MtdataError, OutputError

RUN_FILE = "run.json"
_RUN_KIND = "mtdata temporary output"
_RUN_FILE_MAX = 4096
_NAME_MAX = 200  # bytes of OUT's name kept in the temporary folder's name (file names stop at 255)


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
                    self.folder = Path(tempfile.mkdtemp(prefix=_temporary_prefix(self.out) + _run_tag(_this_run()), dir=self.out.parent))
                    _write_run_file(self.folder, self.out)
            except BaseException:  # __exit__ does not run when __enter__ fails: remove the folder here
                if self.folder is not None:
                    with interrupts.deferred():
                        _remove_folder(self.folder)
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
                _remove_folder(self.folder)  # after a swap it holds the old OUT
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


def _remove_folder(folder: Path, seconds: float = 2.0) -> None:
    """Remove a temporary folder: its run file last, so that a run killed meanwhile leaves a folder the next
    run can still prove stale; again while a writer being stopped adds files (a helper killed a moment
    ago, a thread finishing its file)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            names = [n for n in os.listdir(folder) if n != RUN_FILE]
        except OSError:
            names = []
        for name in names:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder) or time.monotonic() > deadline:
            return
        time.sleep(0.01)


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


# --- proving a temporary folder was left by a dead run -------------------------------------------


def _temporary_prefix(out: Path) -> str:
    name = os.fsdecode(os.fsencode(out.name)[:_NAME_MAX])
    return f".{name}.tmp-"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read(256).strip()
    except (OSError, ValueError):
        return None


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, from /proc), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name before ")" may hold spaces
        return int(fields[19])  # field 22 of proc(5), counted after pid and name
    except (OSError, IndexError, ValueError):
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _this_run() -> dict:
    return {
        "kind": _RUN_KIND, "host": socket.gethostname(), "boot": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_namespace": _pid_namespace(), "pid": os.getpid(), "start": _start_time(os.getpid()),
    }


def _write_run_file(folder: Path, out: Path) -> None:
    data = json.dumps({**_this_run(), "out": os.fsdecode(out)}).encode()
    fd = os.open(folder / RUN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _process_gone(pid: int, start: int | None) -> bool:
    """True when no process ``pid`` runs, or one does that started at another time (the number was reused)."""
    if os.path.isdir("/proc/self"):
        now = _start_time(pid)
        return now is None or (start is not None and now != start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's)
        return False
    return False


def _run_tag(run: dict) -> str:
    """``<pid>-<start>-<machine>-`` (machine: a digest of host, boot and pid namespace), the start of a temporary
    folder's name: mkdir makes the name and the folder in one step, so even a run killed before it wrote
    its run file can be proved gone."""
    machine = hashlib.sha256(f"{run['host']}\0{run['boot']}\0{run['pid_namespace']}".encode()).hexdigest()[:10]
    return f"{run['pid']}-{run['start'] if run['start'] is not None else 'x'}-{machine}-"


def _left_by_dead_run(folder: Path, out: Path, me: dict) -> bool:
    """True when ``folder`` was made by a run writing ``out`` on this machine (``me``: :func:`_this_run`) that has
    ended: its run file says so, or (killed before it wrote one) its name does."""
    try:
        fd = os.open(folder / RUN_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            run = json.loads(os.read(fd, _RUN_FILE_MAX))
        finally:
            os.close(fd)
    except (FileNotFoundError, ValueError):  # killed before it wrote its run file, or while it did
        return _named_by_dead_run(folder.name[len(_temporary_prefix(out)):], me) and set(os.listdir(folder)) <= {RUN_FILE}
    except OSError:
        return False
    if not isinstance(run, dict) or run.get("kind") != _RUN_KIND or run.get("out") != os.fsdecode(out):
        return False
    pid = run.get("pid")
    if run.get("host") != me["host"] or not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if me["boot"] is not None and run.get("boot") is not None and run["boot"] != me["boot"]:
        return True  # made before the machine last started: that run has ended
    if run.get("pid_namespace") != me["pid_namespace"]:
        return False  # another container's run: its processes are not ours to see
    start = run.get("start")
    return _process_gone(pid, start if isinstance(start, int) else None)


def _named_by_dead_run(suffix: str, me: dict) -> bool:
    """True when a temporary folder's name after its prefix (``<pid>-<start>-<machine>-<random>``) names a run of
    this machine whose process is gone."""
    parts = suffix.split("-", 3)
    if len(parts) != 4 or not parts[0].isdigit() or not (parts[1].isdigit() or parts[1] == "x"):
        return False
    pid, start = int(parts[0]), int(parts[1]) if parts[1] != "x" else None
    if _run_tag({**me, "pid": pid, "start": start}) != "-".join(parts[:3]) + "-":
        return False  # another machine, boot or container
    return _process_gone(pid, start)


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary folders beside ``out`` that runs now ended left behind; returns them.

    Only folders named like ours whose ``run.json`` names ``out`` and a run of this machine
    (same host, same boot, same pid namespace) whose process is gone, or, without that file,
    empty ones whose name says the same: a folder of a run still going, of another machine or
    container, or that proves nothing is left alone.
    """
    prefix = _temporary_prefix(out)
    removed = []
    try:
        with os.scandir(out.parent) as entries:
            candidates = [Path(e.path) for e in entries if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    me = _this_run() if candidates else {}
    for folder in candidates:
        if _left_by_dead_run(folder, out, me):
            with interrupts.deferred():
                _remove_folder(folder)
            removed.append(folder)
    return removed


# --- small files with system calls ---------------------------------------------------------------


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
