"""Temporary output folders of runs that ended: which ones a run may prove stale, and removing one.

A run builds OUT in ``.OUT.tmp-<pid>-<start>-<machine>-XXXXXXXX/`` (:func:`temporary_prefix`) holding
``run.json``: the host, boot id, pid namespace, process id and start time of the run (:func:`this_run`).
A run killed outright (SIGKILL, the OOM killer, power loss) cannot remove its folder; the next run
writing the same OUT removes it once it has proved that run gone (:func:`remove_stale_temporaries`):
the same host and pid namespace, and no process of that id that started at that time (or another
boot). The name proves the same for a run killed before its run file was written; a folder removed
in part keeps its run file to the end (:func:`remove_folder`). Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from mtdata._runtime import interrupts

RUN_FILE = "run.json"
_RUN_KIND = "mtdata temporary output"
_RUN_FILE_MAX = 4096
_NAME_MAX = 200  # bytes of OUT's name kept in the temporary folder's name (file names stop at 255)


def _name_prefix(out: Path) -> str:
    name = os.fsdecode(os.fsencode(out.name)[:_NAME_MAX])
    return f".{name}.tmp-"


def temporary_prefix(out: Path, run: dict) -> str:
    """The start of the name of a temporary folder beside ``out`` made by ``run`` (:func:`this_run`):
    ``.OUT.tmp-<pid>-<start>-<machine>-`` (machine: a digest of host, boot and pid namespace). mkdir
    makes the name and the folder in one step, so even a run killed before it wrote its run file can
    be proved gone."""
    return _name_prefix(out) + _run_tag(run)


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


def this_run() -> dict:
    """Who this process is: host, boot, pid namespace, pid and start time."""
    return {
        "kind": _RUN_KIND, "host": socket.gethostname(), "boot": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_namespace": _pid_namespace(), "pid": os.getpid(), "start": _start_time(os.getpid()),
    }


def write_run_file(folder: Path, out: Path, run: dict) -> None:
    """``folder/run.json``: ``run`` (:func:`this_run`) writing ``out``."""
    data = json.dumps({**run, "out": os.fsdecode(out)}).encode()
    fd = os.open(folder / RUN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:  # buffered: writes all of it
        f.write(data)


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
    machine = hashlib.sha256(f"{run['host']}\0{run['boot']}\0{run['pid_namespace']}".encode()).hexdigest()[:10]
    return f"{run['pid']}-{run['start'] if run['start'] is not None else 'x'}-{machine}-"


def _left_by_dead_run(folder: Path, out: Path, me: dict) -> bool:
    """True when ``folder`` was made by a run writing ``out`` on this machine (``me``: :func:`this_run`) that has
    ended: its run file says so, or (killed before it wrote one) its name does."""
    try:
        fd = os.open(folder / RUN_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            run = json.loads(os.read(fd, _RUN_FILE_MAX))
        finally:
            os.close(fd)
    except (FileNotFoundError, ValueError):  # killed before it wrote its run file, or while it did
        try:
            alone = set(os.listdir(folder)) <= {RUN_FILE}  # it made nothing else before it wrote one
        except OSError:
            return False
        return alone and _named_by_dead_run(folder.name[len(_name_prefix(out)):], me)
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
    prefix = _name_prefix(out)
    removed = []
    try:
        with os.scandir(out.parent) as entries:
            candidates = [Path(e.path) for e in entries if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    me = this_run() if candidates else {}
    for folder in candidates:
        if _left_by_dead_run(folder, out, me):
            with interrupts.deferred():
                remove_folder(folder)
            removed.append(folder)
    return removed


def remove_folder(folder: Path, seconds: float = 2.0) -> None:
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
