"""Fixtures for the window tests: offscreen Qt, a real worker process, a real SQLite history in tmp_path."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from app import resource_path  # noqa: E402

WORKER_START_MS = 120_000  # importing torch on a loaded CI machine
JOB_MS = 300_000


@pytest.fixture
def settings(tmp_path):
    from app.settings import Settings

    return Settings(str(tmp_path / "settings.ini"))


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "history.sqlite")


@pytest.fixture
def client(qtbot):
    """A started job client with a real worker process; stopped after the test."""
    from app.job_client import JobClient

    c = JobClient()
    c.start()
    yield c
    c.shutdown()


@pytest.fixture
def window(qtbot, client, settings, db_path):
    """The main window on a real worker and a fresh history file, painted and ready for input."""
    from app.window import MainWindow

    w = MainWindow(client, settings, db_path=db_path)
    qtbot.addWidget(w)
    w.resize(1280, 820)
    w.show()
    qtbot.waitUntil(lambda: w.first_paint_at is not None and w.store() is not None, timeout=30_000)
    return w


@pytest.fixture
def demo_ready(qtbot, window):
    """The window with the demo model read and its calibration images previewed."""
    window.open_demo()
    model, calib = window.pages["model"], window.pages["calib"]
    qtbot.waitUntil(lambda: model.info is not None, timeout=WORKER_START_MS + JOB_MS)
    qtbot.waitUntil(lambda: calib.preview is not None, timeout=JOB_MS)
    return window


def demo_calib() -> str:
    return str(resource_path("demo", "calib"))
