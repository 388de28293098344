"""The project history against real SQLite files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc, func, select

from core.errors import UserError
from core.store import (
    ARTIFACT_NAMES,
    INTERRUPTED_ERROR,
    RUN_STATUSES,
    Artifact,
    Base,
    LayerStat,
    RunNotFound,
    default_db_path,
    head_revision,
    open_store,
    resolve_db_path,
)
from core.store.db import MIGRATIONS_DIR

DATA = Path(__file__).parent / "data"
SUMMARY_KEYS = {
    "id",
    "status",
    "model_path",
    "preset",
    "started_at",
    "finished_at",
    "out_dir",
    "metrics",
    "device",
    "error",
    "note",
}
LAYERS = [
    {
        "name": "conv1",
        "op": "conv2d",
        "module": "stem.conv1",
        "quantized": True,
        "weight_scale": {"min": 0.001, "max": 0.02},
        "act_scale": 0.05,
        "act_zero_point": 128,
        "act_min": -6.0,
        "act_max": 6.5,
        "sqnr_db": 35.0,
    },
    {
        "name": "layer1.add",
        "op": "add",
        "module": "layer1",
        "quantized": True,
        "weight_scale": None,
        "act_scale": 0.1,
        "act_zero_point": 0,
        "act_min": 0.0,
        "act_max": 25.0,
        "sqnr_db": 28.0,
    },
    {
        "name": "fc",
        "op": "linear",
        "module": "fc",
        "quantized": False,
        "weight_scale": 0.5,
        "act_scale": None,
        "act_zero_point": None,
        "act_min": None,
        "act_max": None,
        "sqnr_db": None,
        "reason": "kept float by --keep-float fc",
    },
]


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "history.sqlite") as s:
        yield s


def _new_run(store, out_dir=None, model="models/resnet18.pt2", preset="onnxruntime", **kw):
    return store.create_run(model, preset, {"samples": 64}, "cpu", out_dir, os.getpid(), **kw)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_create_finish_get_list(store, tmp_path):
    first = _new_run(store, tmp_path / "runs" / "1", model_sha256="aa", model_summary={"params": 10})
    second = _new_run(store, model="models/mobilenet.pt2", preset="tensorrt")
    store.finish_run(
        first,
        "succeeded",
        metrics={"output_sqnr_db": 31.5, "size_int8_bytes": 1000},
        layers=LAYERS,
        artifacts=[
            {"kind": "onnx", "path": str(tmp_path / "runs/1/model.int8.onnx"), "size": 3, "sha256": "bb"}
        ],
    )

    runs = store.list_runs()
    assert [r["id"] for r in runs] == [second, first]
    assert all(set(r) == SUMMARY_KEYS for r in runs)
    done, running = runs[1], runs[0]
    assert done["status"] == "succeeded" and running["status"] == "running"
    assert done["metrics"] == {"output_sqnr_db": 31.5, "size_int8_bytes": 1000}
    assert running["metrics"] == {} and running["finished_at"] is None and running["out_dir"] is None
    assert done["out_dir"] == str(tmp_path / "runs" / "1")
    started, finished = (datetime.fromisoformat(done[k]) for k in ("started_at", "finished_at"))
    assert started.utcoffset().total_seconds() == 0 and finished >= started

    run = store.get_run(first)
    assert {k: run[k] for k in SUMMARY_KEYS} == done
    assert run["options"] == {"samples": 64} and run["worker_pid"] == os.getpid()
    assert run["model_sha256"] == "aa" and run["model_summary"] == {"params": 10}
    assert run["artifacts"] == [
        {"kind": "onnx", "path": str(tmp_path / "runs/1/model.int8.onnx"), "size": 3, "sha256": "bb"}
    ]
    conv, add, fc = run["layers"]
    assert conv == LAYERS[0]
    assert add == LAYERS[1]
    assert fc["weight_scale"] == {"min": 0.5, "max": 0.5}
    assert fc["reason"] == "kept float by --keep-float fc" and fc["quantized"] is False
    assert store.get_run(9999) is None


def test_same_model_is_one_row(store):
    _new_run(store, model_sha256="aa")
    _new_run(store, model_sha256="aa", model_summary={"params": 3})
    _new_run(store, model_sha256="cc")
    with store.engine.connect() as conn:
        models = conn.exec_driver_sql("SELECT sha256, summary FROM model ORDER BY id").all()
    assert models == [("aa", '{"params": 3}'), ("cc", None)]


def test_list_filters(store):
    a = _new_run(store, model="/data/ResNet18.pt2")
    b = _new_run(store, model="/data/mobilenet_v3.pt2")
    c = _new_run(store, model="/data/100%_real.pt2")
    store.finish_run(a, "failed", error="boom")
    assert [r["id"] for r in store.list_runs(model_filter="resnet")] == [a]
    assert [r["id"] for r in store.list_runs(model_filter="_v3")] == [b]
    assert [r["id"] for r in store.list_runs(model_filter="0%_")] == [c]
    assert [r["id"] for r in store.list_runs(status="failed")] == [a]
    assert store.list_runs(status="failed")[0]["error"] == "boom"
    assert [r["id"] for r in store.list_runs(limit=2)] == [c, b]
    with pytest.raises(ValueError):
        store.list_runs(status="done")


def test_list_runs_is_one_query(store):
    for _ in range(5):
        store.finish_run(_new_run(store), "succeeded", metrics={"x": 1.0}, layers=LAYERS)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert len(store.list_runs()) == 5
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_update_run(store, tmp_path):
    run_id = _new_run(store, status="queued")
    store.update_run(run_id, status="running", out_dir=tmp_path / "out", device="cuda:0", note="baseline")
    run = store.get_run(run_id)
    assert (run["status"], run["out_dir"], run["device"], run["note"]) == (
        "running",
        str(tmp_path / "out"),
        "cuda:0",
        "baseline",
    )
    with pytest.raises(TypeError):
        store.update_run(run_id, id=5)
    with pytest.raises(ValueError):
        store.update_run(run_id, status="paused")
    with pytest.raises(RunNotFound):
        store.update_run(9999, note="x")


def test_finish_run_none_keeps_and_lists_replace(store):
    run_id = _new_run(store)
    store.finish_run(run_id, "succeeded", metrics={"a": 1}, layers=LAYERS)
    store.finish_run(run_id, "failed", error="late failure")
    run = store.get_run(run_id)
    assert run["metrics"] == {"a": 1} and len(run["layers"]) == 3 and run["error"] == "late failure"
    store.finish_run(run_id, "succeeded", layers=LAYERS[:1], artifacts=[])
    run = store.get_run(run_id)
    assert [x["name"] for x in run["layers"]] == ["conv1"] and run["error"] is None


def test_statuses_are_checked(store):
    assert RUN_STATUSES == ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
    with pytest.raises(ValueError):
        _new_run(store, status="succeeded")
    run_id = _new_run(store)
    with pytest.raises(ValueError):
        store.finish_run(run_id, "running")
    with pytest.raises(RunNotFound):
        store.finish_run(9999, "failed")
    with pytest.raises(exc.IntegrityError), store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE run SET status = 'done' WHERE id = ?", (run_id,))


def test_delete_run_removes_its_files_and_rows(store, tmp_path):
    out = tmp_path / "runs" / "7"
    out.mkdir(parents=True)
    for name in (*ARTIFACT_NAMES, "report.json.tmp", "model.int8.onnx.data", "calib_preview.png"):
        (out / name).write_bytes(b"x")
    run_id = _new_run(store, out)
    store.finish_run(
        run_id,
        "succeeded",
        layers=LAYERS,
        artifacts=[{"kind": "preview", "path": str(out / "calib_preview.png"), "size": 1, "sha256": None}],
    )
    other = _new_run(store)
    store.finish_run(other, "succeeded", layers=LAYERS)

    assert store.delete_run(run_id) == []
    assert not out.exists() and (tmp_path / "runs").exists()
    assert store.get_run(run_id) is None
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(LayerStat)) == len(LAYERS)
        assert conn.scalar(select(func.count()).select_from(Artifact)) == 0
    with pytest.raises(RunNotFound):
        store.delete_run(run_id)


def test_delete_run_leaves_what_is_not_the_runs(store, tmp_path):
    folder = tmp_path / "Documents"
    (folder / "photos").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "model.int8.onnx").write_bytes(b"x")
    exported = tmp_path / "deploy" / "model.int8.onnx"
    exported.parent.mkdir()
    exported.write_bytes(b"x")
    run_id = _new_run(store, folder)
    store.finish_run(run_id, "succeeded", artifacts=[{"kind": "export", "path": str(exported)}])

    kept = store.delete_run(run_id)
    assert kept == [str(folder / "notes.txt"), str(folder / "photos")]
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "photos").is_dir()
    assert not (folder / "model.int8.onnx").exists()
    assert exported.exists()


def test_delete_run_never_touches_home(store, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "report.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    run_id = _new_run(store, home)
    assert store.delete_run(run_id) == [str(home)]
    assert (home / "report.json").exists()


def test_delete_run_can_keep_files(store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert store.delete_run(_new_run(store, out), remove_files=False) == []
    assert (out / "report.json").exists()


def test_compare_runs(store):
    a, b = _new_run(store), _new_run(store)
    store.finish_run(a, "succeeded", metrics={"output_sqnr_db": 30.0, "size_int8_bytes": 100}, layers=LAYERS)
    changed = [
        dict(LAYERS[0], sqnr_db=38.0),
        dict(LAYERS[1], quantized=False),
        {"name": "head", "sqnr_db": 20.0},
    ]
    store.finish_run(b, "succeeded", metrics={"output_sqnr_db": 32.5, "accuracy_int8": 0.7}, layers=changed)

    diff = store.compare_runs(a, b)
    assert diff["metrics"] == {
        "output_sqnr_db": {"a": 30.0, "b": 32.5, "delta": 2.5},
        "size_int8_bytes": {"a": 100, "b": None, "delta": None},
        "accuracy_int8": {"a": None, "b": 0.7, "delta": None},
    }
    assert diff["layers"] == {
        "conv1": {"sqnr_a": 35.0, "sqnr_b": 38.0, "delta": 3.0, "quantized_a": True, "quantized_b": True},
        "layer1.add": {
            "sqnr_a": 28.0,
            "sqnr_b": 28.0,
            "delta": 0.0,
            "quantized_a": True,
            "quantized_b": False,
        },
    }
    assert diff["only_in_a"] == ["fc"] and diff["only_in_b"] == ["head"]
    with pytest.raises(RunNotFound):
        store.compare_runs(a, 9999)


def test_mark_interrupted(store):
    dead = _dead_pid()
    crashed = store.create_run("m.pt2", "onnxruntime", {}, "cpu", None, dead)
    queued = store.create_run("m.pt2", "onnxruntime", {}, "cpu", None, dead, status="queued")
    orphan = store.create_run("m.pt2", "onnxruntime", {}, "cpu", None, None)
    alive = _new_run(store)
    done = store.create_run("m.pt2", "onnxruntime", {}, "cpu", None, dead)
    store.finish_run(done, "succeeded")

    assert sorted(store.mark_interrupted()) == sorted([crashed, queued, orphan])
    for run_id in (crashed, queued, orphan):
        run = store.get_run(run_id)
        assert run["status"] == "interrupted" and run["error"] == INTERRUPTED_ERROR and run["finished_at"]
    assert store.get_run(alive)["status"] == "running"
    assert store.get_run(done)["status"] == "succeeded"
    assert store.mark_interrupted() == []
    assert store.mark_interrupted(is_alive=lambda pid: False) == [alive]


def test_where_the_file_lives(tmp_path, monkeypatch):
    monkeypatch.delenv("QDQ_STUDIO_DB", raising=False)
    assert resolve_db_path() == default_db_path()
    assert default_db_path().name == "history.sqlite" and "qdq-studio" in default_db_path().parts
    env_db = tmp_path / "from-env" / "nested" / "h.sqlite"
    monkeypatch.setenv("QDQ_STUDIO_DB", str(env_db))
    with open_store() as s:
        assert s.path == env_db and env_db.exists()
    explicit = tmp_path / "explicit.sqlite"
    with open_store(str(explicit)) as s:
        assert s.path == explicit


def test_a_writer_waits_for_the_lock_instead_of_failing(store):
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, other.execute, ["COMMIT"])
    release.start()
    t0 = time.monotonic()
    assert _new_run(store) == 1
    assert time.monotonic() - t0 >= 0.25
    release.join()
    other.close()


def test_connection_settings_and_integrity(store):
    _new_run(store)
    with store.engine.connect() as conn:
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys")}
        pragmas.update(
            {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("busy_timeout", "synchronous")}
        )
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": 1}
    assert store.integrity_check() == "ok"


def test_opens_history_v1_and_keeps_its_data(tmp_path):
    """history_v1.sqlite was written by revision 0001 (the first schema) with two runs; keep it frozen."""
    db = tmp_path / "history.sqlite"
    shutil.copy(DATA / "history_v1.sqlite", db)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)

    with open_store(db) as store:
        runs = store.list_runs()
        assert [(r["id"], r["status"], r["preset"]) for r in runs] == [
            (2, "failed", "tensorrt"),
            (1, "succeeded", "onnxruntime"),
        ]
        assert runs[1]["metrics"] == {"output_sqnr_db": 31.5, "size_int8_bytes": 11800000}
        assert runs[1]["started_at"] == "2026-01-05T09:01:00.000000+00:00"
        assert runs[0]["error"] == "calibration data has the wrong shape" and runs[0]["note"] is None
        old = store.get_run(1)
        assert [x["name"] for x in old["layers"]] == ["conv1", "fc"]
        assert old["layers"][0]["weight_scale"] == {"min": 0.001, "max": 0.02}
        assert old["layers"][1]["reason"] == "keep-float"
        assert old["artifacts"][0]["path"] == "runs/1/model.int8.onnx"
        assert old["model_summary"] == {"params": 11689512}

        store.update_run(1, note="shipped to the edge team")
        assert store.get_run(1)["note"] == "shipped to the edge team"
        assert _new_run(store) == 3
        assert store.integrity_check() == "ok"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_migrations_match_models(store):
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_revision_files_are_one_line_named_by_id():
    """db.head_revision() reads the head from file names; Alembic must agree."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_heads() == [head_revision()]
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(script.revision + "_") and len(script.revision) == 4
        assert script.down_revision in (None, f"{int(script.revision) - 1:04d}")


def test_newer_or_foreign_files_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite"
    open_store(newer).close()
    with sqlite3.connect(newer) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(UserError, match="newer QDQ Studio"):
        open_store(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="not an SQLite database"):
        open_store(junk)
