"""The ``mtdata`` console script and ``python -m mtdata``: signal handlers go in before the CLI's imports load.

``mtdata.cli`` imports typer, rich and numpy (~75 ms); a SIGTERM or Ctrl-C in that window is handled as in a
command: one line, exit 128+N, nothing written.
"""

import sys

from mtdata._runtime import interrupts


def main() -> None:
    interrupts.install()  # before the imports below: a signal while they load is handled too
    try:
        from mtdata.cli import main as cli_main
    except (KeyboardInterrupt, RuntimeError) as error:
        stopped = interrupts.interrupt_behind(error)
        if stopped is None:
            raise
        sys.stderr.write(f"error: {interrupts.describe(stopped)}; nothing was written\n")
        raise SystemExit(interrupts.exit_code(stopped)) from None
    cli_main()
