"""Colours shared by the review views, so a red layer in the table is the same red in the graph and plots."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from app.review.quant import FAIR_DB, GOOD_DB, sqnr_level

LEVEL_COLORS = {"good": "#2da44e", "fair": "#d4a72c", "poor": "#e5534b", "none": "#9aa3ad"}
LEVEL_WORDS = {
    "good": f"good (≥ {GOOD_DB:g} dB)",
    "fair": f"fair ({FAIR_DB:g}–{GOOD_DB:g} dB)",
    "poor": f"poor (< {FAIR_DB:g} dB)",
    "none": "no SQNR",
}

# fill, border, text: light fills with dark text read on both light and dark window themes.
KIND_STYLES = {
    "compute": ("#d0e2ff", "#3b73c4", "#0b1f3a"),
    "quantize": ("#ffd8a8", "#d9480f", "#3a1a00"),
    "dequantize": ("#e5dbff", "#6741d9", "#20113d"),
    "kept_float": ("#c3fae8", "#099268", "#06352a"),
    "input": ("#343a40", "#111418", "#ffffff"),
    "output": ("#343a40", "#111418", "#ffffff"),
    "constant": ("#f1f3f5", "#adb5bd", "#495057"),
    "other": ("#e9ecef", "#868e96", "#212529"),
}
LEGEND = (
    ("compute", "compute"),
    ("quantize", "quantize"),
    ("dequantize", "dequantize"),
    ("kept_float", "kept float"),
    ("input", "input / output"),
    ("constant", "weight / constant"),
    ("other", "other"),
)
HEAT_LOW_DB, HEAT_HIGH_DB = 15.0, 40.0
NO_HEAT = "#dde1e5"
ACCENT = "#0969da"


def node_kind(node) -> str:
    """The kind to draw: a dequantize op filed under "quantize" still gets the dequantize colour."""
    if node.kind == "quantize" and node.op.startswith("dequantize"):
        return "dequantize"
    return node.kind


def kind_style(kind: str) -> tuple[QColor, QColor, QColor]:
    return tuple(QColor(c) for c in KIND_STYLES.get(kind, KIND_STYLES["other"]))


def level_color(db: float | None) -> QColor:
    return QColor(LEVEL_COLORS[sqnr_level(db)])


def heat_color(db: float) -> QColor:
    """Red at or below 15 dB through amber to green at 40 dB and above."""
    t = min(max((db - HEAT_LOW_DB) / (HEAT_HIGH_DB - HEAT_LOW_DB), 0.0), 1.0)
    return QColor.fromHsvF(t / 3.0, 0.55, 0.97)


def dot_icon(color: QColor, size: int = 12) -> QIcon:
    """A filled circle, the traffic light next to an SQNR value."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(color.darker(130))
    painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)
