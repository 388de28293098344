"""`qdq-studio --self-test DIR`: the real window, the real worker, the whole demo flow, with evidence.

Loads the demo model, keeps the default preset, calibrates on the demo images, waits for the job, opens
every page, exports the ONNX into DIR, saves a PNG per page and writes DIR/selftest.json. It measures
start-up (launch to first paint) and how late a 10 ms heartbeat timer fires while the job runs, which is
how stuck the window would feel.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from app import resource_path
from app.job_client import JobClient
from app.settings import Settings
from app.window import MainWindow
from core.presets import DEFAULT_PRESET

WINDOW_SIZE = (1280, 820)
TARGETS = {"startup_ms": 1500, "ui_stall_p99_ms": 50}


class StepFailed(Exception):
    pass


class Heartbeat(QObject):
    """A 10 ms timer that records how late each tick arrives; lateness is time the UI thread was busy."""

    def __init__(self, interval_ms: int = 10):
        super().__init__()
        self.interval_ms = interval_ms
        self.lateness_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self, interval=interval_ms, timerType=Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness_ms.append(max(0.0, (now - self._last) * 1000 - self.interval_ms))
        self._last = now

    def p99(self) -> float | None:
        if not self.lateness_ms:
            return None
        return round(float(np.percentile(self.lateness_ms, 99)), 2)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Keep the event loop running until `condition` holds."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not condition():
        if time.monotonic() > deadline:
            raise StepFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def settle(seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, "the window to settle")


def is_blank(image: QImage) -> bool:
    """True when the picture is (nearly) one colour: nothing was drawn."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    if image.width() < 8 or image.height() < 8:
        return True
    pixels = np.frombuffer(image.constBits(), dtype=np.uint32, count=image.width() * image.height())
    return len(np.unique(pixels[:: max(1, pixels.size // 20000)])) < 4


class SelfTest:
    def __init__(self, app: QApplication, out: Path, db: str | None, launched: float):
        self.app, self.out, self.db, self.launched = app, out, db, launched
        self.result: dict = {
            "ok": False,
            "screens": [],
            "blank_screens": [],
            "exported": None,
            "gui_imported_torch": None,
            "startup_ms": None,
            "ui_stall_p99_ms": None,
            "graph_nodes": 0,
            "layer_rows": 0,
            "steps": [],
            "error": None,
        }

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="qdq-selftest-") as tmp:
            db = self.db or str(Path(tmp) / "history.sqlite")
            window = MainWindow(JobClient(), Settings(str(Path(tmp) / "settings.ini")), db_path=db)
            window.resize(*WINDOW_SIZE)
            window.show()
            try:
                self._drive(window)
            except StepFailed as e:
                self.result["error"] = str(e)
            finally:
                self.result["gui_imported_torch"] = "torch" in sys.modules
                self.result["ok"] = (
                    self.result["error"] is None
                    and not self.result["blank_screens"]
                    and not self.result["gui_imported_torch"]
                )
                self.result["targets_met"] = {
                    key: self.result[key] is not None and self.result[key] < limit
                    for key, limit in TARGETS.items()
                }
                (self.out / "selftest.json").write_text(
                    json.dumps(self.result, indent=2) + "\n", encoding="utf-8"
                )
                window.close()
        print(json.dumps(self.result, indent=2))
        return 0 if self.result["ok"] else 1

    # -- the flow -----------------------------------------------------------------------------------

    def _step(self, name: str) -> None:
        self.result["steps"].append({"step": name, "at_s": round(time.perf_counter() - self.launched, 2)})
        print(f"self-test: {name}", flush=True)

    def _drive(self, w: MainWindow) -> None:
        wait_until(lambda: w.first_paint_at is not None, 30, "the first paint")
        self.result["startup_ms"] = round((w.first_paint_at - self.launched) * 1000, 1)

        self._step("load the demo model")
        w.open_demo()
        model = w.pages["model"]
        wait_until(
            lambda: model.info is not None or model.status.label.text().startswith("Could not"),
            300,
            "the model summary",
        )
        if not (model.info or {}).get("exportable"):
            raise StepFailed(f"the demo model was not read: {model.status.label.text()}")
        self._shot(w, "model")

        self._step("default preset")
        w.show_page("preset")
        if w.pages["preset"].values()["preset"] != DEFAULT_PRESET:
            raise StepFailed("the default preset is not selected")
        self._shot(w, "preset")

        self._step("calibration data")
        calib = w.pages["calib"]
        w.show_page("calib")
        if Path(calib.source.path()) != resource_path("demo", "calib"):
            raise StepFailed(f"the demo calibration folder was not filled in: {calib.source.path()!r}")
        wait_until(
            lambda: calib.preview is not None and calib.devices, 300, "the calibration preview and devices"
        )
        self._shot(w, "calib")

        self._step("quantize")
        outcome: dict = {}
        w.runFinished.connect(lambda kind, data: outcome.update(kind=kind, data=data))
        beat = Heartbeat()
        beat.start()
        if not w.start_run():
            raise StepFailed(f"the run did not start: {w.pages['run'].problem.label.text()}")
        wait_until(lambda: bool(outcome), 900, "the quantization job")
        beat.stop()
        self.result["ui_stall_p99_ms"] = beat.p99()
        if outcome.get("kind") != "result":
            message = (outcome.get("data") or {}).get("message") or w.pages["run"].failure.label.text()
            self._shot(w, "run")
            raise StepFailed(f"the quantization job did not succeed: {message}")

        self._step("review")
        review = w.pages["review"]
        wait_until(
            lambda: hasattr(review, "screenshot_targets") or w.pages["review"] is not review,
            60,
            "the review views",
        )
        review = w.pages["review"]
        if not hasattr(review, "screenshot_targets"):
            raise StepFailed("the review views are not available")
        w.show_page("review")
        review.show_target("graph", wait_ms=30_000)
        settle(0.5)
        self.result["graph_nodes"] = int(review.graph_node_count())
        self.result["layer_rows"] = int(review.layer_row_count())
        self._shot(w, "review")
        worst = review.worst_layer()
        if worst:
            review.select_layers([worst])  # plots and the side panel show real content, not "select a layer"
            settle(0.3)
        for name, widget in review.screenshot_targets().items():
            review.show_target(name)
            settle(0.3)
            self._shot_widget(widget, f"review-{name}")
        if not self.result["graph_nodes"] or not self.result["layer_rows"]:
            raise StepFailed("the review page shows no graph nodes or no layers")

        self._step("sensitivity")
        ranked: list[dict] = []
        review.sensitivity.shown.connect(ranked.append)
        w.rank_sensitivity(40.0)  # above the demo's all-int8 SQNR, so Auto has to pick layers
        wait_until(lambda: bool(ranked), 300, "the sensitivity ranking")
        review.show_target("sensitivity")
        settle(0.3)
        self._shot_widget(review.screenshot_targets()["sensitivity"], "review-sensitivity")

        self._step("run page")
        w.show_page("run")
        self._shot(w, "run")

        self._step("export")
        export = w.pages["export"]
        w.show_page("export")
        dest = self.out.resolve() / "model.int8.onnx"
        dest.unlink(missing_ok=True)
        export.destination.set_path(str(dest))
        done: list[str] = []
        export.exported.connect(done.append)
        export.export()
        wait_until(lambda: bool(done) or export.export_button.isEnabled(), 120, "the export")
        if not dest.is_file() or dest.stat().st_size == 0:
            raise StepFailed(f"the export did not write {dest}: {export.result.label.text()}")
        self.result["exported"] = str(dest)
        self._shot(w, "export")

        self._step("history")
        w.show_page("history")
        history = w.pages["history"]
        history.refresh()
        if not any(r["status"] == "succeeded" for r in history.runs):
            raise StepFailed(f"the run is not in the history: {history.runs}")
        if history.table.rowCount():
            history.table.selectRow(0)
        self._shot(w, "history")
        self._step("done")

    # -- screenshots --------------------------------------------------------------------------------

    def _shot(self, w: MainWindow, name: str) -> None:
        settle(0.3)
        self._save(w.grab().toImage(), name)

    def _shot_widget(self, widget: QWidget, name: str) -> None:
        self._save(widget.grab().toImage(), name)

    def _save(self, image: QImage, name: str) -> None:
        path = self.out / f"{name}.png"
        if not image.save(str(path)):
            raise StepFailed(f"could not save {path}")
        self.result["screens"].append(path.name)
        if is_blank(image):
            self.result["blank_screens"].append(path.name)
