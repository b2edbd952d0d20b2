"""``mtdata._runtime.interrupts``, and the command line stopped by a signal: SIGTERM and SIGHUP as Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HANDLERS = """
import os, signal, time
from mtdata._runtime import interrupts
interrupts.install()
me = os.getpid()
with interrupts.deferred():
    os.kill(me, signal.SIGTERM)
    time.sleep(0.05)
    print("deferred: not cut short", flush=True)
"""


def _as_from_a_terminal() -> None:
    """In the child, before it runs: the stopping signals at their defaults, as a shell starts a command. The test
    run itself may be under ``nohup`` (SIGHUP ignored), and an ignored signal stays ignored by design."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=_as_from_a_terminal)


def test_a_deferred_signal_is_raised_when_the_block_ends():
    done = _python(HANDLERS)
    assert done.stdout.splitlines() == ["deferred: not cut short"]
    assert "Interrupted: SIGTERM" in done.stderr


def test_a_repeat_during_the_clean_up_is_ignored_and_a_third_stops():
    done = _python("""
import os, signal, time
from mtdata._runtime import interrupts
interrupts.install()
me = os.getpid()
try:
    os.kill(me, signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt as first:
    os.kill(me, signal.SIGTERM)  # pressed again while cleaning up
    time.sleep(0.05)
    print("cleaned up after", first, interrupts.exit_code(first), flush=True)
    try:
        os.kill(me, signal.SIGHUP)
        time.sleep(5)
    except KeyboardInterrupt as third:
        print("third:", third, interrupts.exit_code(third))
""")
    assert done.stdout.splitlines() == ["cleaned up after SIGINT 130", "third: SIGHUP 129"], done.stderr


def test_an_ignored_signal_stays_ignored():
    done = _python("""
import signal
signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
from mtdata._runtime import interrupts
interrupts.install()
print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
""")
    assert done.stdout.split() == ["True", "True"], done.stderr


def _temporary(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-")]


def _start_synth(out: Path) -> subprocess.Popen:
    """A synth run that takes a while, once it has begun writing (its temporary folder exists)."""
    process = subprocess.Popen([sys.executable, "-m", "mtdata", "synth", str(out), "--images", "3000", "--size", "64"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 60
    while not _temporary(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None and _temporary(out), "synth ended before it wrote anything"
    return process


@pytest.mark.parametrize(("sig", "words"), [
    (signal.SIGINT, "interrupted; nothing was written"),
    (signal.SIGTERM, "stopped by SIGTERM; nothing was written"),
    (signal.SIGHUP, "stopped by SIGHUP; nothing was written"),
])
def test_a_stopping_signal_cleans_up_and_says_so_in_one_line(tmp_path, sig, words):
    out = tmp_path / "synth"
    process = _start_synth(out)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, err
    assert err.strip().splitlines() == [f"error: {words}"]
    assert os.listdir(tmp_path) == []


def test_the_next_run_removes_what_a_killed_run_left(tmp_path):
    out = tmp_path / "synth"
    process = _start_synth(out)
    process.kill()
    process.communicate(timeout=60)
    left = _temporary(out)
    assert left
    done = subprocess.run([sys.executable, "-m", "mtdata", "synth", str(out), "--images", "4", "--size", "32"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["synth"]


def test_an_interrupt_once_out_is_in_place_says_it_was_written(tmp_path, monkeypatch):
    """Removing the old OUT (after the swap) is the last step: stopped there, the new OUT is complete, and the line says so."""
    import shutil

    from mtdata.cli import app

    out = tmp_path / "synth"
    assert CliRunner().invoke(app, ["synth", str(out), "--images", "4", "--size", "32"]).exit_code == 0
    real = shutil.rmtree

    def interrupted(path, *args, **kwargs):
        real(path, *args, **kwargs)
        if Path(path).name.startswith(".synth.tmp-"):
            raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    result = CliRunner().invoke(app, ["synth", str(out), "--images", "5", "--size", "32", "--overwrite"])
    assert result.exit_code == 130
    assert result.stderr.strip() == f"error: interrupted; {out} was written in full before it stopped"
    assert len(list((out / "images" / "train").iterdir())) == 5


def test_a_signal_whose_exception_was_swallowed_still_keeps_out_from_being_replaced(tmp_path):
    """C code calling back into Python (an extension module's import) can swallow the handler's exception."""
    done = _python(f"""
import os, signal
from pathlib import Path
from mtdata._runtime import interrupts
from mtdata._runtime.output import atomic_output_dir
interrupts.install()
try:
    with atomic_output_dir(Path({str(tmp_path / "out")!r})) as work:
        (work / "a.txt").write_text("a")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:
            pass  # swallowed, as such C code does
        print("went on", flush=True)
except KeyboardInterrupt as e:
    print("stopped:", e)
""")
    assert done.stdout.splitlines() == ["went on", "stopped: SIGTERM"], done.stderr
    assert os.listdir(tmp_path) == []


def test_a_signal_python_cannot_pass_on_prints_no_traceback(tmp_path):
    """A signal whose handler runs inside a weakref callback (as importlib's module locks have, found by the
    interruption test: 7 lines of "Exception ignored in ..." on stderr) is not reported as an unraisable
    exception; the stop still holds: OUT is not put in place. Any other unraisable exception is still reported."""
    done = _python(f"""
import gc, os, signal, weakref
from pathlib import Path
from mtdata._runtime import interrupts
from mtdata._runtime.output import atomic_output_dir
class Thing: pass
def stop(ref): os.kill(os.getpid(), signal.SIGTERM)  # the handler raises in here: Python cannot pass it on
def fail(ref): raise ValueError("an ordinary bug")
interrupts.install()
other = Thing(); other_ref = weakref.ref(other, fail); del other; gc.collect()
try:
    with atomic_output_dir(Path({str(tmp_path / "out")!r})) as work:
        (work / "a.txt").write_text("a")
        thing = Thing(); ref = weakref.ref(thing, stop); del thing; gc.collect()
        print("went on", flush=True)
except KeyboardInterrupt as e:
    print("stopped:", e)
""")
    assert done.stdout.splitlines() == ["went on", "stopped: SIGTERM"], done.stderr
    assert "Interrupted" not in done.stderr and "ValueError: an ordinary bug" in done.stderr
    assert os.listdir(tmp_path) == []


def test_a_signal_while_python_shuts_down_after_the_command_changes_nothing():
    """Python's shutdown puts the default handlers back before it frees the modules: a SIGINT then killed a
    finished ``mtdata export`` with exit -2 and no line (found by the interruption test in CI). Once the command
    has ended, the stopping signals are ignored at the OS level, which the shutdown leaves as it is."""
    done = _python("""
import os, signal, sys
from mtdata.cli import main
sys.argv = ["mtdata", "--help"]
try:
    main()
except SystemExit as done:
    print("exit", done.code)
print("ignored:", all(signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)))
os.kill(os.getpid(), signal.SIGINT)
os.kill(os.getpid(), signal.SIGTERM)
print("still here")
""")
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.splitlines()[-3:] == ["exit 0", "ignored: True", "still here"], done.stdout[-500:]
    assert done.stderr == ""
