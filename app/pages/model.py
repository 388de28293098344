"""Model page: choose the network to quantize and see what the worker found inside it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import demo_model_path
from app.job_client import JobClient
from app.settings import Settings
from app.widgets import fmt
from app.widgets.banner import Banner
from app.widgets.details import DetailsDialog
from app.widgets.page import Page, muted, section
from app.widgets.table import fact_table, fill, fit_rows
from core.jobs.spec import JobSpec

MODEL_FILTER = "PyTorch models (*.pt2 *.py);;All files (*)"
FORMATS = {"pt2": "ExportedProgram (.pt2)", "py": "Python recipe (.py)"}


class ModelPage(Page):
    title = "Model"
    intro = (
        "Choose the PyTorch model to quantize: a .pt2 file saved with torch.export, or a .py recipe "
        "that builds it. The summary below shows what QDQ Studio found inside."
    )
    next_page = "preset"
    next_label = "Preset"

    modelChanged = Signal(str)  # a new model was chosen (not yet inspected)
    inspected = Signal(object)  # the inspect result, or None when the model could not be read

    def __init__(self, client: JobClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self._client, self._settings = client, settings
        self.model_path = ""
        self.trust_code = False
        self.info: dict | None = None
        self._job = ""
        self._error: dict = {}

        row = QHBoxLayout()
        row.setSpacing(24)
        row.addLayout(self._build_chooser(), 0)
        row.addLayout(self._build_summary(), 1)
        self.body.addLayout(row)
        self.body.addStretch(1)
        self._refresh_recent()
        self._show_summary()

    # -- layout -------------------------------------------------------------------------------------

    def _build_chooser(self) -> QVBoxLayout:
        col = QVBoxLayout()
        self.demo_button = QPushButton("Try the demo model", objectName="primary")
        self.demo_button.setToolTip("A small image classifier bundled with QDQ Studio, with sample images.")
        self.demo_button.clicked.connect(self.open_demo)
        self.open_button = QPushButton("Open model…")
        self.open_button.setToolTip("Ctrl+O")
        self.open_button.clicked.connect(self.browse)
        drop = QFrame(objectName="dropZone")
        drop_layout = QVBoxLayout(drop)
        drop_hint = muted("…or drop a .pt2 or .py file anywhere on this window.")
        drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        drop_layout.addWidget(drop_hint)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(160)
        self.recent.itemActivated.connect(self._open_recent)
        col.addWidget(self.demo_button)
        col.addWidget(self.open_button)
        col.addWidget(drop)
        col.addSpacing(8)
        col.addWidget(section("Recent models"))
        col.addWidget(self.recent)
        col.addStretch(1)
        for w in (self.demo_button, self.open_button, drop, self.recent):
            w.setMinimumWidth(300)
            w.setMaximumWidth(380)
        return col

    def _build_summary(self) -> QVBoxLayout:
        col = QVBoxLayout()
        self.name_label = section("")
        self.path_label = muted()
        self.status = Banner(action="Details…")
        self.status.actionClicked.connect(self._show_details)
        facts = QGridLayout()
        facts.setHorizontalSpacing(18)
        self.facts: dict[str, QLabel] = {}
        for i, (key, label) in enumerate(
            (("format", "Format"), ("params", "Parameters"), ("batch", "Batch size"))
        ):
            facts.addWidget(muted(label), 0, i)
            value = QLabel()
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            facts.addWidget(value, 1, i)
            self.facts[key] = value
        self.inputs = fact_table(["Input", "Shape", "Type"])
        self.ops = fact_table(["Operation", "Count"])
        self.ops.setSortingEnabled(True)
        self.summary = QWidget()
        inner = QVBoxLayout(self.summary)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.name_label)
        inner.addWidget(self.path_label)
        inner.addWidget(self.status)
        # what inspect found; hidden when the file could not be read, so no empty tables linger
        self.details = QWidget()
        found = QVBoxLayout(self.details)
        found.setContentsMargins(0, 0, 0, 0)
        found.addLayout(facts)
        found.addWidget(section("Inputs"))
        found.addWidget(self.inputs)
        found.addWidget(section("Operations in the graph"))
        found.addWidget(self.ops, 1)
        inner.addWidget(self.details, 100)
        inner.addStretch(1)  # takes the room when the details are hidden
        self.empty = muted(
            "No model yet. Press “Try the demo model” to see the whole flow on a small image classifier, "
            "or open your own .pt2 or .py file."
        )
        col.addWidget(self.empty)
        col.addWidget(self.summary, 1)
        return col

    # -- choosing a model ---------------------------------------------------------------------------

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a PyTorch model", self._settings.last_folder("model"), MODEL_FILTER
        )
        if path:
            self._settings.set_last_folder("model", path)
            self.open_model(path)

    def _open_recent(self, item: QListWidgetItem) -> None:
        if item.data(Qt.ItemDataRole.UserRole):
            self.open_model(item.data(Qt.ItemDataRole.UserRole))

    def open_demo(self) -> None:
        self.open_model(str(demo_model_path()))

    def open_model(self, path: str) -> bool:
        """Start reading a model; a .py recipe runs code, so it needs the user's word first."""
        path = str(Path(path).expanduser().resolve())
        if not Path(path).is_file():
            self._show_error({"message": f"There is no file at {path}.", "user_error": True}, path)
            return False
        trust = path.endswith(".py")
        if trust and not self.confirm_code(path):
            return False
        self.model_path, self.trust_code, self.info = path, trust, None
        self._settings.add_recent_model(path)
        self._refresh_recent()
        self.modelChanged.emit(path)
        self._job = self._client.submit(
            JobSpec("inspect", {"model": path, "trust_code": trust}), supersede=True, on_done=self._on_done
        )
        self._show_summary(reading=True)
        return True

    def confirm_code(self, path: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Run this recipe?",
            f"{Path(path).name} is a Python recipe: opening it runs the code inside it on this computer, "
            "with your permissions.\n\nOnly continue if you wrote it or trust where it came from.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_done(self, outcome: str, data: dict) -> None:
        if outcome == "result" and data.get("path", self.model_path) == self.model_path:
            self.info = data
            self._show_summary()
            self.inspected.emit(data)
        elif outcome == "error":
            self._show_error(data, self.model_path)
            self.inspected.emit(None)

    # -- showing the summary ------------------------------------------------------------------------

    def _refresh_recent(self) -> None:
        self.recent.clear()
        for path in self._settings.recent_models():
            item = QListWidgetItem(Path(path).name)
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.recent.addItem(item)
        if not self.recent.count():
            item = QListWidgetItem("Models you open will be listed here.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent.addItem(item)

    def _show_summary(self, reading: bool = False) -> None:
        has_model = bool(self.model_path)
        self.empty.setVisible(not has_model)
        self.summary.setVisible(has_model)
        if not has_model:
            return
        self.name_label.setText(Path(self.model_path).name)
        self.path_label.setText(self.model_path)
        info = self.info or {}
        self.details.setVisible(bool(self.info))
        self.status.button.hide()
        if reading:
            self.status.show_message("Reading the model… (the first time takes a few seconds)", "ok")
        elif info.get("exportable"):
            self.status.show_message("This model can be captured and quantized.", "ok")
        elif info:
            why = info.get("why") or "torch.export could not capture it."
            self.status.show_message(f"This model cannot be quantized as it is: {why}", "bad")
        batch = "any (dynamic)" if info.get("dynamic_batch") else "fixed" if info else ""
        self.facts["format"].setText(FORMATS.get(info.get("format", ""), info.get("format", "")))
        self.facts["params"].setText(fmt.count(info["params"]) if "params" in info else "")
        self.facts["batch"].setText(batch)
        inputs = [
            (i.get("name", ""), _shape(i.get("shape")), i.get("dtype", "")) for i in info.get("inputs", [])
        ]
        fill(self.inputs, inputs)
        fit_rows(self.inputs, 4, exact=True)
        fill(self.ops, [(_op_name(op), n) for op, n in info.get("ops", {}).items()])
        self.ops.sortItems(1, Qt.SortOrder.DescendingOrder)
        fit_rows(self.ops, 14)

    def _show_error(self, data: dict, path: str) -> None:
        self._error = data
        self.info = None
        self._show_summary()
        self.name_label.setText(Path(path).name)
        self.status.show_message(f"Could not read this model: {data.get('message', 'unknown error')}", "bad")
        self.status.button.setVisible(bool(data.get("details")))

    def _show_details(self) -> None:
        DetailsDialog(self._error.get("message", ""), self._error.get("details", ""), self).exec()


def _shape(shape) -> str:
    return " × ".join(str(d) for d in shape) if shape else "–"


def _op_name(op: str) -> str:
    """aten.conv2d.default → conv2d: the part a person recognises."""
    parts = op.split(".")
    if len(parts) >= 2 and parts[0] in ("aten", "torch", "quantized_decomposed"):
        return parts[1]
    return op
