"""One way to run a command's work in parallel: a function mapped over chunks by worker processes, results in order.

``mtdata check`` (chunks of image and label files) and ``mtdata merge`` (chunks of images) both run on
:class:`WorkerPool`. With one worker (or on one core) the chunks run in this process, in the same order,
so a result never depends on the number of workers.

The workers are forked on Linux: they inherit the loaded modules and start in milliseconds, where a
spawned worker imports numpy, polars, cv2 and shapely again (20k-image merge benchmark, 2 shared cores,
3 runs alternated, medians: spawned workers cost 50% more CPU, 2.53 -> 3.79 s, and 56% more time).
Elsewhere the platform's default start method is used (macOS frameworks are not fork-safe once
threads run; Windows has no fork).

The interruption contract (:mod:`mtdata._runtime.interrupts`): every worker dies with this process
(:func:`mtdata._runtime.forking.become_worker`: SIGKILL when the parent ends, SIGINT ignored, SIGTERM and
SIGHUP at their defaults), and leaving the ``with`` block, by error or interrupt too, cancels the chunks not
started and waits for the running ones to end, so no worker still writes into a folder that the caller's
clean-up is removing.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from mtdata._runtime.forking import become_worker, parent_pid


def _start_method() -> str | None:
    """``fork`` on Linux, else the platform's default (None)."""
    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else None


_shared: Any = None  # in a worker: the pool's ``shared`` value, set once by _start_worker


def _start_worker(parent: int, setup: Callable[[], None] | None, shared: Any) -> None:
    global _shared
    become_worker(parent)
    _shared = shared
    if setup is not None:
        setup()


def _call_with_shared(function: Callable[..., Any], *args: Any) -> Any:
    return function(_shared, *args)


class WorkerPool:
    """``workers`` processes that map a picklable function over chunks; in this process when ``workers`` < 2.

    Use as a context manager (or call :meth:`close`). ``setup`` (a module-level function, no arguments)
    runs once in each worker before its first chunk: the command's own readiness (imports, memory
    settings). It does not run when the chunks run in this process.

    ``shared``, when given, is handed to every call as its first argument: a large read-only input (a
    split's annotation table) that the chunks only index. Forked workers inherit it with the rest of
    this process's memory, so nothing is pickled, however large; where workers are spawned it is pickled
    once per worker, not once per chunk.

    ``works_too``: this process runs the first chunk itself while ``workers - 1`` processes run the rest
    (for a caller with nothing else to do meanwhile: one fork fewer, and no core left idle).

    Example:
        >>> with WorkerPool(1) as pool:
        ...     list(pool.map(abs, [-2, 3, -4]))
        [2, 3, 4]
    """

    def __init__(self, workers: int, setup: Callable[[], None] | None = None, shared: Any = None,
                 works_too: bool = False):
        self.workers = max(1, workers)
        self._shared, self._works_too = shared, works_too and self.workers > 1
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 1:
            context = multiprocessing.get_context(_start_method())
            processes = self.workers - 1 if self._works_too else self.workers
            self._executor = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                                                 initargs=(parent_pid(), setup, shared))

    @property
    def parallel(self) -> bool:
        """True when the chunks run in worker processes."""
        return self._executor is not None

    def start(self) -> WorkerPool:
        """Start the processes now (they run ``setup`` while the caller prepares the chunks); else they start
        with the first :meth:`map`."""
        if self._executor is not None:
            self._executor.submit(int)
        return self

    def map(self, function: Callable[..., Any], *chunks: Iterable) -> Iterator[Any]:
        """``function(*args)`` for the arguments of each chunk, in the chunks' order (as builtin ``map``).

        A chunk's exception is raised here, as itself (its type, message and attributes: it must pickle),
        when its result is reached; the chunks after it are cancelled when the pool is closed.
        """
        if self._shared is None:
            here = there = function
        else:  # a worker reads its inherited copy (_start_worker): only the function's name is pickled
            here, there = functools.partial(function, self._shared), functools.partial(_call_with_shared, function)
        if self._executor is None:
            return map(here, *chunks)
        if self._works_too:
            return self._first_here(here, there, list(zip(*chunks)))
        return self._executor.map(there, *chunks)

    def _first_here(self, here: Callable[..., Any], there: Callable[..., Any], chunks: list[tuple]) -> Iterator[Any]:
        """The first chunk's result by ``here`` in this process, the others' by ``there`` in the workers."""
        if not chunks:
            return
        futures = [self._executor.submit(there, *args) for args in chunks[1:]]
        yield here(*chunks[0])
        for future in futures:
            yield future.result()

    def close(self) -> None:
        """Cancel the chunks not started and wait for the workers to exit (again: a no-op)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
