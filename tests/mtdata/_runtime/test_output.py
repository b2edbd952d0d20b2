"""``mtdata._runtime.output``: small-file system calls, and the atomic output folder: its mode, the swap of --overwrite,
and the removal of temporary folders that killed runs left."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtdata._runtime.output import read_to_end, write_all, write_file


def test_write_all_and_read_to_end_move_more_than_a_pipe_holds():
    data = bytes(range(256)) * 20_000  # 5 MB: many partial writes and reads
    read_fd, write_fd = os.pipe()

    def writer():
        try:
            write_all(write_fd, data)
        finally:
            os.close(write_fd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert read_to_end(read_fd) == data
    finally:
        thread.join()
        os.close(read_fd)


def test_write_file_creates_or_fills(tmp_path):
    path = str(tmp_path / "a.txt")
    write_file(path, b"first, longer\n")
    write_file(path, b"second\n")  # create=True truncates
    assert Path(path).read_bytes() == b"second\n"
    with pytest.raises(FileNotFoundError):
        write_file(str(tmp_path / "missing.txt"), b"x", create=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a file whose size the filesystem does not report")
def test_merge_reads_a_file_whose_size_is_unknown():
    from mtdata.merge.chunk import _read

    # /proc files report size 0 but hold text: the one read takes all of it.
    assert _read("/proc/self/status").startswith(b"Name:")


def test_merge_reads_a_label_file_longer_than_one_read(tmp_path):
    from mtdata.merge.chunk import READ_BYTES, _read

    for size in (0, 10, READ_BYTES - 1, READ_BYTES, READ_BYTES + 1, 3 * READ_BYTES + 7):
        data = bytes(b"0123456789 \n"[i % 12] for i in range(size))
        (tmp_path / "a.txt").write_bytes(data)
        assert _read(str(tmp_path / "a.txt")) == data


# --- the atomic output folder and file --------------------------------------------------------

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from mtdata._runtime.output import atomic_output_dir
with atomic_output_dir(Path(sys.argv[1]), overwrite=True) as work:
    (work / "half.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _killed_run(out: Path) -> Path:
    """The temporary folder a run killed while writing ``out`` leaves (its process is gone)."""
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (left,) = _leftovers(out)
    return out.parent / left


def test_out_gets_the_mode_any_new_folder_or_file_gets(tmp_path):
    from mtdata._runtime.output import atomic_output_dir
    from mtdata.export import write_json_atomic

    previous = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "ds") as work:
            (work / "a.txt").write_text("a")
        write_json_atomic({"a": 1}, tmp_path / "a.json")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o755  # mkdtemp's 0700 kept other users out
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a killed run is proved gone from /proc")
def test_the_next_run_removes_the_temporary_folder_of_a_killed_run(tmp_path):
    from mtdata._runtime.output import atomic_output_dir

    out = tmp_path / "ds"
    left = _killed_run(out)
    assert (left / "run.json").is_file()
    with atomic_output_dir(out) as work:
        (work / "a.txt").write_text("a")
    assert _leftovers(out) == [] and (out / "a.txt").read_text() == "a"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a killed run is proved gone from /proc")
def test_a_temporary_folder_is_removed_only_when_its_run_is_proved_gone(tmp_path):
    from mtdata._runtime.output import remove_stale_temporaries

    out = tmp_path / "ds"
    dead = _killed_run(out)
    run = json.loads((dead / "run.json").read_text())
    me = {"pid": os.getpid(), "start": int(Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()[19])}
    variants = {  # name -> (run.json fields changed, removed?)
        "dead": ({}, True),
        "pid-reused": ({**me, "start": me["start"] + 1}, True),  # our pid, another start time: that run ended
        "other-boot": ({**me, "boot": "another-boot"}, True),
        "alive": (me, False),  # this test's own process
        "other-host": ({"host": run["host"] + "-other"}, False),
        "other-container": ({"pid_namespace": (run["pid_namespace"] or 0) + 1}, False),
        "other-out": ({"out": str(tmp_path / "other")}, False),
        "not-ours": ({"kind": "something else"}, False),
    }
    for name, (changes, _) in variants.items():
        folder = tmp_path / f".ds.tmp-{name}"
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({**run, **changes}))
    tag = dead.name[len(".ds.tmp-"):].rsplit("-", 1)[0]  # <pid>-<start>-<machine>, as the killed run named its folder
    pid, start, machine = tag.split("-")
    (tmp_path / f".ds.tmp-{tag}-killed-before-its-run-file").mkdir()  # removed: its name proves it
    (tmp_path / f".ds.tmp-{pid}-{start}-{machine[::-1]}-another-machine").mkdir()
    (tmp_path / f".ds.tmp-{tag}-killed-while-writing-it").mkdir()
    (tmp_path / f".ds.tmp-{tag}-killed-while-writing-it" / "run.json").write_text('{"kind": "mtdata temp')
    (tmp_path / f".ds.tmp-{tag}-not-empty").mkdir()
    (tmp_path / f".ds.tmp-{tag}-not-empty" / "a.txt").write_text("a")
    (tmp_path / ".ds.tmp-no-run-file").mkdir()
    (tmp_path / ".ds.tmp-broken").mkdir()
    (tmp_path / ".ds.tmp-broken" / "run.json").write_bytes(b"\xff{")
    (tmp_path / ".ds.tmp-a-link").symlink_to(dead, target_is_directory=True)

    removed = sorted(p.name for p in remove_stale_temporaries(out))
    expected = sorted([dead.name, f".ds.tmp-{tag}-killed-before-its-run-file", f".ds.tmp-{tag}-killed-while-writing-it"]
                      + [f".ds.tmp-{n}" for n, (_, gone) in variants.items() if gone])
    assert removed == expected
    assert _leftovers(out) == sorted([".ds.tmp-a-link", ".ds.tmp-broken", ".ds.tmp-no-run-file", f".ds.tmp-{tag}-not-empty",
                                      f".ds.tmp-{pid}-{start}-{machine[::-1]}-another-machine"]
                                     + [f".ds.tmp-{n}" for n, (_, gone) in variants.items() if not gone])


def _old_dataset(out: Path) -> None:
    out.mkdir()
    (out / "old.txt").write_text("old")


def _write_new(out: Path) -> None:
    from mtdata._runtime.output import atomic_output_dir

    with atomic_output_dir(out, overwrite=True) as work:
        (work / "new.txt").write_text("new")


def _exchange_works(folder: Path) -> bool:
    """Whether this system and file system can swap two folders in one step (asked of libc, not of mtdata)."""
    import ctypes

    a, b = folder / "probe-a", folder / "probe-b"
    a.mkdir(), b.mkdir()
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        return renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0  # AT_FDCWD, RENAME_EXCHANGE
    except (OSError, AttributeError):
        return False
    finally:
        a.rmdir(), b.rmdir()


def test_overwrite_swaps_in_one_step_so_out_is_never_missing(tmp_path, monkeypatch):
    if not _exchange_works(tmp_path):
        pytest.skip("this file system cannot swap two folders (renameat2 RENAME_EXCHANGE)")
    out = tmp_path / "ds"
    _old_dataset(out)
    seen = []
    real_rename = os.rename

    def watched(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        seen.append(out.is_dir())

    monkeypatch.setattr(os, "rename", watched)
    _write_new(out)
    assert all(seen), f"OUT was missing after {seen.count(False)} of {len(seen)} renames"
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and _leftovers(out) == []


@pytest.mark.parametrize("how", ["the swap fails", "no swap here: the second rename fails"])
def test_a_failure_while_replacing_out_keeps_the_old_out(tmp_path, monkeypatch, how):
    """Item 13: moving the old OUT aside, then the new one in, left no OUT when the second step failed."""
    from mtdata._runtime import output
    from mtdata.cli import app

    out = tmp_path / "ds"
    _old_dataset(out)
    real_rename = os.rename

    def failing_rename(src, dst, *args, **kwargs):
        moved = os.path.basename(src)
        if os.fspath(dst) == os.fspath(out) and (moved == "out" or moved.startswith(".ds.tmp-")):  # the new OUT (now, before)
            raise OSError(errno.EIO, "injected failure", os.fspath(src), None, os.fspath(dst))
        return real_rename(src, dst, *args, **kwargs)

    def failing_exchange(a, b):
        raise OSError(errno.EIO, "injected failure", os.fspath(a), None, os.fspath(b))

    monkeypatch.setattr(os, "rename", failing_rename)
    monkeypatch.setattr(output, "exchange", failing_exchange if how == "the swap fails" else lambda a, b: False, raising=False)
    result = CliRunner().invoke(app, ["synth", str(out), "--images", "4", "--size", "32", "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "injected failure" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"] and (out / "old.txt").read_text() == "old"
    assert _leftovers(out) == []
