"""Interrupting every writing command with SIGINT, SIGTERM and SIGKILL at random (seeded) moments.

Each trial starts ``python -m mtdata <command>`` on inputs large enough to take a moment (convert runs a
forked worker and a helper process, merge and check --fix run process pools), sends one signal after a random
delay, and checks what is left:

- OUT is absent or complete (equal to an uninterrupted run's), never half-written; the inputs are
  byte-identical at the end;
- after SIGINT or SIGTERM: exit 130 or 143 with one line on stderr (or 0 when the command finished
  first), no temporary folder beside OUT, no process of the run alive (these two signals are sent
  once the process has installed its handlers, ~30 ms after it started: before that no mtdata
  code has run);
- after SIGKILL: no process of the run alive a second later, and the next run removes the temporary
  folder the killed one left.

Processes of a run are found by a marker in their environment (workers inherit it).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.mtdata.writing import commands as writing_commands
from tests.mtdata.writing import inputs_digest, make_inputs, temp_beside, tree_digest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a run's processes in /proc"),
]

SEED = 16
TRIALS = 60
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
SECONDS = 75  # the trials stop early past this budget (a loaded machine); each command and signal is tried once at least
MARKER = "MTDATA_INTERRUPT_TRIAL"
HANG_SECONDS = 10  # a run still going this long after its signal hangs
HANDLERS_SECONDS = 5.0  # python -m mtdata installs its signal handlers within this (a loaded machine starts slowly)


def _run_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def _wait_until_gone(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        left = _run_processes(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _wait_for_handlers(pid: int, seconds: float) -> None:
    """Until process ``pid`` catches SIGTERM (``python -m mtdata`` installed its handlers), ends, or ``seconds`` pass.

    Before that only the interpreter has run (~30 ms): no mtdata code, nothing to clean up.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.002)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """4,200 COCO images without pixels (convert runs a forked worker and a helper), and 480 with (check --fix, export)."""
    return make_inputs(tmp_path_factory.mktemp("interrupt"), coco_images=4200, synth_images=480)


def _start(argv: list[str], marker: str, cwd: Path, stderr) -> subprocess.Popen:
    env = {**os.environ, MARKER: marker}
    return subprocess.Popen([sys.executable, "-m", "mtdata", *argv], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)


def _kill_all(marker: str) -> None:
    """Stop what a broken run left, so that it cannot disturb the next trial."""
    for pid in _run_processes(marker):
        os.kill(pid, signal.SIGKILL)
    _wait_until_gone(marker, 5.0)


def test_interrupting_every_writing_command_leaves_no_half_output_no_temp_and_no_worker(inputs):
    rng = random.Random(SEED)
    root = inputs["root"]
    sources = inputs_digest(inputs)
    commands = writing_commands(inputs, synth_images=480)
    reference: dict[str, str | None] = {}
    seconds: dict[str, float] = {}
    outs: dict[str, Path] = {}
    for name, command in commands.items():  # an uninterrupted run: what OUT must be, and how long it takes
        folder = root / "outs" / name.replace(" ", "").replace("-", "")
        folder.mkdir(parents=True)
        outs[name] = folder / command.out_name
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mtdata", *command.argv(outs[name])], cwd=root,
                              capture_output=True, timeout=120, check=False)
        seconds[name] = time.monotonic() - start
        assert done.returncode == 0, (name, done.stderr.decode()[-2000:])
        reference[name] = tree_digest(outs[name])

    counts: Counter[str] = Counter()
    problems: list[str] = []
    budget = time.monotonic() + SECONDS
    plan = [(name, sig) for name in commands for sig in SIGNALS]
    for trial in range(TRIALS):
        if time.monotonic() > budget:
            break
        name, sig = plan[trial % len(plan)]
        command, out = commands[name], outs[name]
        overwrite = command.overwrite and out.exists()
        if out.exists() and not overwrite:
            shutil.rmtree(out)
        marker = f"{SEED}-{trial}"
        delay = rng.uniform(0.0, 1.1) * seconds[name]
        errors = root / "stderr.txt"
        with errors.open("wb") as stderr:  # a file, not a pipe: a process left behind cannot hold the test up
            started = time.monotonic()
            process = _start(command.argv(out, overwrite), marker, root, stderr)
            if sig != signal.SIGKILL:
                _wait_for_handlers(process.pid, max(delay, HANDLERS_SECONDS))
            time.sleep(max(0.0, started + delay - time.monotonic()))
            process.send_signal(sig)
            counts["trials"] += 1
            what = f"trial {trial}: {name} {'--overwrite ' if overwrite else ''}{sig.name} after {delay:.2f} s"
            try:
                code = process.wait(timeout=HANG_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_all(marker)
                process.wait()
                counts["still running 10 s after the signal"] += 1
                problems.append(f"{what}: still running {HANG_SECONDS} s later")
                code = None
        what += f" (exit {code})"
        if code == 0:
            counts["finished first"] += 1
        if tree_digest(out) not in (None, reference[name]):
            counts["half-written OUT"] += 1
            problems.append(f"{what}: OUT is neither absent nor complete")
            shutil.rmtree(out)
        if sig == signal.SIGKILL:
            left = _wait_until_gone(marker, 1.0)
            if left:
                counts["SIGKILL: processes alive 1 s later"] += 1
                problems.append(f"{what}: processes {left} outlive their parent")
                _kill_all(marker)
            temp = temp_beside(out)
            if temp:
                counts["SIGKILL: temp left"] += 1
                if out.exists() and not command.overwrite:
                    shutil.rmtree(out)
                again = subprocess.run([sys.executable, "-m", "mtdata", *command.argv(out, out.exists())], cwd=root,
                                       capture_output=True, timeout=120, check=False)
                if again.returncode != 0 or temp_beside(out):
                    counts["SIGKILL: temp kept by the next run"] += 1
                    problems.append(f"{what}: the next run (exit {again.returncode}) left {temp_beside(out)} (from {temp})")
        else:
            lines = errors.read_bytes().decode(errors="replace").strip().splitlines()
            expected = 128 + sig
            if code not in (0, expected):
                counts[f"{sig.name}: exit not {expected}"] += 1
                problems.append(f"{what}: stderr {lines[-3:]}")
            elif code == expected and len(lines) != 1:
                counts[f"{sig.name}: not one line"] += 1
                problems.append(f"{what}: {len(lines)} lines on stderr: {lines[:3]}")
            if temp_beside(out):
                counts[f"{sig.name}: temp left"] += 1
                problems.append(f"{what}: left {temp_beside(out)}")
            left = _wait_until_gone(marker, 0.5)
            if left:
                counts[f"{sig.name}: processes alive after exit"] += 1
                problems.append(f"{what}: processes {left} outlive their parent")
                _kill_all(marker)
        for temp in temp_beside(out):  # counted once: the next trial starts clean
            shutil.rmtree(out.parent / temp, ignore_errors=True)

    changed = [name for name, digest in sources.items() if inputs_digest(inputs)[name] != digest]
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"\ninterruption trials (seed {SEED}): {summary}; uninterrupted runs: "
          + ", ".join(f"{name} {t:.2f} s" for name, t in seconds.items()))
    assert not changed, f"inputs modified: {changed}"
    assert not problems, f"{summary}\n" + "\n".join(problems[:20])
    assert counts["trials"] >= len(plan), f"only {counts['trials']} trials in {SECONDS} s: {summary}"
