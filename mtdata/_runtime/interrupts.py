"""Stopping a command by signal: SIGINT (Ctrl-C), SIGTERM (``kill``, a job scheduler) and SIGHUP (the
terminal closed) all raise :class:`Interrupted` in the main thread, so that the clean-up written for
Ctrl-C (``finally`` blocks, :func:`mtdata._runtime.output.atomic_output_dir`) runs for each of them.

Python's default SIGTERM and SIGHUP kill the process on the spot: a half-built output folder and
every worker process would stay behind. A repeat of the signal while that clean-up runs is
ignored once (Ctrl-C pressed twice must not cut the clean-up short); a third one stops at once.
:func:`deferred` holds a signal back over a few steps that must not be cut apart (creating a
temporary folder and the file that names its owner; removing it).

Only the command line installs this (:func:`install`); the library leaves signals to its caller.
This module imports nothing heavy: ``python -m mtdata`` installs it before loading the rest.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

STOPPING = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """A stopping signal arrived; ``signum`` says which (a plain KeyboardInterrupt is SIGINT)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


_received: list[int] = []
_deferring = 0
_pending: list[int] = []
_settled = False


def _on_signal(signum: int, frame) -> None:
    if _settled:
        return  # the command's outcome is decided: see settle()
    _received.append(signum)
    if len(_received) >= 3:
        raise Interrupted(signum)  # asked three times: stop now, whatever runs
    if _deferring:
        _pending[:] = _pending or [signum]
        return
    if len(_received) == 2:
        return  # the clean-up of the first one runs on
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stopping signal back until the block ends, then raise it (where :func:`install` ran)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            signum = _pending.pop()
            raise Interrupted(signum)


def _unraisable(args) -> None:
    """``sys.unraisablehook``: an :class:`Interrupted` raised where Python cannot pass it on (a weakref callback of
    importlib's module locks, a ``__del__``) is not printed as "Exception ignored in ..." with a traceback: the
    stop is recorded, and :func:`stop_if_asked` raises it again before anything is put in place."""
    if isinstance(args.exc_value, Interrupted):
        return
    _previous_unraisable(args)


_previous_unraisable = sys.unraisablehook


def install() -> None:
    """Raise :class:`Interrupted` on SIGINT, SIGTERM and SIGHUP in this process (main thread only).

    A signal that is ignored already stays ignored: ``nohup`` ignores SIGHUP, and a shell's
    background jobs ignore SIGINT.
    """
    global _previous_unraisable
    if sys.unraisablehook is not _unraisable:
        _previous_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    for name in STOPPING:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) not in (signal.SIG_IGN, _on_signal):
            signal.signal(number, _on_signal)


def settle() -> None:
    """The command has ended (its output in place or its error reported): ignore stopping signals from here on.

    Python's shutdown puts the default handlers back before the process exits, and a SIGINT or SIGTERM then
    would kill it with no line and exit -2 or -15, after a complete OUT was put in place. A signal now changes
    nothing, so the exit code stays the command's own."""
    global _settled
    _settled = True
    for name in STOPPING:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is _on_signal:
            signal.signal(number, signal.SIG_IGN)


def stop_if_asked() -> None:
    """Raise :class:`Interrupted` if a stopping signal arrived since :func:`install`: a last check before a step
    that cannot be undone (putting OUT in place). The exception the handler raised may not have reached us:
    C code that calls back into Python (an extension module's import) can swallow it."""
    if _received:
        raise Interrupted(_received[0])


def first_received() -> int | None:
    """The first stopping signal this process received since :func:`install`, or None."""
    return _received[0] if _received else None


def interrupt_behind(error: BaseException | None) -> KeyboardInterrupt | None:
    """The interrupt ``error`` stands for: itself, or its cause. Python 3.11 wraps an exception raised
    while a class is made (``__set_name__``, as during an import) in a RuntimeError."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return error
        error = error.__cause__
    return None


def signal_number(error: BaseException) -> int:
    return getattr(error, "signum", signal.SIGINT)


def exit_code(error: BaseException) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signal_number(error)


def describe(error: BaseException) -> str:
    """``interrupted`` for Ctrl-C, ``stopped by SIGTERM`` for the others."""
    number = signal_number(error)
    return "interrupted" if number == signal.SIGINT else f"stopped by {signal.Signals(number).name}"
