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

from mtdata._runtime import interrupts
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


_interrupt_reported = False
# Path.resolve() of Python 3.11-3.12 raises RuntimeError("Symlink loop from '<path>'") (3.13: OSError ELOOP):
# the only RuntimeError turned into a line here.
_PATHLIB_LOOP = "Symlink loop from"


@contextmanager
def user_errors(*also: type[Exception], interrupted: str = "nothing was written") -> Iterator[None]:
    """Turn MtdataError (and the exception types in ``also``) into one red line and exit 2; a file system
    error (full disk, no permission) too. An interrupt (Ctrl-C, SIGTERM, SIGHUP) is one line and exit
    128 + the signal's number (130, 143, 129), after the clean-up of whatever the block was doing."""
    try:
        yield
    except (MtdataError, *also) as e:
        fail(str(e))
    except OSError as e:  # the library names paths in its own errors; this is what it did not foresee
        fail(_os_error_line(e))
    except RuntimeError as e:
        if interrupts.interrupt_behind(e) is not None:  # an interrupt that Python 3.11 wrapped (a lazy import)
            _report_interrupt(interrupts.interrupt_behind(e), interrupted)
        if not str(e).startswith(_PATHLIB_LOOP):
            raise
        fail(f"{e.args[0][len(_PATHLIB_LOOP):].strip()} is a symlink loop")
    except KeyboardInterrupt as e:
        _report_interrupt(e, interrupted)


def _report_interrupt(e: KeyboardInterrupt, interrupted: str) -> None:
    global _interrupt_reported
    _interrupt_reported = True
    written = getattr(e, "written", None)
    after = f"{written} was written in full before it stopped" if written is not None else interrupted
    fail(f"{interrupts.describe(e)}; {after}", interrupts.exit_code(e))


def _os_error_line(error: OSError) -> str:
    from mtdata._runtime.output import printable

    reason = error.strerror or str(error)
    if error.filename2 is not None:
        return f"{printable(error.filename)} -> {printable(error.filename2)}: {reason}"
    if isinstance(error.filename, (str, bytes, Path)):
        return f"{printable(error.filename)}: {reason}"
    return reason


def report_interrupt_outside_commands(code: int | str | None, error: BaseException | None = None) -> int | str | None:
    """The exit code for ``code`` (what typer exited with); an interrupt that no command reported
    (typer turns one into a silent exit 130) gets its line here and the signal's exit code."""
    signum = interrupts.first_received() if error is None else interrupts.signal_number(error)
    if signum is None or _interrupt_reported or code != 130:
        return code
    error = interrupts.Interrupted(signum)
    err_console.print(f"[bold red]error:[/] {interrupts.describe(error)}", highlight=False, soft_wrap=True)
    return interrupts.exit_code(error)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by a (done, total) callback; silent when output is not a terminal."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def check_report(path: Optional[Path]) -> None:
    """Refuse a ``--report`` path that cannot be written (a folder, not UTF-8) before the command's work."""
    if path is not None:
        from mtdata._runtime.output import check_output_file

        with user_errors():
            check_output_file(path, overwrite=True)


def write_report(path: Optional[Path], data: dict) -> None:
    """Write a command's ``--report`` JSON atomically (a report cut short would read as a whole one)."""
    if path is not None:
        from mtdata._runtime.output import atomic_output_file

        with user_errors(), atomic_output_file(path) as work:
            work.write_text(json.dumps(data, indent=2, default=str))
        console.print(f"report: {path}")
