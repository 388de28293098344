"""The per-layer table: every reported layer with its ranges, scales and SQNR traffic light.

Sorting uses numbers, not the shown text, and puts layers without a value last in either direction,
so "sort by SQNR" always opens with the worst measured layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.review.quant import fmt, fmt_db, fmt_range, sqnr_level, summarise
from app.review.style import LEVEL_COLORS, LEVEL_WORDS, dot_icon
from app.theme import tone

SORT_ROLE = Qt.ItemDataRole.UserRole
NAME_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    tip: str
    numeric: bool = True


COLUMNS = (
    Column("name", "Layer", "Module path, or the graph node for ops outside a module", numeric=False),
    Column("op", "Op", "The operation", numeric=False),
    Column("sqnr", "SQNR (dB)", "Signal-to-quantization-noise ratio of the layer output: higher is better"),
    Column("delta", "Δ SQNR", "Change against the compared run (positive: better now)"),
    Column("precision", "Precision", "int8, or kept in float", numeric=False),
    Column("weight_range", "Weight range", "Smallest and largest weight over all channels (sorts by span)"),
    Column("act_range", "Activation range", "Observed output range during calibration (sorts by span)"),
    Column("act_scale", "Scale", "Output activation scale: the float step between two int8 levels"),
    Column("zero_point", "Zero point", "The integer that stands for 0.0"),
    Column(
        "weight_scale", "Weight scale", "Per-channel weight scales, smallest … largest (sorts by largest)"
    ),
)
COL = {c.key: i for i, c in enumerate(COLUMNS)}


def _span(lo, hi) -> float | None:
    return None if lo is None or hi is None else hi - lo


class LayerModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.deltas: dict[str, float | None] | None = None
        self._icons = {}

    def set_layers(self, layers: list[dict], weight_ranges: dict[str, tuple[float, float]]) -> None:
        self.beginResetModel()
        self.rows = [self._row(layer, weight_ranges.get(layer.get("name"))) for layer in layers]
        self.endResetModel()

    def set_deltas(self, deltas: dict[str, float | None] | None) -> None:
        self.deltas = deltas
        if self.rows:
            col = COL["delta"]
            self.dataChanged.emit(self.index(0, col), self.index(len(self.rows) - 1, col))

    @staticmethod
    def _row(layer: dict, wrange: tuple[float, float] | None) -> dict:
        """Display text and sort key per column, computed once per load."""
        lo, hi = wrange or (None, None)
        ws = layer.get("weight_scale")
        quantized = layer.get("quantized")
        cells = {
            "name": (layer.get("name") or "?", layer.get("name") or ""),
            "op": (layer.get("op") or "—", layer.get("op") or ""),
            "precision": ("int8" if quantized else "kept float", 0 if quantized else 1),
            "weight_range": (fmt_range(lo, hi), _span(lo, hi)),
            "act_range": (
                fmt_range(layer.get("act_min"), layer.get("act_max")),
                _span(layer.get("act_min"), layer.get("act_max")),
            ),
            "act_scale": (fmt(layer.get("act_scale")), layer.get("act_scale")),
            "zero_point": (fmt(layer.get("act_zero_point")), layer.get("act_zero_point")),
            "weight_scale": (summarise(ws) if ws else "—", ws.get("max") if isinstance(ws, dict) else None),
            "sqnr": (fmt_db(layer.get("sqnr_db")), layer.get("sqnr_db")),
        }
        return {"layer": layer, "cells": cells}

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tip
        return None

    def _delta(self, name: str) -> float | None:
        return None if self.deltas is None else self.deltas.get(name)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        layer = row["layer"]
        key = COLUMNS[index.column()].key
        if role == NAME_ROLE:
            return layer.get("name")
        if key == "delta":
            value = self._delta(layer.get("name"))
            if role == Qt.ItemDataRole.DisplayRole:
                return "—" if value is None else f"{value:+.1f}"
            if role == SORT_ROLE:
                return value
            if role == Qt.ItemDataRole.ForegroundRole and value is not None and abs(value) >= 0.5:
                return tone("ok") if value > 0 else tone("bad")
        elif role == Qt.ItemDataRole.DisplayRole:
            return row["cells"][key][0]
        elif role == SORT_ROLE:
            return row["cells"][key][1]
        if role == Qt.ItemDataRole.DecorationRole and key == "sqnr":
            level = sqnr_level(layer.get("sqnr_db"))
            if level not in self._icons:
                self._icons[level] = dot_icon(QColor(LEVEL_COLORS[level]))
            return self._icons[level]
        if role == Qt.ItemDataRole.ToolTipRole:
            if key == "sqnr":
                return LEVEL_WORDS[sqnr_level(layer.get("sqnr_db"))]
            if key == "name":
                return f"{layer.get('name')}\nmodule: {layer.get('module') or '—'}\nnode: {layer.get('node') or '—'}"
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[index.column()].numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and key == "precision" and not layer.get("quantized"):
            return tone("warn")
        return None


class LayerProxy(QSortFilterProxyModel):
    """Numeric sort with empty values last; the filter matches name, op, module or precision."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.needle = ""

    def set_needle(self, text: str) -> None:
        self.beginFilterChange()
        self.needle = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:
        if not self.needle:
            return True
        source = self.sourceModel().rows[row]
        layer = source["layer"]
        hay = " ".join(
            str(x)
            for x in (
                layer.get("name"),
                layer.get("op"),
                layer.get("module"),
                source["cells"]["precision"][0],
            )
        )
        return all(word in hay.lower() for word in self.needle.split())

    def lessThan(self, left, right) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            if a is None and b is None:
                return False
            # Qt swaps the arguments when sorting descending, so None must compare "small" there to stay last.
            return (a is None) == (self.sortOrder() == Qt.SortOrder.DescendingOrder)
        if isinstance(a, str) or isinstance(b, str):
            return str(a).lower() < str(b).lower()
        return a < b


