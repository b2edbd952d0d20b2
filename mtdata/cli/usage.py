"""Running a typer app with its usage errors as one line, as every other user error is.

typer draws a usage error (a missing argument, an unknown option, a value that is not a number) as a
multi-line box under the usage text: a script or a log reader then has to find the error among the lines.
Here it is one line on stderr, naming the command and pointing to its ``--help``, with click's exit code (2).
"""

from __future__ import annotations

import sys

import typer


def run_app(app: typer.Typer) -> None:
    """Run ``app`` on ``sys.argv`` and exit with its code; usage errors are ``error: COMMAND: WHAT (see ...)``."""
    try:
        code = app(standalone_mode=False)  # typer then raises its errors instead of drawing them
    except typer.TyperException as error:  # typer's click: usage errors, bad parameters, missing files
        message = " ".join(error.format_message().split())  # click's messages may wrap
        ctx = getattr(error, "ctx", None)  # set on usage errors
        if ctx is not None:
            command = ctx.command_path
            message = message.rstrip(".")
            message = f"{command}: {message[:1].lower()}{message[1:]} (see '{command} --help')"
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(error.exit_code) from None
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        raise SystemExit(1) from None
    # typer returns an Exit's code; a command that ends normally returns None
    raise SystemExit(code if isinstance(code, int) else 0)
