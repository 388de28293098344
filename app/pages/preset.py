"""Preset page: pick the target hardware in plain words; expert knobs stay folded away."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.widgets.collapsible import Collapsible
from app.widgets.keep_float import KeepFloatEditor
from app.widgets.page import Page, muted, noted
from core.presets import DEFAULT_PRESET, OBSERVERS, PRESETS, PresetInfo, get_preset

OBSERVER_WORDS = {
    "minmax": "Min / max (fast; one outlier can stretch the range)",
    "histogram": "Histogram (slower; ignores rare outliers)",
    "moving-average": "Moving average of min / max",
}


class PresetCard(QFrame):
    """One preset explained; clicking anywhere on it selects it."""

    chosen = Signal(str)

    def __init__(self, info: PresetInfo, parent: QWidget | None = None):
        super().__init__(parent, objectName="card")
        self.info = info
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        self.radio = QRadioButton(info.title + ("   (recommended)" if info.id == DEFAULT_PRESET else ""))
        font = self.radio.font()
        font.setBold(True)
        self.radio.setFont(font)
        self.radio.toggled.connect(self._on_toggled)
        layout.addWidget(self.radio)
        layout.addWidget(_wrapped(info.summary))
        for heading, text in (
            ("Runs on", info.hardware),
            ("What changes", info.changes),
            ("Choose it when", info.choose_when),
        ):
            layout.addWidget(_wrapped(f"<b>{heading}:</b> {text}"))
        layout.addStretch(1)

    def _on_toggled(self, on: bool) -> None:
        if on:
            self.chosen.emit(self.info.id)

    def set_selected(self, on: bool) -> None:
        self.radio.setChecked(on)
        self.setProperty("selected", on)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self.radio.setChecked(True)
        super().mousePressEvent(event)


class PresetPage(Page):
    title = "Preset"
    intro = (
        "Choose where the quantized model will run. Each preset places the int8 conversions the way that "
        "hardware runs fastest; if you are unsure, keep the recommended one."
    )
    next_page = "calib"
    next_label = "Calibration"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.preset = DEFAULT_PRESET
        grid = QGridLayout()
        grid.setSpacing(12)
        self.cards: dict[str, PresetCard] = {}
        for i, info in enumerate(PRESETS):
            card = PresetCard(info)
            card.chosen.connect(self.select)
            grid.addWidget(card, i // 2, i % 2)
            self.cards[info.id] = card
        self.body.addLayout(grid)
        self.advanced = Collapsible(
            "Advanced options (for people who know quantization)", self._build_advanced()
        )
        self.body.addWidget(self.advanced)
        self.body.addStretch(1)
        self.select(DEFAULT_PRESET)

    def _build_advanced(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.observer = QComboBox()
        self.observer.addItem("The preset's choice", None)
        for name in OBSERVERS:
            self.observer.addItem(OBSERVER_WORDS.get(name, name), name)
        self.per_channel = QCheckBox("One scale per output channel for weights (more accurate)", checked=True)
        self.qat_epochs = QSpinBox(minimum=0, maximum=100, specialValueText="0 (calibrate only)")
        self.qat_note = muted()
        self.reference = QCheckBox("Reference representation (integer arithmetic written out as plain ops)")
        self.keep_float = KeepFloatEditor()
        self.write_onnx = QCheckBox("Write the int8 ONNX file", checked=True)
        onnx_note = muted(
            "Turn it off only for a model ONNX cannot hold, such as an FFT on complex numbers: the run then "
            "gives the int8 .pt2 alone, without the ONNX checks."
        )
        form.addRow("How ranges are measured", self.observer)
        form.addRow("Weights", self.per_channel)
        form.addRow("Fine-tune epochs (QAT)", noted(self.qat_epochs, self.qat_note))
        form.addRow("Converted graph", self.reference)
        form.addRow("Keep in float", self.keep_float)
        form.addRow("ONNX", noted(self.write_onnx, onnx_note))
        return box

    def select(self, preset_id: str) -> None:
        self.preset = preset_id
        for pid, card in self.cards.items():
            card.set_selected(pid == preset_id)
        static = get_preset(preset_id).static
        self.qat_epochs.setEnabled(static)
        if not static:
            self.qat_epochs.setValue(0)
        self.qat_note.setText(
            "Fine-tuning trains the model briefly with int8 simulated; it needs the calibration images and "
            "takes longer. 0 means calibrate only."
            if static
            else "This preset measures ranges while the model runs, so it cannot be fine-tuned."
        )

    def add_keep_float(self, names: list[str]) -> None:
        self.keep_float.add(names)

    def values(self) -> dict:
        """This page's part of QuantizeOptions."""
        return {
            "preset": self.preset,
            "observer": self.observer.currentData(),
            "per_channel": self.per_channel.isChecked(),
            "qat_epochs": self.qat_epochs.value(),
            "reference_representation": self.reference.isChecked(),
            "keep_float": self.keep_float.names(),
            "export_onnx": self.write_onnx.isChecked(),
        }


def _wrapped(text: str) -> QLabel:
    label = QLabel(text, wordWrap=True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label
