"""History page: every run recorded in the project database, from the window or the `qdq` command."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from app.theme import tone
from app.widgets import fmt
from app.widgets.banner import Banner
from app.widgets.compare import CompareDialog
from app.widgets.page import Page, muted

COLUMNS = ("Run", "Model", "Preset", "Status", "Started", "Took", "Output SQNR", "Int8 size", "Speed-up")
STATUS_TONES = {
    "succeeded": "ok",
    "failed": "bad",
    "interrupted": "bad",
    "cancelled": "warn",
    "running": "muted",
}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class SortItem(QTableWidgetItem):
    """Shows formatted text, sorts by the raw value (numbers as numbers, missing values last)."""

    def __init__(self, text: str, key=None):
        super().__init__(text)
        self.setData(SORT_ROLE, key)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if a is None or b is None:
            return b is None and a is not None
        return a < b


class HistoryPage(Page):
    title = "History"
    intro = (
        "Every quantization run of this project, including those started with the qdq command. Open one "
        "to review or export it, compare two, or delete the ones you no longer need."
    )

    openRun = Signal(object)  # the run's summary dict

    def __init__(self, store: Callable, parent: QWidget | None = None):
        super().__init__(parent, scroll=False)
        self._store = store  # returns the opened core.store.Store, or None while it opens
        self.runs: list[dict] = []

        bar = QHBoxLayout()
        self.filter = QLineEdit(placeholderText="Filter by model name or path", clearButtonEnabled=True)
        self.filter.textChanged.connect(self.refresh)
        self.status_filter = QComboBox()
        self.status_filter.addItem("All runs", None)
        for status in ("succeeded", "failed", "cancelled", "interrupted", "running"):
            self.status_filter.addItem(status.capitalize(), status)
        self.status_filter.currentIndexChanged.connect(self.refresh)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.status_filter)
        bar.addWidget(refresh)
        self.body.addLayout(bar)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.sortItems(0, Qt.SortOrder.DescendingOrder)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.body.addWidget(self.table, 1)
        self.empty = muted("No runs yet. Finished runs appear here, newest first.")
        self.body.addWidget(self.empty)
        self.error = Banner("bad")
        self.body.addWidget(self.error)

        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open results")
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button = QPushButton("Compare the two selected")
        self.compare_button.clicked.connect(self.compare_selected)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(muted("Select one run to open it, two to compare them (Ctrl+click)."), 1)
        buttons.addWidget(self.delete_button)
        self.body.addLayout(buttons)
        self._update_buttons()

    # -- table --------------------------------------------------------------------------------------

    def refresh(self) -> None:
        store = self._store()
        if store is None:
            self.empty.setText("Opening the history…")
            return
        self.empty.setText("No runs yet. Finished runs appear here, newest first.")
        try:
            self.runs = store.list_runs(
                model_filter=self.filter.text().strip() or None, status=self.status_filter.currentData()
            )
        except Exception as e:  # the database is the user's file: show the problem, keep the window
            self.error.show_message(f"Could not read the history: {e}")
            return
        self.error.hide()
        selected = set(self.selected_ids())
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for r, run in enumerate(self.runs):
            for c, item in enumerate(_row(run)):
                self.table.setItem(r, c, item)
            if run["id"] in selected:
                self.table.selectRow(r)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.empty.setVisible(not self.runs)
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, 0).data(SORT_ROLE) for r in rows if self.table.item(r, 0)]

    def _selected_runs(self) -> list[dict]:
        by_id = {run["id"]: run for run in self.runs}
        return [by_id[i] for i in self.selected_ids() if i in by_id]

    def _update_buttons(self) -> None:
        runs = self._selected_runs()
        self.open_button.setEnabled(len(runs) == 1 and _has_results(runs[0]))
        self.compare_button.setEnabled(len(runs) == 2)
        self.delete_button.setEnabled(bool(runs) and all(r["status"] != "running" for r in runs))

    # -- actions ------------------------------------------------------------------------------------

    def open_selected(self) -> None:
        runs = self._selected_runs()
        if len(runs) == 1 and _has_results(runs[0]):
            self.openRun.emit(runs[0])

    def compare_selected(self) -> None:
        runs = sorted(self._selected_runs(), key=lambda r: r["id"])
        if len(runs) == 2:
            result = self._store().compare_runs(runs[0]["id"], runs[1]["id"])
            CompareDialog(result, runs[0], runs[1], self).exec()

    def delete_selected(self) -> None:
        runs = self._selected_runs()
        if runs and self.confirm_delete(runs):
            for run in runs:
                self._store().delete_run(run["id"], remove_files=self._remove_files)
            self.refresh()

    def confirm_delete(self, runs: list[dict]) -> bool:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete runs",
            f"Delete {len(runs)} run(s) from the history? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        files = QCheckBox("Also delete the files these runs wrote (exported copies elsewhere are kept)")
        files.setChecked(True)
        box.setCheckBox(files)
        answer = box.exec()
        self._remove_files = files.isChecked()
        return answer == QMessageBox.StandardButton.Yes

    _remove_files = True


def _has_results(run: dict) -> bool:
    return run["status"] == "succeeded" and bool(run.get("out_dir")) and Path(run["out_dir"]).is_dir()


def _short_path(path: str) -> str:
    """The file and its folder (demo/model.pt2): enough to tell models apart, short enough to read."""
    p = Path(path)
    return str(Path(p.parent.name, p.name)) if p.parent.name else p.name


def _row(run: dict) -> list[QTableWidgetItem]:
    m = run.get("metrics") or {}
    took = None
    if run.get("started_at") and run.get("finished_at"):
        took = (
            datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
        ).total_seconds()
    items = [
        SortItem(f"#{run['id']}", run["id"]),
        SortItem(_short_path(run.get("model_path") or ""), run.get("model_path") or ""),
        SortItem(run.get("preset") or "", run.get("preset") or ""),
        SortItem(run["status"], run["status"]),
        SortItem(fmt.when(run.get("started_at")), run.get("started_at")),
        SortItem(fmt.duration(took), took),
        SortItem(fmt.decibels(m.get("output_sqnr_db")), m.get("output_sqnr_db")),
        SortItem(fmt.size(m.get("size_int8_bytes")), m.get("size_int8_bytes")),
        SortItem(f"{m['speedup']:.2f}×" if m.get("speedup") else "–", m.get("speedup")),
    ]
    items[1].setToolTip(run.get("model_path") or "")
    if run.get("error"):
        items[3].setToolTip(run["error"])
    if run["status"] in STATUS_TONES:
        items[3].setForeground(tone(STATUS_TONES[run["status"]]))
    return items
