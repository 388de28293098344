"""Two real processes writing one history file at once, starting from a file that does not exist yet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core.store import open_store

REPO = Path(__file__).resolve().parents[2]
RUNS_PER_WRITER = 200

# Each writer imports, says it is ready, waits for "go", then opens (so both race to create the
# schema) and records its runs the way the worker does: create, then finish with layers.
WRITER = """
import os, sys, time
from pathlib import Path
db, tag, ready, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
from core.store import open_store
ready.touch()
while not go.exists():
    time.sleep(0.005)
store = open_store(db)
for i in range(count):
    run_id = store.create_run(f"models/{tag}.pt2", "onnxruntime", {"i": i}, "cpu", None, os.getpid())
    layers = [{"name": f"l{j}", "quantized": True, "sqnr_db": 30.0 + j} for j in range(2)]
    store.finish_run(run_id, "succeeded", metrics={"i": i}, layers=layers)
"""


def test_two_processes_lose_nothing(tmp_path):
    db = tmp_path / "shared" / "history.sqlite"
    go = tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    writers, ready_files = [], []
    for tag in ("a", "b"):
        ready = tmp_path / f"ready-{tag}"
        ready_files.append(ready)
        args = [sys.executable, "-c", WRITER, str(db), tag, str(ready), str(go), str(RUNS_PER_WRITER)]
        writers.append(subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 60
    while not all(f.exists() for f in ready_files) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    with open_store(db) as store:
        runs = store.list_runs()
        assert len(runs) == 2 * RUNS_PER_WRITER
        assert len({r["id"] for r in runs}) == 2 * RUNS_PER_WRITER
        for tag in ("a", "b"):
            mine = store.list_runs(model_filter=f"/{tag}.pt2")
            assert sorted(r["metrics"]["i"] for r in mine) == list(range(RUNS_PER_WRITER))
            assert all(r["status"] == "succeeded" for r in mine)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM layer_stat").scalar() == 4 * RUNS_PER_WRITER
            assert conn.exec_driver_sql("SELECT count(*) FROM model").scalar() == 2
        assert store.integrity_check() == "ok"
