"""``mtdata._runtime.worker_memory``: a worker keeps the memory it frees instead of faulting it in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate and free a 64 MB block a few times (over glibc's largest automatic threshold, 32 MB),
# counting the page faults of the last rounds.
FAULTS = """
import resource, sys
from mtdata._runtime.worker_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(64 << 20); del block  # the first round faults in any case
before = faults()
for _ in range(3):
    block = bytearray(64 << 20)
    del block
print(kept, faults() - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    kept, faults_kept = _faults("keep")
    _, faults_default = _faults("default")
    if kept != "True":
        pytest.skip("this C library has no mallopt")
    # 3 rounds of 64 MB are ~49k pages: by default glibc maps them afresh, and faults them, every round.
    assert faults_default > 40_000
    assert faults_kept < 1_000
