"""Pages driven on their own: forms, validation, the history table on a real SQLite file, export copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from app import resource_path
from app.job_client import JobClient
from app.pages.calib import CalibPage
from app.pages.export import ExportPage
from app.pages.history import HistoryPage
from app.pages.preset import PresetPage
from app.pages.run import RunPage
from app.widgets.compare import CompareDialog
from core.jobs.spec import QuantizeOptions
from core.presets import DEFAULT_PRESET, PRESETS
from core.store import open_store


def test_preset_cards_and_advanced_options(qtbot):
    page = PresetPage()
    qtbot.addWidget(page)
    assert set(page.cards) == {p.id for p in PRESETS}
    assert page.values()["preset"] == DEFAULT_PRESET
    qtbot.mouseClick(page.cards["x86-inductor-dynamic"], Qt.MouseButton.LeftButton)
    assert page.preset == "x86-inductor-dynamic"
    assert not page.qat_epochs.isEnabled(), "a dynamic preset cannot be fine-tuned"
    page.select("tensorrt")
    page.advanced.set_open(True)
    page.qat_epochs.setValue(2)
    page.observer.setCurrentIndex(page.observer.findData("minmax"))
    page.per_channel.setChecked(False)
    page.write_onnx.setChecked(False)
    page.keep_float.entry.setText("head.*")
    qtbot.keyClick(page.keep_float.entry, Qt.Key.Key_Return)
    page.add_keep_float(["stem.0", "head.*"])
    values = page.values()
    assert values["keep_float"] == ["head.*", "stem.0"]
    assert values["observer"] == "minmax" and values["qat_epochs"] == 2 and not values["per_channel"]
    assert values["export_onnx"] is False
    QuantizeOptions(model="m.pt2", out_dir="", **values)  # the engine's own validation accepts the form


def test_calibration_form_validation(qtbot, settings, tmp_path):
    page = CalibPage(JobClient(), settings)
    qtbot.addWidget(page)
    assert "Choose calibration data" in page.problem()
    page.set_source(str(tmp_path / "missing"))
    assert "does not exist" in page.problem()
    page.set_source(str(resource_path("demo", "calib")))
    assert page.problem() is None
    page.normalize.setCurrentIndex(page.normalize.findData("custom"))
    page.custom_norm.setText("0.5,0.5/0")
    assert "custom normalisation" in page.problem()
    page.custom_norm.setText("0.5,0.5,0.5/0.25,0.25,0.25")
    assert page.problem() is None
    page.synthetic.setChecked(True)
    assert page.warning.isVisibleTo(page) and "Random" in page.warning.label.text()
    values = page.values()
    assert values["calib"] is None and values["normalize"] == "0.5,0.5,0.5/0.25,0.25,0.25"
    QuantizeOptions(model="m.pt2", out_dir="", **values)


def test_run_page_shows_stages_progress_and_failure_details(qtbot):
    page = RunPage()
    qtbot.addWidget(page)
    page.set_plan("plan", None)
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    page.job_started("job1")
    assert page.cancel_button.isEnabled() and not page.start_button.isEnabled()
    page.on_stage({"name": "calibrate", "index": 3, "count": 8})
    page.on_progress({"fraction": 0.4, "message": "batch 3/8", "eta_s": 12})
    assert page.bar.value() == 400 and "about 12 s left" in page.status.text()
    assert page.stages.item(2).text().startswith("✓") and page.stages.item(3).text().startswith("●")
    page.on_error({"message": "out of memory", "details": "Traceback ...", "user_error": False})
    assert "out of memory" in page.failure.label.text() and page.failure.button.isVisibleTo(page)
    assert page.stages.item(3).text().startswith("✗")
    assert page.start_button.isEnabled()


METRICS = {
    "output_sqnr_db": 35.7,
    "onnx_parity_sqnr_db": 51.2,
    "onnx_checker": "ok",
    "size_float_bytes": 465_857,
    "size_int8_bytes": 231_611,
    "latency_float_ms": 0.317,
    "latency_int8_ms": 0.187,
    "speedup": 1.693,
}


@pytest.fixture
def sample_run(tmp_path) -> Path:
    """A run folder as docs/formats.md describes it, with the files the Export page reads."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.int8.onnx").write_bytes(b"onnx" * 1000)
    (run / "model.int8.pt2").write_bytes(b"pt2" * 1000)
    report = {
        "schema": 1,
        "run_id": 7,
        "model": {"path": "/models/demo/model.pt2"},
        "preset": "onnxruntime",
        "artifacts": {"int8_onnx": "model.int8.onnx", "int8_pt2": "model.int8.pt2", "html": "report.html"},
        "metrics": METRICS,
        "warnings": ["calibrated on 8 samples only"],
    }
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_export_copies_the_onnx_and_shows_validation(qtbot, settings, sample_run, tmp_path):
    page = ExportPage(settings)
    qtbot.addWidget(page)
    assert not page.export_button.isEnabled()
    report = json.loads((sample_run / "report.json").read_text())
    page.set_run(str(sample_run), report)
    texts = [page.checks.itemAt(i).widget().text() for i in range(page.checks.count())]
    assert "ONNX checker" in texts and "Size" in texts and "Speed (ONNX Runtime CPU)" in texts
    assert "1.69× faster per input on this computer." in texts
    assert "8 samples" in page.warnings.label.text()
    dest = tmp_path / "out" / "demo.int8.onnx"
    page.destination.set_path(str(dest))
    with qtbot.waitSignal(page.exported, timeout=30_000):
        page.export()
    assert dest.read_bytes() == (sample_run / "model.int8.onnx").read_bytes()
    page.pt2.setChecked(True)
    assert page.destination.path().endswith(".pt2")

    # a run quantized without ONNX export offers the .pt2 alone
    (sample_run / "model.int8.onnx").unlink()
    page.onnx.setChecked(True)
    page.set_run(str(sample_run), {**report, "artifacts": {"int8_pt2": "model.int8.pt2"}})
    assert not page.onnx.isEnabled() and page.pt2.isChecked() and page.export_button.isEnabled()
    assert "no ONNX file" in page.run_label.text()
    dest = tmp_path / "out" / "demo.int8.pt2"
    page.destination.set_path(str(dest))
    with qtbot.waitSignal(page.exported, timeout=30_000):
        page.export()
    assert dest.read_bytes() == (sample_run / "model.int8.pt2").read_bytes()


