"""Half of a job in a forked child: it sees the parent's memory as it was, and hands back a small result.

Used where the second core would otherwise idle behind numpy work that cannot be threaded
(``mtdata convert`` after the COCO file is read). Linux only: macOS frameworks are not
fork-safe once threads run, and Windows has no fork.

A child of a process that has used polars' thread pool gets a pool without threads: its
first polars call would hang. :mod:`mtdata.number_text` therefore reads with numpy in any
child forked after polars was loaded.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import Any

from mtdata.output import read_to_end, write_all


def can_fork() -> bool:
    """Linux with two cores or more (one core gains nothing from a second process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return sys.platform.startswith("linux") and cores > 1


class ForkedCall:
    """Run ``work(receive)`` in a forked child; :meth:`result` returns what it returned.

    ``receive()`` (in the child) blocks until the parent calls :meth:`send` and returns what
    was sent: the parent may finish preparing something first. The child leaves with
    ``os._exit``: no clean-up of the parent's runs there, and no locks that the parent's
    threads might have held at the fork are touched unless ``work`` touches them.
    """

    def __init__(self, work: Callable[[Callable[[], Any]], Any]):
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            code = 0
            try:
                os.close(self._to_child)
                os.close(self._from_child)
                payload = ("ok", work(lambda: pickle.loads(_read_all(to_child))))
            except BaseException as e:  # noqa: BLE001  (handed to the parent, which raises it)
                payload, code = ("error", _picklable(e)), 1
            try:
                _write_all(from_child, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
            finally:
                os._exit(code)
        os.close(to_child)
        os.close(from_child)
        self._sent = False

    def send(self, value: Any) -> None:
        """Hand ``value`` to the child's ``receive()`` (once)."""
        self._sent = True
        fd, self._to_child = self._to_child, -1
        _write_all(fd, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def result(self) -> Any:
        """What ``work`` returned; raises what it raised."""
        if not self._sent:
            self.send(None)
        fd, self._from_child = self._from_child, -1
        data = _read_all(fd)
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0  # reaped: the number may belong to another process from now on
        if not data:
            raise RuntimeError(f"a forked worker died without a result (status {os.waitstatus_to_exitcode(status)})")
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return value

    def kill(self) -> None:
        """Stop the child if it still runs (the parent failed); harmless after :meth:`result`."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0
        for fd in (self._from_child, self._to_child):
            if fd >= 0:
                os.close(fd)
        self._from_child = self._to_child = -1


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001  (an exception whose arguments do not round-trip: keep its words)
        return RuntimeError(f"{type(error).__name__}: {error}")


def _write_all(fd: int, data: bytes) -> None:
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    try:
        return read_to_end(fd)
    finally:
        os.close(fd)