class LayerTable(QWidget):
    layersSelected = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = LayerModel(self)
        self.proxy = LayerProxy(self)
        self.proxy.setSourceModel(self.model)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        bar = QHBoxLayout()
        self.filter = QLineEdit(
            placeholderText="Filter by layer name, op or precision (e.g. conv, add, float)…",
            clearButtonEnabled=True,
        )
        self.filter.textChanged.connect(self._on_filter)
        self.count = QLabel(objectName="muted")
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.count)
        layout.addLayout(bar)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(26)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        self.view.selectionModel().selectionChanged.connect(self._on_selection)
        layout.addWidget(self.view, 1)
        self._quiet = False
        self.view.setColumnHidden(COL["delta"], True)

    def set_layers(self, layers: list[dict], weight_ranges: dict[str, tuple[float, float]]) -> None:
        self.model.set_layers(layers, weight_ranges)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        header.resizeSection(COL["name"], min(max(header.sectionSize(COL["name"]), 140), 260))
        self._update_count()

    def set_deltas(self, deltas: dict[str, float | None] | None) -> None:
        self.model.set_deltas(deltas)
        self.view.setColumnHidden(COL["delta"], deltas is None)
        if deltas is not None:
            self.view.resizeColumnToContents(COL["delta"])

    def sort_by(self, key: str, order=Qt.SortOrder.AscendingOrder) -> None:
        self.view.sortByColumn(COL[key], order)

    def row_count(self) -> int:
        return self.model.rowCount()

    def visible_layers(self) -> list[str]:
        return [self.proxy.index(r, 0).data(NAME_ROLE) for r in range(self.proxy.rowCount())]

    def selected_layers(self) -> list[str]:
        rows = sorted(self.view.selectionModel().selectedRows(), key=lambda i: i.row())
        return [i.data(NAME_ROLE) for i in rows]

    def current_layer(self) -> str | None:
        """The row the user clicked last (the one to plot when several are selected)."""
        index = self.view.currentIndex()
        return index.data(NAME_ROLE) if index.isValid() else None

    def select_layers(self, names: list[str]) -> None:
        """Select these layers' rows (scrolling to the first) without emitting layersSelected."""
        wanted = set(names)
        selection = QItemSelection()
        rows = [r for r in range(self.proxy.rowCount()) if self.proxy.index(r, 0).data(NAME_ROLE) in wanted]
        for r in rows:
            selection.select(self.proxy.index(r, 0), self.proxy.index(r, len(COLUMNS) - 1))
        self._quiet = True
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.view.selectionModel().select(selection, flags)
        self._quiet = False
        if rows:
            self.view.scrollTo(self.proxy.index(rows[0], 0))

    def _on_filter(self, text: str) -> None:
        self.proxy.set_needle(text)
        self._update_count()

    def _update_count(self) -> None:
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        self.count.setText(f"{total} layers" if shown == total else f"{shown} of {total} layers")

    def _on_selection(self, *_):
        if not self._quiet:
            self.layersSelected.emit(self.selected_layers())
