"""``mtdata check`` (issue 5)."""

from mtdata.cli.app import app  # noqa: F401
