"""mtdata.input_files: a file a stranger named is read only when it is a regular file under its bound."""

from __future__ import annotations

import os

import pytest

from mtdata.input_files import MAX_LABEL_BYTES, InputFileError, read_input_file


def _fifo(tmp_path):
    path = tmp_path / "fifo.txt"
    os.mkfifo(path)
    return path


def _link_to_dev_zero(tmp_path):
    path = tmp_path / "zero.txt"
    path.symlink_to("/dev/zero")
    return path


def _folder(tmp_path):
    path = tmp_path / "folder.txt"
    path.mkdir()
    return path


def _sparse_over_limit(tmp_path):
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.truncate(1001)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(_fifo, "not a regular file", id="fifo: a read would wait forever"),
        pytest.param(_link_to_dev_zero, "not a regular file", id="link to /dev/zero: a read would never end"),
        pytest.param(_folder, "not a regular file", id="folder"),
        pytest.param(_sparse_over_limit, "over the limit of 1,000", id="over the bound"),
    ],
)
def test_what_is_not_read(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputFileError, match=message) as e:
        read_input_file(path, 1000, "label file")
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert e.value.reason in str(e.value) and str(path) not in e.value.reason


def test_a_regular_file_and_a_link_to_one_are_read(tmp_path):
    target = tmp_path / "a.txt"
    target.write_bytes(b"0 0.1 0.2\n")
    link = tmp_path / "b.txt"
    link.symlink_to(target)
    assert read_input_file(target, 10) == read_input_file(link, 10) == b"0 0.1 0.2\n"


def test_missing_file_is_its_own_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_input_file(tmp_path / "nope.txt", 10)


def test_unreadable_file_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "locked.txt"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(InputFileError, match="cannot read"):
        read_input_file(path, 10)


def test_reading_a_small_file_does_not_allocate_the_bound(tmp_path):
    """``f.read(n)`` allocates n bytes up front: a 1 GiB bound must not cost 1 GiB per image (the child
    below may map 256 MB more than its parent)."""
    from tests.mtdata.fuzzing import run_bounded

    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 100)
    outcome = run_bounded(lambda: len(read_input_file(path, 8 << 30)), (), memory=256 << 20)
    assert outcome.kind == "ok" and outcome.value == 100, outcome


def test_an_interrupt_inside_fdopen_is_raised_as_the_interrupt_and_closes_the_descriptor_once(tmp_path, monkeypatch):
    # A signal handled right after io.open returned, inside os.fdopen: the new file object is dropped, and
    # closes the descriptor as it goes. The reader must not close it again (EBADF replaced the interrupt, and a
    # number reused meanwhile would have been another file's): the interrupt comes out, nothing else.
    path = tmp_path / "a.txt"
    path.write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    real_fdopen = os.fdopen

    def fdopen_then_interrupted(fd, *args, **kwargs):
        real_fdopen(fd, *args, **kwargs)  # freed at once: closes fd
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", fdopen_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        read_input_file(path, MAX_LABEL_BYTES, "label file")
