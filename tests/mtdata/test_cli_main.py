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
