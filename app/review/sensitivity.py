"""The Sensitivity tab: ask for a per-layer ranking, see it as a chart, keep the suggested set in float.

The ranking comes from the sensitivity job (core/jobs/spec.py): {"baseline_sqnr_db", "ranking":
[{"layer", "sqnr_db", "gain_db"}], "auto_keep_float": [...], "reached"}.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.review.charts import BarChart
from app.review.quant import GOOD_DB, fmt_db
from app.widgets.page import muted, section, set_tone

AUTO = QColor("#e8590c")
REST = QColor("#8fb3e0")
EMPTY = (
    "Press “Rank layer sensitivity” to find the layers whose quantization costs the most output SQNR. "
    "It calibrates once, then tries each layer in float; it takes seconds to a few minutes and the window stays usable."
)


class SensitivityPanel(QSplitter):
    rankRequested = Signal(float)
    shown = Signal(dict)  # a ranking arrived and is on screen
    keepFloatRequested = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        side = QWidget()
        side.setMinimumWidth(280)
        side.setMaximumWidth(380)
        col = QVBoxLayout(side)
        col.setContentsMargins(4, 10, 12, 4)
        col.addWidget(section("Which layers cost the most accuracy?"))
        col.addWidget(
            muted(
                "Each layer is quantized on its own and the model output compared with float. "
                "“Auto” then picks the smallest set of layers to keep in float that reaches your target."
            )
        )
        form = QFormLayout()
        self.target = QDoubleSpinBox(
            minimum=5.0, maximum=80.0, value=GOOD_DB, singleStep=1.0, decimals=1, suffix=" dB"
        )
        self.target.setToolTip(
            "Output SQNR the auto keep-float set must reach (30 dB and above is usually safe)"
        )
        form.addRow("Target output SQNR:", self.target)
        col.addLayout(form)
        self.rank = QPushButton("Rank layer sensitivity", objectName="primary")
        self.rank.clicked.connect(self._on_rank)
        col.addWidget(self.rank)
        self.status = muted()
        col.addWidget(self.status)
        col.addSpacing(8)
        self.summary = QLabel(wordWrap=True)
        col.addWidget(self.summary)
        self.auto_title = section("Auto keep-float set")
        self.auto_list = QListWidget()
        col.addWidget(self.auto_title)
        col.addWidget(self.auto_list)
        self.keep = QPushButton("Keep these in float and re-run")
        self.keep.setToolTip("Start a new run with these layers in float; it opens compared with this one")
        self.keep.clicked.connect(lambda: self.keepFloatRequested.emit(list(self.auto_keep)))
        col.addWidget(self.keep)
        col.addStretch(1)
        self.chart = BarChart("Output SQNR gained by keeping each layer in float", "gain (dB)")
        self.addWidget(side)
        self.addWidget(self.chart)
        self.setStretchFactor(1, 1)
        self.setChildrenCollapsible(False)
        self.auto_keep: list[str] = []
        self.clear()

    def clear(self) -> None:
        self.auto_keep = []
        self.status.clear()
        self.summary.clear()
        self.auto_list.clear()
        for widget in (self.summary, self.auto_title, self.auto_list, self.keep):
            widget.hide()
        self.chart.show_message(EMPTY)

    def _on_rank(self) -> None:
        self.status.setText("Ranking requested: the chart appears here when the job finishes.")
        self.rankRequested.emit(self.target.value())

    def show_result(self, result: dict) -> None:
        ranking = sorted(result.get("ranking") or [], key=lambda r: -(r.get("gain_db") or 0.0))
        self.auto_keep = [str(x) for x in result.get("auto_keep_float") or []]
        self.status.clear()
        if not ranking:
            self.chart.show_message("The sensitivity job returned no ranking.")
        else:
            names = [str(r.get("layer")) for r in ranking]
            gains = [float(r.get("gain_db") or 0.0) for r in ranking]
            colors = [AUTO if n in self.auto_keep else REST for n in names]
            self.chart.set_bars(names, gains, colors)
            self.chart.show_plot(caption="Orange: the auto keep-float set. Click a bar to select the layer.")
        baseline = result.get("baseline_sqnr_db")
        reached = result.get("reached")
        target = result.get("target_sqnr_db", self.target.value())
        text = f"All layers in int8: output SQNR {fmt_db(baseline)} dB. "
        if self.auto_keep:
            count = len(self.auto_keep)
            verb = "reaches" if reached else "does not reach"
            text += (
                f"Keeping {count} layer{'s' * (count != 1)} in float {verb} the {fmt_db(target)} dB target."
            )
        else:
            text += (
                "The target is met with every layer in int8."
                if reached
                else "No keep-float set reached the target."
            )
        self.summary.setText(text)
        set_tone(self.summary, "ok" if reached else "warn")
        self.auto_list.clear()
        self.auto_list.addItems(self.auto_keep)
        rows = min(max(len(self.auto_keep), 1), 8)
        self.auto_list.setFixedHeight(
            rows * self.auto_list.sizeHintForRow(0) + 2 * self.auto_list.frameWidth() + 4
        )
        self.summary.show()
        for widget in (self.auto_title, self.auto_list, self.keep):
            widget.setVisible(bool(self.auto_keep))
        self.shown.emit(result)
