"""The Graph tab: a toolbar (find, float/quantized, error heat, zoom), the graph, its legend and details."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.review.graph_view import GraphView
from app.review.node_details import NodeDetails
from app.review.rundata import RunData
from app.review.style import HEAT_HIGH_DB, HEAT_LOW_DB, LEGEND, NO_HEAT, heat_color, kind_style

MODES = (("quantized", "Quantized"), ("float", "Float"))


class Legend(QWidget):
    """A row of colour swatches with their meaning."""

    def __init__(self, title: str, items: list[tuple[QColor, QColor, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(4, 2, 4, 2)
        self.row.setSpacing(6)
        self.row.addWidget(QLabel(title, objectName="muted"))
        for fill, border, text in items:
            swatch = QLabel()
            swatch.setFixedSize(14, 14)
            swatch.setStyleSheet(
                f"background: {fill.name()}; border: 1px solid {border.name()}; border-radius: 3px;"
            )
            self.row.addWidget(swatch)
            self.row.addWidget(QLabel(text))
            self.row.addSpacing(8)
        self.row.addStretch(1)


class GraphPanel(QWidget):
    nodeSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run: RunData | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        bar = QHBoxLayout()
        self.search = QLineEdit(placeholderText="Find a node or layer, then Enter…", clearButtonEnabled=True)
        self.search.setMinimumWidth(240)
        self.search.returnPressed.connect(self.find)
        self.search_status = QLabel(objectName="muted")
        bar.addWidget(self.search)
        bar.addWidget(self.search_status)
        bar.addStretch(1)
        self.mode_group = QButtonGroup(self)
        for key, text in MODES:
            button = QToolButton(text=text, checkable=True, autoRaise=False)
            button.setToolTip(f"Show the {key} graph (the view stays on the same layer)")
            button.setProperty("mode", key)
            self.mode_group.addButton(button)
            bar.addWidget(button)
        self.mode_group.buttonClicked.connect(lambda b: self.view.set_mode(b.property("mode")))
        bar.addSpacing(12)
        self.heat = QToolButton(text="Error heat", checkable=True)
        self.heat.setToolTip("Colour each layer by its SQNR: red loses the most accuracy, green the least")
        self.heat.toggled.connect(self._set_heat)
        bar.addWidget(self.heat)
        for text, tip, slot in (
            ("−", "Zoom out (Ctrl+wheel, −)", lambda: self.view.zoom_by(0.8)),
            ("+", "Zoom in (Ctrl+wheel, +)", lambda: self.view.zoom_by(1.25)),
            ("Fit", "Show the whole graph (F)", lambda: self.view.fit()),
        ):
            button = QToolButton(text=text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            bar.addWidget(button)
        layout.addLayout(bar)

        self.view = GraphView()
        self.view.nodeSelected.connect(self._on_node)
        self.view.layoutFinished.connect(self._on_layout)
        self.details = NodeDetails()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(2)
        left_layout.addWidget(self.view, 1)
        self.kinds_legend = Legend("Node kinds:", [(*kind_style(kind)[:2], text) for kind, text in LEGEND])
        self.heat_legend = Legend("Layer SQNR:", _heat_items())
        left_layout.addWidget(self.kinds_legend)
        left_layout.addWidget(self.heat_legend)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.details)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 290])
        layout.addWidget(split, 1)
        self._set_heat(False)

    def set_run(self, run: RunData | None) -> None:
        self.run = run
        self.details.clear()
        self.search.clear()
        self.search_status.clear()
        graphs = run.graphs if run else {}
        sqnr = {
            layer["name"]: layer["sqnr_db"]
            for layer in (run.layers if run else [])
            if layer.get("sqnr_db") is not None and layer.get("name")
        }
        if graphs:
            self.view.set_graphs(graphs, sqnr)
        else:
            self.view.clear(
                "This run has no graph.json, so there is no graph to draw." if run else "No run is open."
            )
        for button in self.mode_group.buttons():
            button.setEnabled(button.property("mode") in self.view.docs)
            button.setChecked(button.property("mode") == self.view.mode)
        names = sorted(
            {n.label for g in graphs.values() for n in g.nodes}
            | {n.layer for g in graphs.values() for n in g.nodes if n.layer}
        )
        completer = QCompleter(names, self.search)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.activated.connect(self.find)
        self.search.setCompleter(completer)

    def find(self, text: str | None = None) -> None:
        query = text if isinstance(text, str) else self.search.text()
        found = self.view.find(query)
        self.search_status.setText("" if found or not query.strip() else "no match")

    def select_layer(self, layer: str | None) -> None:
        """Select and centre the layer's node (from the table), without echoing nodeSelected."""
        node_id = self.view.select_layer(layer) if layer else None
        if node_id:
            self._show_details(self.view.docs[self.view.mode].node(node_id))
        else:
            self.view.select_node(None)
            self.details.clear()

    def _on_node(self, node_id: str) -> None:
        self._show_details(self.view.docs[self.view.mode].node(node_id))
        self.nodeSelected.emit(node_id)

    def _show_details(self, node) -> None:
        if node is None or self.run is None:
            self.details.clear()
            return
        layer = self.run.layer(node.layer) if node.layer else None
        self.details.show_node(node, layer, self.run.weight_range(node.layer) if node.layer else None)

    def _on_layout(self, key: str) -> None:
        if key == self.view.mode and self.view.selected_id():
            self._show_details(self.view.docs[key].node(self.view.selected_id()))

    def _set_heat(self, on: bool) -> None:
        self.view.set_heat(on)
        self.heat_legend.setVisible(on)
        self.kinds_legend.setVisible(not on)


def _heat_items() -> list[tuple[QColor, QColor, str]]:
    """Five steps of the heat scale, open-ended at both ends, and the grey of layers without SQNR."""
    steps = [HEAT_LOW_DB + (HEAT_HIGH_DB - HEAT_LOW_DB) * k / 4 for k in range(5)]
    labels = [f"≤ {steps[0]:g} dB", *(f"{db:g} dB" for db in steps[1:-1]), f"≥ {steps[-1]:g} dB"]
    items = [
        (heat_color(db), heat_color(db).darker(140), text) for db, text in zip(steps, labels, strict=True)
    ]
    return [*items, (QColor(NO_HEAT), QColor(NO_HEAT).darker(140), "no SQNR")]
