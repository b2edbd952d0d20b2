"""``mtdata.output``: small-file system calls (the atomic folder is tested through the commands)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from mtdata.output import read_to_end, write_all, write_file


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
    from mtdata.merge_chunk import _read

    # /proc files report size 0 but hold text: the one read takes all of it.
    assert _read("/proc/self/status").startswith(b"Name:")


def test_merge_reads_a_label_file_longer_than_one_read(tmp_path):
    from mtdata.merge_chunk import READ_BYTES, _read

    for size in (0, 10, READ_BYTES - 1, READ_BYTES, READ_BYTES + 1, 3 * READ_BYTES + 7):
        data = bytes(b"0123456789 \n"[i % 12] for i in range(size))
        (tmp_path / "a.txt").write_bytes(data)
        assert _read(str(tmp_path / "a.txt")) == data
