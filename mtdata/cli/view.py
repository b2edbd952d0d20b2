"""``mtdata view`` (issue 6)."""

from mtdata.cli.app import app  # noqa: F401
