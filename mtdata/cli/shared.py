"""Public: the pieces of mtdata's command line that another tool's command line may use (``mttrain`` does).

Everything else under :mod:`mtdata.cli` is internal to mtdata's commands and may change; these names stay:

- :func:`user_errors`: a ``with`` block turning :class:`mtdata.errors.MtdataError` (and the given exception
  types, and file system errors) into one red line on stderr and exit 2, and an interrupt (Ctrl-C, SIGTERM,
  SIGHUP) into one line and exit 128 + the signal's number;
- :func:`fail`: one red line and exit ``code`` (2 by default);
- :data:`err_console`: the rich console on stderr those lines go to (progress bars belong there too);
- :func:`run_app`: run a typer app with its usage errors as one line, exit 2.
"""

from mtdata.cli.app import err_console, fail, user_errors
from mtdata.cli.usage import run_app

__all__ = ["err_console", "fail", "run_app", "user_errors"]
