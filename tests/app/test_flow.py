"""The whole window on the real worker: demo model → preset → calibration → run → review → export → history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import resource_path
from app.job_client import READY

from .conftest import JOB_MS, WORKER_START_MS, demo_calib

pytestmark = pytest.mark.slow


def _run_to_end(qtbot, window) -> tuple[str, dict]:
    finished: list = []
    window.runFinished.connect(lambda outcome, data: finished.append((outcome, data)))
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert window.pages["run"].running, window.pages["run"].problem.label.text()
    qtbot.waitUntil(lambda: bool(finished), timeout=JOB_MS)
    return finished[0]


def test_demo_flow_end_to_end(qtbot, demo_ready, tmp_path):
    w = demo_ready
    model, calib = w.pages["model"], w.pages["calib"]
    assert model.info["exportable"] and model.ops.rowCount() > 3
    assert calib.source.path() == demo_calib() and calib.thumbs.count() > 0
    assert not calib.thumbs.item(0).icon().isNull()
    assert "64" in calib.preview_note.text() or calib.preview["total"] > 0
    calib.samples.setValue(32)

    outcome, data = _run_to_end(qtbot, w)
    assert outcome == "result", data
    assert w.current_page() == "review"
    review = w.pages["review"]
    assert review.graph_node_count() > 0 and review.layer_row_count() > 0
    first_run = data["out_dir"]

    w.show_page("export")
    export = w.pages["export"]
    assert export.out_dir == first_run and export.checks.count() > 0
    dest = tmp_path / "deploy" / "demo.int8.onnx"
    export.destination.set_path(str(dest))
    with qtbot.waitSignal(export.exported, timeout=30_000):
        qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    assert dest.stat().st_size > 1000

    w.show_page("history")
    history = w.pages["history"]
    assert [r["status"] for r in history.runs] == ["succeeded"]
    history.table.selectRow(0)
    w.show_page("model")
    history.open_selected()
    assert w.current_page() == "review" and w.run_dir == first_run

    layer = w.report["layers"][0]["name"]
    finished: list = []
    w.runFinished.connect(lambda outcome, data: finished.append(outcome))
    review.keepFloatRequested.emit([layer])
    qtbot.waitUntil(lambda: bool(finished), timeout=JOB_MS)
    assert finished == ["result"]
    assert layer in w.pages["preset"].values()["keep_float"]
    assert w.run_dir != first_run and w.report["options"]["keep_float"] == [layer]
    assert len(history.runs) == 2
    # the new run's graph shows that layer in float, and the review compares it with the first run
    from core.graphdoc import load_graphs

    nodes = load_graphs(Path(w.run_dir) / "graph.json")["quantized"].nodes
    assert {n.layer: n.kind for n in nodes if n.layer}[layer] == "kept_float"
    assert {x["name"]: x for x in w.report["layers"]}[layer]["quantized"] is False
    assert review.previous is not None and review.previous.report["run_id"] != w.report["run_id"]


def test_recipe_needs_confirmation_and_drops_route_by_kind(qtbot, window, monkeypatch):
    model = window.pages["model"]
    recipe = str(resource_path("demo", "recipe.py"))
    monkeypatch.setattr(model, "confirm_code", lambda path: False)
    assert not model.open_model(recipe)
    assert model.model_path == ""

    monkeypatch.setattr(model, "confirm_code", lambda path: True)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(recipe)])
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)
    assert window.current_page() == "model" and model.model_path == recipe and model.trust_code
    qtbot.waitUntil(lambda: model.info is not None, timeout=WORKER_START_MS + JOB_MS)
    assert model.info["format"] == "py" and model.info["exportable"]

    mime.setUrls([QUrl.fromLocalFile(demo_calib())])
    window.dropEvent(
        QDropEvent(
            QPointF(50, 50),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )
    assert window.current_page() == "calib" and window.pages["calib"].source.path() == demo_calib()
    qtbot.waitUntil(lambda: window.pages["calib"].preview is not None, timeout=JOB_MS)
    qtbot.waitUntil(lambda: window.client.state == READY, timeout=JOB_MS)
    assert window.pages["calib"].device.count() >= 2, "the worker's device list fills the combo"

    for i, key in enumerate(("model", "preset", "calib", "run", "review", "export", "history")):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + i), Qt.KeyboardModifier.ControlModifier)
        assert window.current_page() == key


def test_self_test_command(tmp_path):
    out = tmp_path / "selftest"
    proc = subprocess.run(
        [sys.executable, "-m", "app.main", "--self-test", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    report = json.loads((out / "selftest.json").read_text())
    assert proc.returncode == 0, (report.get("error"), proc.stderr[-2000:])
    assert report["ok"] and not report["gui_imported_torch"] and not report["blank_screens"]
    assert len(report["screens"]) >= 5
    assert any("graph" in s for s in report["screens"]) and any("layers" in s for s in report["screens"])
    assert Path(report["exported"]).is_file()
    assert report["graph_nodes"] > 0 and report["layer_rows"] > 0
