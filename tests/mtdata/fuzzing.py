"""Running hostile cases in a bounded child process, and the inputs strangers send, for the fuzz tests.

Each case runs in a forked child with an address-space limit and a deadline, so a case that
would hang or allocate gigabytes (an alias bomb, a FIFO read) is a counted failure instead of
a stuck or killed test run. A case passes when the function returns, or raises one of the
accepted error types with a one-line message; anything else (another exception, a
traceback, a timeout, a memory error, a crash) is a failure, named with its case.

``MTDATA_FUZZ_CASES`` multiplies the number of cases of every fuzz test (default 1): the
counts in the notes were taken with more cases than CI runs.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass

FUZZ_SCALE = max(1, int(os.environ.get("MTDATA_FUZZ_CASES", "1")))
MESSAGE_LIMIT = 600  # characters: an error or finding message is one short line, not a dump of the input


@dataclass
class Outcome:
    """What a case did: ``kind`` is ok, error (an accepted error), raised, timeout, memory or crash."""

    kind: str
    detail: str = ""
    value: object = None

    @property
    def failed(self) -> bool:
        return self.kind not in ("ok", "error")


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_bounded(fn: Callable[[], object], accepted: tuple[type[BaseException], ...], *, timeout: float = 20.0,
                memory: int = 1 << 30) -> Outcome:
    """Run ``fn()`` in a forked child: at most ``memory`` bytes more than the parent maps, at most ``timeout`` s.

    ``fn`` returns a small picklable value (kept in ``Outcome.value``). An exception of an
    ``accepted`` type whose message is one line of at most MESSAGE_LIMIT characters is kind
    ``error``; one with a longer or multi-line message is ``raised``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        code = 0
        try:
            limit = _vm_bytes() + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                result = Outcome("ok", value=fn())
            except accepted as e:
                text = str(e)
                ok = "\n" not in text and len(text) <= MESSAGE_LIMIT
                result = Outcome("error" if ok else "raised", f"{type(e).__name__}: {text[:300]!r}")
            except MemoryError:
                result = Outcome("memory", "MemoryError")
            except BaseException as e:  # noqa: BLE001  (a failure to count, whatever it is)
                result = Outcome("raised", f"{type(e).__name__}: {str(e)[:200]!r} at {traceback.format_exc().splitlines()[-3].strip()[:200]}")
            data = pickle.dumps(result)
            with os.fdopen(write_end, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    deadline_left = timeout
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], deadline_left)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return Outcome("timeout", f"over {timeout:g} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if chunks:
        return pickle.loads(b"".join(chunks))
    if os.WIFSIGNALED(status):
        return Outcome("crash", f"killed by signal {os.WTERMSIG(status)}")
    return Outcome("memory" if os.WEXITSTATUS(status) == 3 else "crash", f"exit status {os.WEXITSTATUS(status)}")


def report(name: str, failures: list[str], cases: int) -> str:
    """One summary line (printed by the fuzz tests: ``pytest -s`` shows the counts)."""
    line = f"fuzz {name}: {len(failures)} failures in {cases} cases"
    print(line + ("".join(f"\n  {f}" for f in failures[:20]) if failures else ""))
    return line


# --- what strangers write ------------------------------------------------------------------

NUMBER_TOKENS = [
    "0", "1", "0.5", "-0.0", "+.5", "5.", "1e-3", "1E+0", "0.1_5", "1_0", "\u0660.\u0665", "\u0661", "\uff10.5", "\u00bd",
    "nan", "NaN", "-inf", "Infinity", "inf", "1e308", "-1e308", "1e309", "4.9e-324", "0x10", "0b1", "1,5", "1.2.3",
    "nan(1)", "", ".", "-", "e5", "2", "3", "-1", "1.5", "7", "99999999999999999999999", "0.999999", "1.000001",
    "1.004", "-0.004", "1.02", "\x00", "\ufeff0.5", "0.5\u200b", "٫", "None", "null", "True",
]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\u00a0", "\u2003", " \x0b", "\x0c", "\x1c", "\u2028", "\x85"]


def hostile_label_text(rng, layout) -> str:
    """A label file's text: rows valid for ``layout`` mixed with rows strangers write."""
    rows = []
    for _ in range(int(rng.integers(0, 12))):
        kind = rng.random()
        if kind < 0.45:
            rows.append(valid_row(rng, layout))
        elif kind < 0.8:  # a valid row with some tokens swapped for odd ones
            tokens = valid_row(rng, layout).split()
            for _ in range(int(rng.integers(1, 3))):
                tokens[int(rng.integers(0, len(tokens)))] = str(rng.choice(NUMBER_TOKENS))
            rows.append(_join(rng, tokens))
        elif kind < 0.9:  # random tokens of a random count
            rows.append(_join(rng, [str(rng.choice(NUMBER_TOKENS)) for _ in range(int(rng.integers(1, 40)))]))
        elif kind < 0.95:
            rows.append("")
        else:  # a long row of one repeated value, or a megabyte-long token
            rows.append("0 " + "0.5 " * int(rng.integers(1, 5000)) if rng.random() < 0.5 else "1 " + "9" * 100_000)
    end = str(rng.choice(["\n", "\r\n", "\r", "", "\n\n"]))
    return ("\ufeff" if rng.random() < 0.05 else "") + end.join(rows) + (end if rows else "")


def _join(rng, tokens: list[str]) -> str:
    """Tokens joined by single spaces mostly; now and then by other whitespace, some of it line breaks to splitlines()."""
    if rng.random() < 0.8:
        return " ".join(tokens)
    return "".join(t + (str(rng.choice(SEPARATORS)) if rng.random() < 0.2 else " ") for t in tokens[:-1]) + (tokens[-1] if tokens else "")


def valid_row(rng, layout) -> str:
    """A row that parses for ``layout`` (coordinates a little outside [0, 1] sometimes: clipped)."""
    def coord() -> str:
        v = rng.uniform(-0.012, 1.012) if rng.random() < 0.1 else rng.uniform(0, 1)
        return f"{v:.{int(rng.integers(1, 9))}f}"

    cls = int(rng.integers(0, layout.num_classes))
    polygon = [coord() for _ in range(2 * int(rng.integers(3, 9)))]
    if layout.task == "pose":
        box = [f"{rng.uniform(0.2, 0.8):.4f}", f"{rng.uniform(0.2, 0.8):.4f}", f"{rng.uniform(0.01, 0.3):.4f}", f"{rng.uniform(0.01, 0.3):.4f}"]
        kpts = []
        for _ in range(layout.num_keypoints):
            kpts += [coord(), coord()] + ([str(int(rng.integers(0, 3)))] if layout.keypoint_dims == 3 else [])
        return " ".join([str(cls), *box, *kpts])
    if layout.task == "multitask" and cls in layout.keypoint_classes:
        kpts = []
        for _ in range(layout.num_keypoints):
            v = int(rng.integers(0, 3))
            kpts += [coord(), coord(), str(v)] if v or rng.random() < 0.5 else ["0", "0", "0"]
        return " ".join([str(cls), *kpts, *polygon])
    return " ".join([str(cls), *polygon])


def run_cases(cases: list, check: Callable[[object], list[str]], accepted: tuple[type[BaseException], ...] = (), *,
              batch: int = 10, timeout: float = 20.0, memory: int = 1 << 30) -> list[str]:
    """Failures of ``check(case)`` over every case (it returns a list of broken promises, empty when it holds).

    Cases run ``batch`` to a child; a batch that times out, runs out of memory or crashes is run
    again case by case, so each failure names its case.
    """
    failures = []

    def one(case_index: int) -> list[str]:
        outcome = run_bounded(lambda: _checked(check, cases[case_index], accepted), (), timeout=timeout, memory=memory)
        if outcome.failed:
            return [f"case {case_index}: {outcome.kind} {outcome.detail}"]
        return [f"case {case_index}: {p}" for p in outcome.value]

    for start in range(0, len(cases), batch):
        indices = list(range(start, min(start + batch, len(cases))))
        outcome = run_bounded(lambda: [(i, _checked(check, cases[i], accepted)) for i in indices], (),
                              timeout=timeout * len(indices), memory=memory)
        if outcome.failed:
            for i in indices:
                failures += one(i)
            continue
        for i, problems in outcome.value:
            failures += [f"case {i}: {p}" for p in problems]
    return failures


def _checked(check, case, accepted) -> list[str]:
    try:
        return list(check(case))
    except accepted as e:
        text = str(e)
        return [] if "\n" not in text and len(text) <= MESSAGE_LIMIT else [f"{type(e).__name__} over one short line: {text[:200]!r}"]
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001  (a traceback a user would see: a failure to count)
        where = traceback.format_exc().splitlines()[-3].strip()[:160]
        return [f"{type(e).__name__}: {str(e)[:160]!r} at {where}"]
