"""One exception root for every user-facing error, and findings for reports.

Errors carry where the problem is (file, line, annotation id) so the CLI can print one
line that names it. Library code never prints; the CLI turns ``MtdataError`` into a red
line and a non-zero exit.
"""

from __future__ import annotations

import errno
import os
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path


def why_missing(path: str | Path, otherwise: str) -> str:
    """Why ``path`` cannot be opened when ``exists()`` says False: a symlink loop, a link to nothing, or ``otherwise``."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if os.path.islink(path):
            return f"is a link to {os.readlink(path)}, which does not exist"
    return otherwise


def raise_os_error(error: OSError) -> None:
    """``os.walk``'s ``onerror``: an unreadable folder is an error, not a silent gap in what is listed."""
    raise error


class MtdataError(Exception):
    """Root of every error raised for bad input or an impossible request."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


class InputError(MtdataError):
    """An input file or folder is missing, unreadable or has the wrong structure."""


class DatasetConfigError(InputError):
    """A data.yaml is missing, unreadable or inconsistent."""


class RowError(MtdataError):
    """A YOLO label row cannot be parsed; ``line`` is 1-based when known."""


class AnnotationError(MtdataError):
    """A COCO annotation cannot be converted; ``annotation_id`` names it."""

    def __init__(self, message: str, *, annotation_id: int | None = None, reason: str = "invalid"):
        super().__init__(message)
        self.annotation_id = annotation_id
        self.reason = reason

    def __str__(self) -> str:
        return f"annotation {self.annotation_id}: {self.message}"


class OutputError(MtdataError):
    """The output location cannot be written as asked (exists, inside an input, ...)."""


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One problem found in a dataset: a rule id, a severity and where it is.

    ``line`` is 1-based or None when the finding is about a whole file.
    """

    rule: str
    severity: Severity
    file: str
    line: int | None
    message: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data
