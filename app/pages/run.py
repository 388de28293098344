"""Run page: start the quantization, follow it stage by stage, stop it, understand a failure."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.theme import tone
from app.widgets import fmt
from app.widgets.banner import Banner
from app.widgets.details import DetailsDialog
from app.widgets.page import Page, muted, section

STAGE_WORDS = {
    "load": "Load the model",
    "capture": "Capture the graph (torch.export)",
    "prepare": "Insert range observers",
    "calibrate": "Calibrate on the sample data",
    "fine-tune": "Fine-tune with int8 simulated (QAT)",
    "convert": "Convert to int8",
    "analyse": "Measure the error of every layer",
    "export": "Export ONNX and check it",
    "report": "Write the report",
}
MARKS = {"pending": "○", "running": "●", "done": "✓", "failed": "✗"}
STAGE_TONES = {"pending": "muted", "running": "text", "done": "ok", "failed": "bad"}
MAX_LOG_LINES = 5000


class RunPage(Page):
    title = "Run"
    intro = (
        "Quantize the model with the chosen preset and calibration data. It takes from seconds to a few "
        "minutes; you can cancel at any time, and the window stays usable meanwhile."
    )

    startRequested = Signal()
    cancelRequested = Signal()
    openPageRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, scroll=False)
        self.job_id = ""
        self._error: dict = {}
        self._started = 0.0

        self.plan = QLabel(wordWrap=True)
        self.plan.setTextFormat(Qt.TextFormat.RichText)
        self.problem = Banner("warn", action="Go there")
        self.problem.actionClicked.connect(self._go_to_problem)
        self._problem_page = "model"
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start quantization", objectName="primary")
        self.start_button.setToolTip("Ctrl+R")
        self.start_button.clicked.connect(self.startRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Esc")
        self.cancel_button.clicked.connect(self.cancelRequested)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.body.addWidget(self.plan)
        self.body.addWidget(self.problem)
        self.body.addLayout(buttons)

        self.failure = Banner("bad", action="Details…")
        self.failure.actionClicked.connect(self._show_details)
        self.done = Banner("ok", action="Review the results")
        self.done.actionClicked.connect(self._go_to_review)
        self.body.addWidget(self.failure)
        self.body.addWidget(self.done)

        row = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(section("Stages"))
        self.stages = QListWidget()
        self.stages.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.stages.setMinimumWidth(300)
        self.stages.setMaximumWidth(380)
        left.addWidget(self.stages, 1)
        right = QVBoxLayout()
        right.addWidget(section("Progress"))
        self.bar = QProgressBar(maximum=1000, textVisible=True)
        self.bar.setFormat("%p %")
        self.status = muted("Not started.")
        right.addWidget(self.bar)
        right.addWidget(self.status)
        right.addWidget(section("Log"))
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("Messages from the worker appear here while a job runs.")
        right.addWidget(self.log, 1)
        row.addLayout(left, 0)
        row.addLayout(right, 1)
        self.body.addLayout(row, 1)
        self._reset_stages(list(STAGE_WORDS))
        self.set_running(False)

    def _go_to_review(self) -> None:
        self.openPageRequested.emit("review")

    def _go_to_problem(self) -> None:
        self.openPageRequested.emit(self._problem_page)

    @property
    def running(self) -> bool:
        return bool(self.job_id)

    def set_plan(self, text: str, problem: str | None, problem_page: str = "model") -> None:
        """What a click on Start would do, or why it cannot start yet."""
        self.plan.setText(text)
        self._problem_page = problem_page
        if problem:
            self.problem.show_message(problem)
        else:
            self.problem.hide()
        self.start_button.setEnabled(not problem and not self.running)

    def set_running(self, running: bool, job_id: str = "") -> None:
        self.job_id = job_id if running else ""
        self.start_button.setEnabled(not running and self.problem.isHidden())
        self.cancel_button.setEnabled(running)

    # -- job events ---------------------------------------------------------------------------------

    def job_started(self, job_id: str) -> None:
        self.set_running(True, job_id)
        self._started = time.monotonic()
        self.failure.hide()
        self.done.hide()
        self.log.clear()
        self.bar.setValue(0)
        self.status.setText("Waiting for the worker…")
        self._reset_stages([k for k in STAGE_WORDS if k != "fine-tune"])

    def on_stage(self, data: dict) -> None:
        index, name = int(data.get("index", 0)), str(data.get("name", ""))
        count = int(data.get("count") or 0)
        while self.stages.count() < max(count, index + 1):
            self.stages.addItem(QListWidgetItem())
        for i in range(self.stages.count()):
            item = self.stages.item(i)
            if i < index:
                _mark(item, "done")
            elif i == index:
                item.setData(Qt.ItemDataRole.UserRole, name)
                _mark(item, "running")
        self.log.appendPlainText(f"— {STAGE_WORDS.get(name, name)}")

    def on_progress(self, data: dict) -> None:
        self.bar.setValue(int(1000 * float(data.get("fraction") or 0.0)))
        message = str(data.get("message") or "")
        eta = data.get("eta_s")
        parts = [message] if message else []
        if eta is not None:
            parts.append(f"about {fmt.duration(eta)} left")
        parts.append(f"{fmt.duration(time.monotonic() - self._started)} so far")
        if data.get("loss") is not None:
            parts.append(f"loss {float(data['loss']):.4g}")
        self.status.setText(" · ".join(parts))

    def on_log(self, message: str) -> None:
        self.log.appendPlainText(message)

    def on_warning(self, message: str) -> None:
        self.log.appendPlainText(f"Warning: {message}")

    def on_result(self, data: dict) -> None:
        for i in range(self.stages.count()):
            _mark(self.stages.item(i), "done")
        self.bar.setValue(1000)
        elapsed = fmt.duration(time.monotonic() - self._started)
        self.status.setText(f"Finished in {elapsed}.")
        self.done.show_message(_summary((data.get("report") or {}).get("metrics") or {}, elapsed))
        self.log.appendPlainText(f"Finished: {data.get('out_dir', '')}")
        self.set_running(False)

    def on_error(self, data: dict) -> None:
        self._error = data
        self._mark_current("failed")
        self.failure.show_message(f"The run failed: {data.get('message', 'unknown error')}")
        self.failure.button.setVisible(bool(data.get("details")))
        self.status.setText("Failed.")
        self.set_running(False)

    def on_cancelled(self, data: dict) -> None:
        self._mark_current("pending")
        self.status.setText("Cancelled. Change the settings if you like and start again.")
        self.log.appendPlainText(f"Cancelled ({data.get('message') or 'by the user'}).")
        self.set_running(False)

    # -- helpers ------------------------------------------------------------------------------------

    def _reset_stages(self, names: list[str]) -> None:
        self.stages.clear()
        for name in names:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, name)
            _mark(item, "pending")
            self.stages.addItem(item)

    def _mark_current(self, state: str) -> None:
        for i in range(self.stages.count()):
            item = self.stages.item(i)
            if item.data(Qt.ItemDataRole.UserRole + 1) == "running":
                _mark(item, state)

    def _show_details(self) -> None:
        DetailsDialog(self._error.get("message", ""), self._error.get("details", ""), self).exec()


def _summary(metrics: dict, elapsed: str) -> str:
    """One line a person can act on: how close to float, how much smaller, how much faster."""
    parts = [f"Done in {elapsed}."]
    if metrics.get("output_sqnr_db") is not None:
        parts.append(f"Output error vs float: {fmt.decibels(metrics['output_sqnr_db'])} SQNR.")
    if metrics.get("accuracy_float") is not None and metrics.get("accuracy_int8") is not None:
        parts.append(
            f"Accuracy {fmt.percent(metrics['accuracy_float'])} → {fmt.percent(metrics['accuracy_int8'])}."
        )
    if metrics.get("size_float_bytes") and metrics.get("size_int8_bytes"):
        parts.append(f"{metrics['size_float_bytes'] / metrics['size_int8_bytes']:.1f}× smaller.")
    if metrics.get("speedup"):
        parts.append(f"{metrics['speedup']:.2f}× the float speed in ONNX Runtime.")
    return " ".join(parts)


def _mark(item: QListWidgetItem, state: str) -> None:
    name = item.data(Qt.ItemDataRole.UserRole) or ""
    item.setData(Qt.ItemDataRole.UserRole + 1, state)
    item.setText(f"{MARKS[state]}  {STAGE_WORDS.get(name, name.capitalize())}")
    item.setForeground(tone(STAGE_TONES[state]))
