"""Reading a file a stranger named: a regular file only, and never more than a bound.

A label file that is a link to ``/dev/zero`` or a FIFO would make ``read()`` run (and grow)
forever; a 40 GB "image" would be read whole into memory. Every reader of label files, image
files and split lists opens them here: the descriptor is checked to be a regular file (after
it is opened, so a swap between a check and the open cannot fool it) and at most the bound
is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from mtdata.errors import InputError

MAX_LABEL_BYTES = 64 << 20  # one image's label file: ~2M rows of a box each
MAX_IMAGE_BYTES = 1 << 30  # an 89.5-megapixel image stored raw as 16-bit RGBA takes 716 MB


class InputFileError(InputError):
    """A file that cannot be read as asked: not a regular file, too large, or an OS error.

    ``reason`` is the message without the file name, for findings that name the file themselves.
    """

    def __init__(self, reason: str, *, file: str | Path):
        super().__init__(reason, file=file)
        self.reason = reason

    @property
    def unreadable(self) -> bool:
        """The OS refused the read (permissions, a link loop), as against a file refused by rule (not a regular file,
        over its bound): a command that copies or exports the file must then stop, not go on without it."""
        return isinstance(self.__cause__, OSError)


def open_input_file(path: str | Path, limit: int, what: str = "file") -> BinaryIO:
    """A regular file of at most ``limit`` bytes, opened for reading (binary); the caller closes it.

    Args:
        path: the file (links are followed, as any reader does).
        limit: the most bytes a ``what`` may hold.
        what: what the file is, for the message ("label file", "image").

    Raises:
        FileNotFoundError: the file does not exist (callers treat a missing file on its own).
        InputFileError: not a regular file (a folder, FIFO, device), over ``limit``, or unreadable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise InputFileError(f"cannot read the {what}: {e.strerror or e}", file=path) from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"the {what} is not a regular file (a folder, FIFO or device): not read", file=path)
        if info.st_size > limit:
            raise InputFileError(f"the {what} holds {info.st_size:,} bytes, over the limit of {limit:,}: not read", file=path)
    except BaseException:
        os.close(fd)
        raise
    # Outside the ``try``: from ``fdopen`` on, the file object owns the descriptor and only it closes it. Closed
    # here too (an interrupt landing on the ``return``, as it did before), it was closed twice, and the second
    # close, when the orphaned object was freed, hit whatever file had reused the number ("Bad file descriptor"
    # from an export stopped by Ctrl-C instead of its one line and 130). An interrupt there leaks it at worst.
    return os.fdopen(fd, "rb")


def read_input_file(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_input_file`)."""
    with open_input_file(path, limit, what) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(size + 1)  # read(n) allocates n bytes at once: ask for what the file holds
            if len(data) > size:  # it grew after it was opened: read on, in pieces, up to the bound
                pieces = [data]
                while (got := sum(map(len, pieces))) <= limit and (piece := f.read(min(1 << 20, limit + 1 - got))):
                    pieces.append(piece)
                data = b"".join(pieces)
        except OSError as e:
            raise InputFileError(f"cannot read the {what}: {e.strerror or e}", file=path) from e
    if len(data) > limit:
        raise InputFileError(f"the {what} holds over {limit:,} bytes, the limit: not read", file=path)
    return data
