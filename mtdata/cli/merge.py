"""``mtdata merge`` (issue 4)."""

from mtdata.cli.app import app  # noqa: F401
