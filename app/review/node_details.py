"""The side panel that says what a graph node is and what quantization did to it."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from app.review.quant import fmt, fmt_db, fmt_range, sqnr_level, summarise
from app.review.style import LEVEL_COLORS, LEVEL_WORDS, kind_style, node_kind
from core.graphdoc import GraphNode

ROWS = (
    "Op", "Kind", "Layer", "Module", "Shape", "Dtype", "Precision",
    "Scale", "Zero point", "Weight scale", "Activation range", "Weight range", "SQNR",
)  # fmt: skip
SHOWN_ATTRS = {"scale", "zero_point"}


class NodeDetails(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumWidth(250)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        area = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(area)
        body = QWidget()
        area.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 10)
        self.title = QLabel(wordWrap=True)
        self.title.setStyleSheet("font-size: 12pt; font-weight: 600;")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint = QLabel(
            "Click a node in the graph, or a row in the Layers tab, to see its op, shape, scale, zero point "
            "and SQNR here.",
            wordWrap=True,
            objectName="muted",
        )
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        self.form = QFormLayout()
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.form.setVerticalSpacing(7)
        self.values: dict[str, QLabel] = {}
        for name in ROWS:
            self.values[name] = self._add_row(name)
        layout.addLayout(self.form)
        self.attrs_title = QLabel("Other attributes", objectName="sectionTitle")
        self.attrs = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.attrs.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addSpacing(6)
        layout.addWidget(self.attrs_title)
        layout.addWidget(self.attrs)
        layout.addStretch(1)
        self.clear()

    def _add_row(self, name: str) -> QLabel:
        value = QLabel(wordWrap=True)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form.addRow(QLabel(f"{name}:", objectName="muted"), value)
        return value

    def value(self, name: str) -> str:
        """The text shown for a row ('' when the row is hidden), for tests and accessibility."""
        return self.values[name].text() if self.form.isRowVisible(self.values[name]) else ""

    def clear(self) -> None:
        self.title.setText("Nothing selected")
        self.hint.show()
        for label in self.values.values():
            self.form.setRowVisible(label, False)
        self.attrs_title.hide()
        self.attrs.hide()

    def show_node(
        self, node: GraphNode, layer: dict | None, weight_range: tuple[float, float] | None
    ) -> None:
        self.title.setText(node.label if node.label == node.id else f"{node.label}\n({node.id})")
        self.hint.hide()
        layer = layer or {}
        attrs = node.attrs or {}
        kind = node_kind(node)
        border = kind_style(kind)[1]
        db = layer.get("sqnr_db")
        level = sqnr_level(db)
        rows = {
            "Op": node.op,
            "Kind": f"<span style='color:{border.name()}; font-size:14pt'>■</span> {kind.replace('_', ' ')}",
            "Layer": node.layer,
            "Module": node.module,
            "Shape": "[" + ", ".join(map(str, node.shape)) + "]" if node.shape else None,
            "Dtype": node.dtype,
            "Precision": None if not layer else "int8" if layer.get("quantized") else "kept in float",
            "Scale": summarise(attrs["scale"]) if "scale" in attrs else _maybe(layer.get("act_scale")),
            "Zero point": summarise(attrs["zero_point"])
            if "zero_point" in attrs
            else _maybe(layer.get("act_zero_point")),
            "Weight scale": summarise(layer["weight_scale"]) if layer.get("weight_scale") else None,
            "Activation range": _range(layer.get("act_min"), layer.get("act_max")),
            "Weight range": _range(*weight_range) if weight_range else None,
            "SQNR": None
            if not layer
            else f"<span style='color:{LEVEL_COLORS[level]}; font-size:14pt'>●</span> "
            f"{fmt_db(db) + ' dB — ' if db is not None else ''}{escape(LEVEL_WORDS[level])}",
        }
        for name, text in rows.items():
            label = self.values[name]
            label.setTextFormat(
                Qt.TextFormat.RichText if name in ("Kind", "SQNR") else Qt.TextFormat.PlainText
            )
            label.setText(text or "")
            self.form.setRowVisible(label, bool(text))
        extra = {k: v for k, v in attrs.items() if k not in SHOWN_ATTRS}
        self.attrs.setText("\n".join(f"{k}: {summarise(v)}" for k, v in extra.items()))
        self.attrs_title.setVisible(bool(extra))
        self.attrs.setVisible(bool(extra))


def _maybe(value) -> str | None:
    return None if value is None else fmt(value)


def _range(lo, hi) -> str | None:
    return None if lo is None or hi is None else fmt_range(lo, hi)
