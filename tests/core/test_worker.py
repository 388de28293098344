"""The worker process and the history it keeps, with real processes killed, cancelled and starved of disk."""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from core.jobs.spec import JobSpec, QuantizeOptions
from core.store import open_store
from tests.conftest import DEMO, PYTHON, python_env

pytestmark = pytest.mark.slow
START_TIMEOUT = 120


class WorkerProcess:
    def __init__(self):
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "core.jobs.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=python_env(),
        )
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: e["type"] == "ready", START_TIMEOUT)

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def send(self, msg: dict):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def submit(self, spec: JobSpec):
        self.send({"op": "job", "spec": json.loads(spec.to_json())})

    def wait_for(self, pred, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if e is None:
                raise AssertionError("worker exited")
            if pred(e):
                return e
        raise AssertionError("timed out waiting for an event")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def worker():
    w = WorkerProcess()
    yield w
    w.close()


@pytest.fixture(scope="module")
def slow_calibration(tmp_path_factory, zoo_pt2):
    """ResNet-18 shape, 256 samples at batch 1: calibration runs long enough to interrupt."""
    d = tmp_path_factory.mktemp("slow")
    np.save(d / "calib.npy", np.random.default_rng(0).standard_normal((256, 3, 64, 64)).astype(np.float32))
    return str(zoo_pt2("resnet18")), str(d / "calib.npy")


def quantize_spec(model, out, db, **kw) -> JobSpec:
    return JobSpec("quantize", QuantizeOptions(model=model, out_dir=str(out), db=db, **kw).to_dict())


def calibrating(e):
    return e["type"] == "progress" and "calibrated" in e["data"].get("message", "")


def test_devices_and_inspect_jobs(worker):
    worker.submit(JobSpec("devices", {}, id="d"))
    res = worker.wait_for(lambda e: e["job_id"] == "d" and e["type"] in ("result", "error"), 60)
    assert res["type"] == "result" and res["data"]["devices"][0]["id"] == "cpu"
    worker.submit(JobSpec("inspect", {"model": str(DEMO / "model.pt2")}, id="i"))
    res = worker.wait_for(lambda e: e["job_id"] == "i" and e["type"] in ("result", "error"), 60)
    assert res["data"]["exportable"] and res["data"]["inputs"][0]["shape"] == ["N", 3, 64, 64]
    worker.submit(JobSpec("inspect", {"model": str(DEMO / "nope.pt2")}, id="bad"))
    res = worker.wait_for(lambda e: e["job_id"] == "bad" and e["type"] in ("result", "error"), 60)
    assert res["type"] == "error" and res["data"]["user_error"] and "not found" in res["data"]["message"]


def test_quantize_job_reports_progress_and_records_the_run(worker, tmp_path, db):
    spec = quantize_spec(str(DEMO / "model.pt2"), tmp_path / "run", db, calib=str(DEMO / "calib"), samples=16)
    worker.submit(spec)
    seen = []
    res = worker.wait_for(lambda e: seen.append(e) or e["type"] in ("result", "error"), 300)
    assert res["type"] == "result", res
    stages = [e["data"]["name"] for e in seen if e["type"] == "stage"]
    assert stages == ["load", "capture", "prepare", "calibrate", "convert", "analyse", "export", "report"]
    fractions = [e["data"]["fraction"] for e in seen if e["type"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with open_store(db) as store:
        run = store.get_run(res["data"]["run_id"])
    assert run["status"] == "succeeded" and run["metrics"]["output_sqnr_db"] > 25
    assert {a["kind"] for a in run["artifacts"]} >= {"int8_onnx", "report"}
    assert len(run["layers"]) == len(res["data"]["report"]["layers"])


def test_cancel_mid_calibration_within_two_seconds(worker, tmp_path, db, slow_calibration):
    model, calib = slow_calibration
    spec = quantize_spec(model, tmp_path / "run", db, calib=calib, samples=256, batch_size=1)
    worker.submit(spec)
    worker.wait_for(calibrating, 120)
    t0 = time.monotonic()
    worker.send({"op": "cancel", "job_id": spec.id})
    worker.wait_for(lambda e: e["type"] == "cancelled", 10)
    assert time.monotonic() - t0 < 2.0
    with open_store(db) as store:
        (run,) = store.list_runs()
    assert run["status"] == "cancelled"
    assert not list((tmp_path / "run").glob("*.onnx"))
    # the same worker serves the next job
    worker.submit(JobSpec("devices", {}, id="after"))
    assert worker.wait_for(lambda e: e["job_id"] == "after", 30)["type"] == "result"


def test_kill_9_mid_calibration_marks_interrupted(worker, tmp_path, db, slow_calibration):
    model, calib = slow_calibration
    worker.submit(quantize_spec(model, tmp_path / "run", db, calib=calib, samples=256, batch_size=1))
    worker.wait_for(calibrating, 120)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    with open_store(db) as store:
        assert store.mark_interrupted()
        (run,) = store.list_runs()
        assert run["status"] == "interrupted"
        assert store.integrity_check() == "ok"
    assert not [p for p in (tmp_path / "run").glob("*") if p.name.startswith(".")]


def test_ctrl_c_on_the_cli_exits_130_quickly(tmp_path, db, slow_calibration):
    model, calib = slow_calibration
    cmd = [PYTHON, "-m", "core.cli", "quantize", model, "--out", str(tmp_path / "run"), "--db", db]
    cmd += ["--calib", calib, "--samples", "256", "--batch-size", "1", "--json-progress"]
    # As from a terminal: a suite started in the background (`make test &`) has SIGINT ignored, children
    # inherit that, and Python then never raises KeyboardInterrupt (the run went on to the end)
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=python_env(),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        for line in proc.stdout:
            if "calibrated" in line:
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 130, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert time.monotonic() - t0 < 2.0
    with open_store(db) as store:
        (run,) = store.list_runs()
    assert run["status"] == "cancelled"
    assert not list((tmp_path / "run").glob(".*part*"))


def test_full_disk_fails_cleanly(tmp_path, db, zoo_pt2):
    """A 2 MB file-size limit: the ONNX export cannot be written."""
    limit = 200_000

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    model = str(zoo_pt2("resnet18"))
    with open_store(db):
        pass  # create the database before the limit applies to the child
    cmd = [
        PYTHON,
        "-m",
        "core.cli",
        "quantize",
        model,
        "--out",
        str(tmp_path / "run"),
        "--db",
        db,
        "--samples",
        "4",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=python_env(), preexec_fn=small_files, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "disk is full" in err[0], proc.stderr
    with open_store(db) as store:
        (run,) = store.list_runs()
        assert run["status"] == "failed" and "disk is full" in run["error"]
        assert store.integrity_check() == "ok"
    out = tmp_path / "run"
    assert not list(out.glob(".*part*"))
    for p in out.glob("*"):
        assert p.stat().st_size < limit or p.name == "model.float.onnx"
