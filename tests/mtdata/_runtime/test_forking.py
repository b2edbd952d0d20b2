"""Every kind of worker process of mtdata dies with its parent and leaves Ctrl-C to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mtdata._runtime.forking import can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux with two cores or more")


# --- children die with their parent -------------------------------------------------------------

PARENT = """
import os, signal, subprocess, sys, threading, time
kind = sys.argv[1]
if kind == "convert worker":  # a pool whose caller runs the first chunk itself: one worker
    from mtdata._runtime.parallel import WorkerPool
    pool = WorkerPool(2, works_too=True)
    threading.Thread(target=lambda: list(pool.map(time.sleep, [60, 60])), daemon=True).start()
elif kind == "helper":
    from mtdata._runtime.forking import python_child
    subprocess.Popen(python_child("import time; time.sleep(60)"))
elif kind == "merge pool":
    from mtdata.merge.dataset import _start_pool
    pool = _start_pool(2)
    pool.map(time.sleep, [60, 60])
elif kind == "check pool":
    import mtdata.check.dataset as check
    def busy(args):  # in __main__: the pool pickles it by name, and its forked workers have it
        time.sleep(60)
    check._check_chunk = busy  # check's own pool, kept busy (a lambda would not pickle: the pool would end)
    threading.Thread(target=check._run, args=([None] * 512, None, {}, 2, None), daemon=True).start()
# the children start and finish their set-up: wait for them rather than a fixed time, which a loaded
# machine outruns (a pool spawns its workers only once work is submitted, after the module's imports)
deadline = time.monotonic() + 30
def children():
    mine = str(os.getpid()).encode()
    found = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[1] == mine:
                    found.append(p)
        except (OSError, IndexError):
            pass
    return found
while len(children()) < (2 if kind.endswith("pool") else 1) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)  # past their set-up (a worker's initializer sets its death signal)
print("ready", flush=True)
time.sleep(0.5)  # the test lists them
os.kill(os.getpid(), signal.SIGKILL)
"""


def _state(pid: int) -> tuple[bytes, int] | None:
    """(state, parent pid) of a process, from /proc; None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state[0] not in (b"Z", b"X")


def _children(parent: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and (_state(int(p)) or (b"", 0))[1] == parent]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("kind", ["convert worker", "helper", "merge pool", "check pool"])
def test_children_die_with_a_parent_killed_outright(kind):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, kind], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert parent.stdout.readline().strip() == "ready"
    children = [pid for pid in _children(parent.pid) if _alive(pid)]
    parent.stdout.close()
    assert parent.wait(timeout=30) == -signal.SIGKILL
    assert children, f"{kind}: no child process started"
    deadline = time.monotonic() + 2.0
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [p for p in children if _alive(p)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{kind}: {left} outlived their parent"


def _sends_itself_ctrl_c(word: str) -> str:
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the whole process group: the parent handles it
    return word


def test_python_child_passes_its_arguments_and_a_pool_worker_ignores_ctrl_c():
    from mtdata._runtime.forking import python_child
    from mtdata._runtime.parallel import WorkerPool

    done = subprocess.run(python_child("import sys; print(sys.argv[1:])", "a", "b c"), capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['a', 'b c']"
    with WorkerPool(2) as pool:
        assert list(pool.map(_sends_itself_ctrl_c, ["still here", "and here"])) == ["still here", "and here"]
