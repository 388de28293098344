"""The job client against the real worker process: jobs, queueing, errors, stray output."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from app import demo_model_path
from app.job_client import READY
from core.jobs.spec import JobSpec

from .conftest import JOB_MS, WORKER_START_MS, demo_calib

pytestmark = pytest.mark.slow


def _run(qtbot, client, spec: JobSpec, timeout: int = JOB_MS) -> tuple[str, dict]:
    done: list = []
    client.submit(spec, on_done=lambda outcome, data: done.append((outcome, data)))
    qtbot.waitUntil(lambda: bool(done), timeout=timeout)
    return done[0]


def test_jobs_run_in_order_on_one_worker(qtbot, client):
    outcome, data = _run(qtbot, client, JobSpec("devices", {}), timeout=WORKER_START_MS + JOB_MS)
    assert outcome == "result" and any(d["kind"] == "cpu" for d in data["devices"])
    pid = client.pid()

    outcome, info = _run(qtbot, client, JobSpec("inspect", {"model": str(demo_model_path())}))
    assert outcome == "result" and info["exportable"] and info["params"] > 0 and info["ops"]

    outcome, err = _run(qtbot, client, JobSpec("inspect", {"model": "/nonexistent/model.pt2"}))
    assert outcome == "error" and err["user_error"] and err["message"]

    params = {"calib": demo_calib(), "model": str(demo_model_path()), "normalize": "imagenet", "count": 4}
    stale: list = []
    client.submit(JobSpec("preview", params), on_done=lambda o, d: stale.append(o))
    client.submit(JobSpec("devices", {}))
    client.submit(JobSpec("preview", params), supersede=False)
    outcome, preview = _run(qtbot, client, JobSpec("preview", params))
    assert outcome == "result" and len(preview["thumbnails"]) == 4 and preview["total"] >= 4
    side = preview["shape"][-1]
    for png in preview["thumbnails"]:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        assert image.format == "PNG" and image.size == (side, side)
    assert stale == ["result"]
    assert client.pid() == pid, "a CPU worker is reused between jobs"
    assert client.state == READY


def test_supersede_drops_stale_queued_jobs(qtbot, client):
    outcomes: list = []
    params = {"calib": demo_calib(), "model": str(demo_model_path()), "normalize": "none", "count": 2}
    for _ in range(3):
        client.submit(JobSpec("preview", params), supersede=True, on_done=lambda o, d: outcomes.append(o))
    qtbot.waitUntil(lambda: len(outcomes) == 3, timeout=WORKER_START_MS + JOB_MS)
    assert outcomes.count("cancelled") == 2 and outcomes[-1] == "result"


def test_stray_output_becomes_a_log_line(qtbot, client):
    with qtbot.waitSignal(client.log, timeout=1000) as blocker:
        client._handle_line("Some library printed this")
    assert blocker.args == ["", "Some library printed this"]
