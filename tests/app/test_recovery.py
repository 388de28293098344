"""Cancel and crash: the window gets back to a usable state and the history tells the truth."""

from __future__ import annotations

import os
import signal
import time

import pytest
from PySide6.QtCore import Qt

from app.job_client import READY

from .conftest import JOB_MS, WORKER_START_MS

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name == "nt", reason="uses SIGKILL")]


def _start_slow_run(qtbot, window) -> None:
    """A run whose calibration lasts long enough to interrupt: one image per batch."""
    calib = window.pages["calib"]
    calib.samples.setValue(96)
    calib.batch_size.setValue(1)
    stages: list[str] = []
    window.client.stage.connect(lambda _job, data: stages.append(data["name"]))
    assert window.start_run()
    qtbot.waitUntil(lambda: "calibrate" in stages, timeout=JOB_MS)


def _history_status(qtbot, window, status: str) -> dict:
    history = window.pages["history"]

    def has_status():
        history.refresh()
        return any(r["status"] == status for r in history.runs)

    qtbot.waitUntil(has_status, timeout=30_000)
    return next(r for r in history.runs if r["status"] == status)


def test_cancel_during_calibration_returns_to_ready_quickly(qtbot, demo_ready):
    window = demo_ready
    run = window.pages["run"]
    _start_slow_run(qtbot, window)
    cancelled_at = time.monotonic()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not run.running, timeout=2000)
    assert time.monotonic() - cancelled_at < 2.0
    assert run.start_button.isEnabled()
    assert "Cancel" in run.status.text()
    _history_status(qtbot, window, "cancelled")
    qtbot.waitUntil(lambda: window.client.state == READY, timeout=WORKER_START_MS)


def test_killed_worker_shows_an_error_and_the_run_is_interrupted(qtbot, demo_ready):
    window = demo_ready
    run = window.pages["run"]
    _start_slow_run(qtbot, window)
    os.kill(window.client.pid(), signal.SIGKILL)
    qtbot.waitUntil(lambda: run.failure.isVisible(), timeout=10_000)
    assert "worker process" in run.failure.label.text()
    assert not run.running and run.start_button.isEnabled()
    interrupted = _history_status(qtbot, window, "interrupted")
    assert interrupted["model_path"].endswith("model.pt2")
    qtbot.waitUntil(lambda: window.client.state == READY, timeout=WORKER_START_MS)
    window.show_page("model")  # the window still works
    assert window.current_page() == "model"