def _record(store, model: str, status: str, sqnr: float, out_dir: str | None = None) -> int:
    run_id = store.create_run(model, "onnxruntime", {}, "cpu", out_dir, worker_pid=None)
    layers = [{"name": "stem.0", "op": "conv2d", "quantized": True, "sqnr_db": sqnr}]
    store.finish_run(run_id, status, metrics={"output_sqnr_db": sqnr, "size_int8_bytes": 1000}, layers=layers)
    return run_id


def test_history_filters_sorts_compares_and_deletes(qtbot, db_path, tmp_path, monkeypatch):
    store = open_store(db_path)
    a = _record(store, "/models/alpha.pt2", "succeeded", 31.0, str(tmp_path / "a"))
    b = _record(store, "/models/beta.pt2", "succeeded", 38.5)
    c = _record(store, "/models/beta.pt2", "failed", 0.0)
    page = HistoryPage(lambda: store)
    qtbot.addWidget(page)
    page.refresh()
    assert page.table.rowCount() == 3
    page.filter.setText("beta")
    assert page.table.rowCount() == 2
    page.filter.setText("")
    page.table.sortItems(6, Qt.SortOrder.DescendingOrder)
    assert page.table.item(0, 6).text() == "38.5 dB"

    selection = page.table.selectionModel()
    for row in range(page.table.rowCount()):
        if page.table.item(row, 0).text() in (f"#{a}", f"#{b}"):
            flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            selection.select(page.table.model().index(row, 0), flags)
    assert sorted(page.selected_ids()) == [a, b] and page.compare_button.isEnabled()
    run_a, run_b = sorted((r for r in page.runs if r["id"] in (a, b)), key=lambda r: r["id"])
    dialog = CompareDialog(store.compare_runs(a, b), run_a, run_b)
    qtbot.addWidget(dialog)
    assert dialog.layers.item(0, 3).text() == "+7.5 dB"

    monkeypatch.setattr(page, "confirm_delete", lambda runs: True)  # the question box itself is Qt's
    page.delete_selected()
    assert [r["id"] for r in page.runs] == [c]
    store.close()


def test_window_remembers_geometry_and_recent_models(qtbot, settings, db_path):
    from app.window import MainWindow

    first = MainWindow(JobClient(), settings, db_path=db_path)
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.resize(700, 500)
    settings.add_recent_model("/models/a.pt2")
    first.close()
    second = MainWindow(JobClient(), settings, db_path=db_path)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (700, 500)
    recent = second.pages["model"].recent
    assert recent.item(0).data(Qt.ItemDataRole.UserRole) == "/models/a.pt2"


def test_quitting_during_a_run_asks_first(window, monkeypatch):
    """Closing the window mid-run needs a yes; a no keeps the window (and the run) alive."""
    asked = []
    monkeypatch.setattr(type(window.pages["run"]), "running", property(lambda self: True))
    monkeypatch.setattr(window, "confirm_quit_during_run", lambda: asked.append(1) or False)
    window.close()
    assert asked and window.isVisible()
