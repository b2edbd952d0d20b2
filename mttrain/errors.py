"""mttrain's user errors: each prints as one line (``mttrain`` and ``mtdata`` exit 2 on them).

Light on purpose (no torch, no ultralytics): the command line raises them before the heavy imports.
"""

from __future__ import annotations

from mtdata.errors import InputError, MtdataError


class WeightsError(InputError):
    """A weights file is missing, unreadable, not a model, or asks for code it may not run."""


class ArgumentError(MtdataError):
    """A training, validation, prediction or export argument is unknown, mistyped or given twice."""


class MissingDependencyError(MtdataError):
    """A feature needs a package that is not installed; mttrain never installs packages at run time."""
