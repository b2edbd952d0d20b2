"""Nothing installs at run time: no pip (or uv) process, even when ultralytics believes it is online.

ultralytics pip-installs what a feature lacks: ``lap`` on the first ``track()``, ``pi-heif`` when its patched
``Image.open`` meets an image Pillow cannot identify (which ``mtdata check`` does on every undecodable file).
Here the machine pretends to be online and every process start is watched: a pip command fails the test.
"""

from __future__ import annotations

import importlib.util
import subprocess

import numpy as np
import pytest


@pytest.fixture()
def pip_calls(monkeypatch):
    """Commands that would have run pip; each such start raises instead of running."""
    import ultralytics.utils.checks as checks

    monkeypatch.setattr(checks, "ONLINE", True)  # what ultralytics sees on a networked machine
    monkeypatch.setattr(checks, "check_uv", lambda: False)
    calls = []

    def guard(original):
        def run(*args, **kwargs):
            command = args[0] if args else kwargs.get("args")
            text = " ".join(map(str, command)) if isinstance(command, (list, tuple)) else str(command)
            if "pip" in text:
                calls.append(text)
                raise OSError(f"test: no installs ({text})")
            return original(*args, **kwargs)

        return run

    for name in ("run", "check_output", "check_call", "call", "Popen"):
        monkeypatch.setattr(subprocess, name, guard(getattr(subprocess, name)))
    return calls


def test_track_needs_lap_and_never_installs_it(pip_calls, tiny_model, tmp_path):
    import re

    import torch

    from mttrain import MultiTaskYOLO

    torch.save({"model": tiny_model}, tmp_path / "m.pt")
    model = MultiTaskYOLO(tmp_path / "m.pt")
    frame = np.full((64, 64, 3), 127, np.uint8)
    error = None
    try:
        model.track(frame, imgsz=64, verbose=False, project=str(tmp_path))
    except Exception as e:  # noqa: BLE001  checked below, after the installs
        error = e
    assert pip_calls == []
    if importlib.util.find_spec("lap") is None:
        from mttrain.errors import MissingDependencyError

        assert isinstance(error, MissingDependencyError), repr(error)
        assert re.search(r"lap>=0\.5\.12, which is not installed.*pip install 'mt\[train\]'", str(error)), str(error)
    else:  # declared in the train extra: installed with mttrain
        assert error is None, repr(error)


def test_an_undecodable_image_is_reported_not_a_reason_to_install(pip_calls, tmp_path):
    import mttrain._ultralytics  # noqa: F401  ultralytics' Image.open patch is in place once mttrain is
    from mtdata.check.verify import verify_image

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00\x01 not an image" * 20)
    check = verify_image(bad)
    assert not check.ok and check.findings[0].rule == "image_unreadable"
    from PIL import Image, UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):  # Pillow's own error, as without ultralytics
        Image.open(bad)
    assert pip_calls == []


def test_every_ultralytics_requirement_check_refuses_to_install(pip_calls):
    import sys

    from ultralytics.utils import checks

    import mttrain._ultralytics as mu
    from mttrain.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="not-a-real-package-xyz, which is not installed"):
        checks.check_requirements("not-a-real-package-xyz")
    assert checks.check_requirements("not-a-real-package-xyz", install=False) is False
    assert checks.check_requirements("numpy") is True
    for name, module in list(sys.modules.items()):
        if name.startswith("ultralytics.") and hasattr(module, "check_requirements"):
            assert module.check_requirements is mu._check_requirements_without_install, name
    assert pip_calls == []


def test_plots_of_non_ascii_class_names_download_no_font(monkeypatch, tmp_path):
    """ultralytics fetches Arial.Unicode.ttf from GitHub for every plot of a non-ASCII label (after a 3 s check
    online, on every plot while it fails); ours draws with a font on disk and asks the network nothing."""
    import requests
    from ultralytics.utils import plotting

    import mttrain._ultralytics  # noqa: F401  (blocks installs and downloads)

    requests_made = []

    def no_network(*args, **kwargs):  # ultralytics catches what this raises: record it too
        requests_made.append(args)
        raise AssertionError(f"network request: {args}")

    monkeypatch.setattr(requests, "head", no_network)
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr("ultralytics.utils.USER_CONFIG_DIR", tmp_path)  # no font fetched by an earlier run
    annotator = plotting.Annotator(np.zeros((64, 64, 3), np.uint8), example="人")
    annotator.box_label([1, 1, 40, 40], "人 0.9")
    assert requests_made == []
    assert annotator.font.path.endswith(".ttf") and not annotator.font.path.startswith(str(tmp_path))
    assert annotator.result().any()  # the label was drawn
