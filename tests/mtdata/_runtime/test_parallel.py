"""``WorkerPool``: results in the chunks' order, a worker's error raised as itself, and a stopped command
leaves no worker and no temporary folder (real processes throughout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtdata._runtime.forking import can_fork
from mtdata._runtime.parallel import WorkerPool
from mtdata.errors import OutputError
from tests.mtdata.writing import temp_beside

REPO = Path(__file__).resolve().parents[3]


def _late_for_early_chunks(value: int) -> tuple[int, int]:
    time.sleep(0.02 * (4 - value % 4))  # the first chunks finish last
    return value * value, os.getpid()


def _fail_on_three(value: int) -> int:
    if value == 3:
        raise OutputError("cannot write this label file: No space left on device", file="labels/val/a.txt")
    return value


def _mark_setup() -> None:
    os.environ["MT_TEST_SET_UP"] = "yes"


def _set_up(_: int) -> str | None:
    return os.environ.get("MT_TEST_SET_UP")


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "two-workers"])
def test_results_come_in_the_chunks_order(workers):
    with WorkerPool(workers) as pool:
        got = list(pool.map(_late_for_early_chunks, range(12)))
    assert [square for square, _ in got] == [v * v for v in range(12)]
    pids = {pid for _, pid in got}
    assert (os.getpid() in pids) == (workers == 1)


def test_arguments_of_several_iterables_are_zipped_as_by_map():
    with WorkerPool(2) as pool:
        assert list(pool.map(divmod, [7, 9, 11], [2, 4, 3])) == [(3, 1), (2, 1), (3, 2)]


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "two-workers"])
def test_a_chunks_error_is_raised_as_itself(workers):
    with WorkerPool(workers) as pool, pytest.raises(OutputError) as raised:
        list(pool.map(_fail_on_three, range(8)))
    assert str(raised.value) == "labels/val/a.txt: cannot write this label file: No space left on device"
    assert raised.value.file == "labels/val/a.txt"


def _square_from_shared(table: dict, key: str) -> tuple[int, int, int]:
    return table[key] ** 2, id(table), os.getpid()


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "two-workers"])
def test_shared_comes_first_to_every_chunk(workers):
    table = {k: i for i, k in enumerate("abcdef")}
    with WorkerPool(workers, shared=table) as pool:
        got = list(pool.map(_square_from_shared, list("fedcba")))
    assert [square for square, _, _ in got] == [25, 16, 9, 4, 1, 0]
    assert all(pid != os.getpid() for _, _, pid in got) == (workers == 2)


@pytest.mark.skipif(not can_fork(), reason="forked workers inherit shared")
def test_forked_workers_inherit_shared_instead_of_unpickling_it():
    table = {k: i for i, k in enumerate("abcdef")}
    with WorkerPool(2, shared=table) as pool:
        got = list(pool.map(_square_from_shared, list("abcdef") * 4))
    # the inherited copy sits at this process's address (the fork copied the memory); an unpickled one could
    # not: the inherited original still occupies it, held by this process's frames as they were at the fork
    assert {table_id for _, table_id, _ in got} == {id(table)}


def test_works_too_runs_the_first_chunk_here_and_the_rest_in_workers():
    with WorkerPool(2, works_too=True) as pool:
        plain = list(pool.map(_late_for_early_chunks, [3, 4, 5]))
    with WorkerPool(2, shared={"a": 3, "b": 4, "c": 5}, works_too=True) as pool:
        with_shared = list(pool.map(_square_from_shared, ["a", "b", "c"]))
    for got in (plain, with_shared):
        assert [g[0] for g in got] == [9, 16, 25]
        pids = [g[-1] for g in got]
        assert pids[0] == os.getpid() and all(pid != os.getpid() for pid in pids[1:])


def test_works_too_raises_the_first_chunks_error_here():
    with WorkerPool(2, works_too=True) as pool, pytest.raises(OutputError):
        list(pool.map(_fail_on_three, [3, 1, 2]))


def test_setup_runs_in_each_worker_and_not_in_this_process():
    os.environ.pop("MT_TEST_SET_UP", None)
    with WorkerPool(2, setup=_mark_setup).start() as pool:
        assert set(pool.map(_set_up, range(6))) == {"yes"}
    with WorkerPool(1, setup=_mark_setup) as pool:
        assert list(pool.map(_set_up, range(2))) == [None, None]


# --- a stopped command leaves no worker ------------------------------------------------------------

COMMAND = """
import sys, time
from pathlib import Path
from mtdata._runtime import interrupts
from mtdata._runtime.output import atomic_output_dir
from mtdata._runtime.parallel import WorkerPool

def slow(value):
    time.sleep(0.2)
    return value

interrupts.install()
try:
    with atomic_output_dir(Path(sys.argv[1])) as work, WorkerPool(2) as pool:
        for n, value in enumerate(pool.map(slow, range(400))):
            if n == 1:
                print("running", flush=True)
except KeyboardInterrupt as stopped:
    print(interrupts.describe(stopped), file=sys.stderr)
    sys.exit(interrupts.exit_code(stopped))
"""


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (the workers inherit it)."""
    needle = marker.encode() + b"\0"
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux") or not can_fork(), reason="finds the workers in /proc")
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopping_signal_leaves_no_worker_and_no_temporary_folder(tmp_path, signum, code):
    marker = f"MT_TEST_PARALLEL={os.getpid()}-{signum}"
    env = {**os.environ, "PYTHONPATH": str(REPO), marker.split("=")[0]: marker.split("=")[1]}
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", COMMAND, str(out)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "running"
        assert len(_processes_with(marker)) == 3  # the command and its two workers
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == code
    assert stderr.strip().splitlines()[-1] == ("interrupted" if signum == signal.SIGINT else "stopped by SIGTERM")
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _processes_with(marker) == []
    assert not out.exists() and temp_beside(out) == []
