"""``mtdata`` command line: one module per command, all registered on one typer app."""

from mtdata.cli import check, convert, export, merge, view  # noqa: F401  (importing registers the commands)
from mtdata.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
