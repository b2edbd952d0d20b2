"""``ForkedCall``: a forked child's result, its errors and the parent's hand-over come back whole."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mtdata.errors import OutputError
from mtdata.forked import ForkedCall, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux with two cores or more")


def test_result_sees_the_parents_memory_and_what_was_sent():
    big = np.arange(1_000_000)  # the child reads the parent's memory as it was at the fork
    call = ForkedCall(lambda receive: (os.getpid(), int(big.sum()), receive()))
    call.send({"written": np.array([True, False])})
    pid, total, received = call.result()
    assert pid != os.getpid() and total == int(big.sum())
    assert received["written"].tolist() == [True, False]


def test_a_large_result_comes_back_whole():
    call = ForkedCall(lambda receive: np.arange(3_000_000, dtype=np.float64))  # 24 MB: many pipe buffers
    assert np.array_equal(call.result(), np.arange(3_000_000, dtype=np.float64))


@pytest.mark.parametrize("error", [
    OutputError("cannot write this label file: No space left on device", file="labels/val/a.txt"),
    ValueError("plain"),
], ids=["mtdata-error-keeps-its-file", "other"])
def test_the_childs_error_is_raised_in_the_parent(error):
    def fail(receive):
        raise error

    with pytest.raises(type(error)) as raised:
        ForkedCall(fail).result()
    assert str(raised.value) == str(error)


def test_an_error_that_does_not_pickle_keeps_its_words():
    class Odd(Exception):
        def __init__(self, a, b):  # pickle re-creates it with one argument: fails
            super().__init__(f"{a}-{b}")

    def fail(receive):
        raise Odd(1, 2)

    with pytest.raises(RuntimeError, match="Odd: 1-2"):
        ForkedCall(fail).result()


def test_a_child_that_dies_is_an_error_not_a_hang():
    call = ForkedCall(lambda receive: os._exit(3))
    with pytest.raises(RuntimeError, match="died without a result"):
        call.result()


def test_kill_stops_a_waiting_child():
    call = ForkedCall(lambda receive: receive())  # would wait for send() forever
    pid = call.pid
    call.kill()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: nothing left behind
    call.kill()  # again: harmless
