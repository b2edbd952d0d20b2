"""Worker processes that die with their parent, and whether this process may fork.

Forking is Linux only: macOS frameworks are not fork-safe once threads run, and Windows has no fork.
A child of a process that has used polars' thread pool gets a pool without threads: its
first polars call would hang. :mod:`mtdata._runtime.number_text` therefore reads with numpy in any
child forked after polars was loaded.

Every worker process of mtdata (the workers of :mod:`mtdata._runtime.parallel` that convert, check and
merge run on, the helper Python of convert) dies with its parent: :func:`become_worker` (or the prelude of
:func:`python_child`) asks Linux for SIGKILL when the parent ends (``PR_SET_PDEATHSIG``), so a
parent killed outright (SIGKILL, the OOM killer) leaves no worker writing on into a folder that
nobody will rename, or waiting forever for work. Stopping signals are the parent's to handle:
workers ignore SIGINT (Ctrl-C reaches the whole process group; the parent stops its workers) and
die at once on SIGTERM and SIGHUP. (The one call into the C library here, ``prctl``, is no speed trick:
it is what keeps the interruption contract when the parent is killed outright.)
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable


def can_fork() -> bool:
    """Linux with two cores or more (one core gains nothing from a second process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return sys.platform.startswith("linux") and cores > 1


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def parent_pid() -> int:
    """This process's id, for :func:`become_worker` in its children (and readies what they will call)."""
    _prctl()
    return os.getpid()


def die_with_parent(parent: int) -> bool:
    """In a child process: be killed (SIGKILL) when the parent ``parent`` ends; leave at once if it has ended.

    Linux delivers the signal when the thread that forked this process ends: fork from the main
    thread (the process pools do). Returns False where the system offers no such request
    (macOS, Windows): the parent's clean-up is then all that stops its children.
    """
    prctl = _prctl()
    armed = prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent ended before the request took hold
        os._exit(1)
    return armed


def become_worker(parent: int) -> None:
    """Ready a worker process forked from ``parent`` (a pool's initializer): it dies with its parent,
    ignores SIGINT and dies at once on SIGTERM and SIGHUP (the parent's handlers do not apply here)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


# Runs first in a helper Python (``python_child``): dies with its parent, like become_worker; the
# parent's pid comes as the first argument and is taken off sys.argv.
_CHILD_PRELUDE = (
    "import os as _os, signal as _signal, sys as _sys\n"
    "_parent = int(_sys.argv.pop(1))\n"
    "_signal.signal(_signal.SIGINT, _signal.SIG_IGN)\n"
    "if _sys.platform.startswith('linux'):\n"
    "    import ctypes as _ctypes\n"
    "    _ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)\n"
    "if _os.getppid() != _parent:\n"
    "    _os._exit(1)\n"
)


def python_child(script: str, *args: str) -> list[str]:
    """The command line of a helper Python that runs ``script`` (``sys.argv[1:]`` is ``args``) and dies with this process.

    Isolated (``-I -S``: no site packages, no user paths), so it starts in ~10 ms.
    """
    return [sys.executable, "-I", "-S", "-c", _CHILD_PRELUDE + script, str(os.getpid()), *args]
