"""``mtdata.cli.main``: the console-script entry point."""

from __future__ import annotations

import subprocess
import sys

# atexit handlers run before the interpreter's final collection: by then main() has frozen the heap.
PROBE = """
import atexit, gc, sys
import mtdata.cli
atexit.register(lambda: print("frozen objects:", gc.get_freeze_count()))
sys.argv = ["mtdata", *sys.argv[1:]]
mtdata.cli.main()
"""


def test_main_freezes_the_heap_before_the_interpreter_exits():
    for args, code in ((["--help"], 0), (["merge", "missing-kpt", "missing-seg", "out"], 2)):  # a success and a user error
        done = subprocess.run([sys.executable, "-c", PROBE, *args], check=False, capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        frozen = int(done.stdout.rsplit("frozen objects:", 1)[1])
        assert frozen > 10_000, done.stdout + done.stderr


import pytest  # noqa: E402


@pytest.mark.parametrize("package, args, expected", [
    ("mtdata", ["convert"], "error: mtdata convert: missing argument 'annotations' (see 'mtdata convert --help')"),
    ("mtdata", ["check", "d.yaml", "--workers", "abc"],
     "error: mtdata check: invalid value for '--workers': 'abc' is not a valid int range (see 'mtdata check --help')"),
    ("mtdata", ["merge", "a", "b", "c", "--zzz"], "error: mtdata merge: no such option: --zzz (see 'mtdata merge --help')"),
    ("mtdata", ["nosuch"], "error: mtdata: no such command 'nosuch' (see 'mtdata --help')"),
    ("mttrain", ["predict", "--conf", "x", "a.pt", "b"],
     "error: mttrain predict: invalid value for '--conf': 'x' is not a valid float (see 'mttrain predict --help')"),
    ("mttrain", ["fit"], "error: mttrain fit: missing DATA (a data.yaml): give it as an argument or as data=..."),
], ids=["missing-argument", "not-a-number", "unknown-option", "unknown-command", "mttrain-bad-value", "mttrain-missing"])
def test_a_usage_error_is_one_line_and_exit_2(package, args, expected):
    """typer draws usage errors as a box under the usage text; ours are one line like every other user error."""
    entry = "from mtdata.entry import main; main()" if package == "mtdata" else "from mttrain.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.argv = ['{package}', *sys.argv[1:]]; {entry}", *args],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == expected + "\n" and done.stdout == ""


def test_help_still_prints_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "mtdata", "convert", "--help"], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "--images" in done.stdout and done.stderr == ""
