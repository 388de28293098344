"""Calibration page: the sample inputs whose ranges set the int8 scales, and where the job runs."""

from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from app.job_client import JobClient
from app.settings import Settings
from app.widgets import fmt
from app.widgets.banner import Banner
from app.widgets.page import Page, muted, noted, section
from app.widgets.path_picker import PathPicker
from core.jobs.spec import JobSpec

THUMBNAILS = 16
THUMB_PX = 72
NORMALISATIONS = (
    ("ImageNet mean and standard deviation (most vision models)", "imagenet"),
    ("None: pixels scaled to 0…1", "none"),
    ("Custom…", "custom"),
)
SYNTHETIC_WARNING = (
    "Random numbers do not look like real inputs: the ranges measured on them, and so the accuracy of "
    "the int8 model, can be badly off. Use synthetic data only to try the flow."
)


class CalibPage(Page):
    title = "Calibration"
    intro = (
        "Show the model a few dozen typical inputs so it can measure the range of every layer; those "
        "ranges become the int8 scales. Pick images or arrays like the ones it will see in use."
    )
    next_page = "run"
    next_label = "Run"

    def __init__(self, client: JobClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self._client = client
        self._model: tuple[str, bool] | None = None  # path, trust_code
        self.preview: dict | None = None
        self.devices: list[dict] = []
        self._preview_timer = QTimer(self, singleShot=True, interval=300, timeout=self._request_preview)

        self.body.addWidget(section("Calibration data"))
        self.from_disk = QRadioButton("Images or arrays from disk", checked=True)
        self.synthetic = QRadioButton("Synthetic (random) data")
        group = QButtonGroup(self)
        group.addButton(self.from_disk)
        group.addButton(self.synthetic)
        self.source = PathPicker(
            settings,
            "calib",
            modes=("folder", "file"),
            filters="Arrays (*.npy *.npz);;All files (*)",
            hint="A folder of images, a .npy file (N × input shape) or a .npz (one array per input)",
        )
        self.warning = Banner("warn")
        self.warning.label.setText(SYNTHETIC_WARNING)
        for w in (self.from_disk, self.source, self.synthetic, self.warning):
            self.body.addWidget(w)
        self.from_disk.toggled.connect(self._on_source_kind)
        self.source.pathChanged.connect(lambda _p: self._schedule_preview())

        self.body.addWidget(section("What the model will see"))
        self.preview_note = muted()
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListView.ViewMode.IconMode)
        self.thumbs.setFlow(QListView.Flow.LeftToRight)
        self.thumbs.setWrapping(False)
        self.thumbs.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.thumbs.setFixedHeight(THUMB_PX + 34)
        self.thumbs.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.body.addWidget(self.preview_note)
        self.body.addWidget(self.thumbs)

        self.body.addWidget(section("Settings"))
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.samples = QSpinBox(minimum=1, maximum=100_000, value=64)
        self.samples.setToolTip("More samples give steadier ranges; 64 to 512 is usual.")
        self.batch_size = QSpinBox(minimum=1, maximum=4096, value=8)
        self.normalize = QComboBox()
        for label, value in NORMALISATIONS:
            self.normalize.addItem(label, value)
        self.custom_norm = QLineEdit(placeholderText="mean/std per channel, e.g. 0.5,0.5,0.5/0.25,0.25,0.25")
        self.custom_norm.setVisible(False)
        self.normalize.currentIndexChanged.connect(self._on_normalize)
        self.custom_norm.editingFinished.connect(self._schedule_preview)
        norm_row = QHBoxLayout()
        norm_row.addWidget(self.normalize)
        norm_row.addWidget(self.custom_norm, 1)
        self.labels = PathPicker(
            settings, "labels", modes=("folder",), hint="No labels: skip the accuracy check"
        )
        self.device = QComboBox()
        self.device.addItem("Automatic (a GPU if there is one)", "auto")
        self.device_note = muted("Looking for GPUs…")
        form.addRow("Samples to use", self.samples)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Normalisation (images)", norm_row)
        labels_note = muted(
            "Optional: a folder with one sub-folder per class (0_cat, 1_dog…, in output order). With it "
            "the report compares float and int8 accuracy."
        )
        form.addRow("Labelled images", noted(self.labels, labels_note, wide=True))
        form.addRow("Run on", noted(self.device, self.device_note))
        self.body.addLayout(form)
        self.body.addStretch(1)
        self._on_source_kind()

    # -- wiring -------------------------------------------------------------------------------------

    def set_model(self, path: str, trust_code: bool) -> None:
        self._model = (path, trust_code)
        self._schedule_preview()

    def set_source(self, path: str) -> None:
        self.from_disk.setChecked(True)
        self.source.set_path(path)

    def request_devices(self) -> None:
        self._client.submit(JobSpec("devices", {}), supersede=True, on_done=self._on_devices)

    def _on_source_kind(self) -> None:
        disk = self.from_disk.isChecked()
        self.source.setEnabled(disk)
        self.warning.setVisible(not disk)
        self._schedule_preview()

    def _on_normalize(self) -> None:
        self.custom_norm.setVisible(self.normalize.currentData() == "custom")
        self._schedule_preview()

    def _schedule_preview(self) -> None:
        self._preview_timer.start()

    # -- worker answers -----------------------------------------------------------------------------

    def _request_preview(self) -> None:
        self.preview = None
        self.thumbs.clear()
        self.thumbs.hide()
        if not self.from_disk.isChecked():
            self.preview_note.setText("Synthetic data: random inputs of the model's input shape.")
            return
        if not self.source.path():
            self.preview_note.setText("Choose a folder of images or an array file to see a preview here.")
            return
        if self._model is None:
            self.preview_note.setText(
                "Choose a model first: the preview prepares inputs to fit its input shape."
            )
            return
        if not Path(self.source.path()).exists():
            self.preview_note.setText(f"There is nothing at {self.source.path()}.")
            return
        self.preview_note.setText("Preparing a preview…")
        params = {
            "calib": self.source.path(),
            "model": self._model[0],
            "trust_code": self._model[1],
            "normalize": self.normalize_value(),
            "count": THUMBNAILS,
        }
        self._client.submit(JobSpec("preview", params), supersede=True, on_done=self._on_preview)

    def _on_preview(self, outcome: str, data: dict) -> None:
        if outcome == "cancelled":
            return
        if outcome == "error":
            self.preview_note.setText(f"Cannot use this data: {data.get('message', 'unknown error')}")
            return
        self.preview = data
        shape = " × ".join(str(d) for d in data.get("shape") or [])
        skipped = data.get("skipped") or 0
        note = f"{data.get('total', 0)} samples found" + (f", {skipped} skipped" if skipped else "")
        self.preview_note.setText(note + (f"; each is prepared as {shape}." if shape else "."))
        self.thumbs.clear()
        for i, png in enumerate(data.get("thumbnails", [])):
            pixmap = QPixmap()
            pixmap.loadFromData(base64.b64decode(png), "PNG")
            self.thumbs.addItem(QListWidgetItem(QIcon(pixmap), str(i + 1)))
        self.thumbs.setVisible(self.thumbs.count() > 0)

    def _on_devices(self, outcome: str, data: dict) -> None:
        if outcome != "result":
            self.device_note.setText("Could not list devices; the job will pick one automatically.")
            return
        self.devices = data.get("devices", [])
        current = self.device.currentData()
        self.device.clear()
        self.device.addItem("Automatic (a GPU if there is one)", "auto")
        for d in self.devices:
            label = "CPU" if d.get("kind") == "cpu" else f"{d.get('name', d['id'])} ({d['id']})"
            if d.get("memory_bytes"):
                label += f", {fmt.size(d['memory_bytes'])}"
            self.device.addItem(label, d["id"])
        self.device.setCurrentIndex(max(0, self.device.findData(current)))
        gpus = [d for d in self.devices if d.get("kind") != "cpu"]
        self.device_note.setText(
            f"{len(gpus)} GPU(s) found." if gpus else "No GPU found; quantization runs on the CPU."
        )

    # -- values -------------------------------------------------------------------------------------

    def normalize_value(self) -> str:
        value = self.normalize.currentData()
        return self.custom_norm.text().strip() if value == "custom" else value

    def problem(self) -> str | None:
        """What stops a run with these settings, in words, or None."""
        if self.from_disk.isChecked():
            path = self.source.path()
            if not path:
                return "Choose calibration data on the Calibration page (or pick synthetic data)."
            if not Path(path).exists():
                return f"The calibration data at {path} does not exist."
        if self.normalize.currentData() == "custom" and not _valid_custom(self.custom_norm.text()):
            return "The custom normalisation must look like 0.5,0.5,0.5/0.25,0.25,0.25 (mean/std)."
        if self.labels.path() and not Path(self.labels.path()).is_dir():
            return f"The labelled images folder {self.labels.path()} does not exist."
        return None

    def values(self) -> dict:
        """This page's part of QuantizeOptions."""
        return {
            "calib": self.source.path() if self.from_disk.isChecked() else None,
            "samples": self.samples.value(),
            "batch_size": self.batch_size.value(),
            "normalize": self.normalize_value(),
            "labels": self.labels.path() or None,
            "device": self.device.currentData() or "auto",
        }


def _valid_custom(text: str) -> bool:
    try:
        mean, std = text.split("/")
        values = [float(v) for v in mean.split(",")], [float(v) for v in std.split(",")]
    except ValueError:
        return False
    return len(values[0]) == len(values[1]) and all(s > 0 for s in values[1])
