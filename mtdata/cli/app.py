"""The ``mtdata`` typer app and what every command shares: one-line errors, progress, reports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mtdata.errors import MtdataError

app = typer.Typer(
    name="mtdata",
    help="Datasets for multitask YOLO: convert COCO, merge pose + segment datasets, check, view.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print one red line and exit; user errors never show a traceback."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(*also: type[Exception], interrupted: str = "interrupted; nothing was written") -> Iterator[None]:
    """Turn MtdataError (and the exception types in ``also``) into one red line and exit 2."""
    try:
        yield
    except (MtdataError, *also) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail(interrupted, 130)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by a (done, total) callback; silent when output is not a terminal."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def write_report(path: Optional[Path], data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str))
        console.print(f"report: {path}")


