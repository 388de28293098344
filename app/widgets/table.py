"""Read-only tables for facts (model inputs, operations, comparisons)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


def fact_table(headers: list[str], stretch: int = 0) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    table.setAlternatingRowColors(True)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    return table


def fill(table: QTableWidget, rows: list[tuple], stretch: int = 0) -> None:
    """Replace the rows; values keep their type so numeric columns sort as numbers."""
    sorting = table.isSortingEnabled()
    table.setSortingEnabled(False)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem()
            item.setData(Qt.ItemDataRole.DisplayRole, value)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    table.setSortingEnabled(sorting)


def fit_rows(table: QTableWidget, most: int, exact: bool = False) -> None:
    """Tall enough for up to `most` rows without an inner scroll bar; `exact` also stops it growing."""
    rows = min(table.rowCount(), most)
    header = table.horizontalHeader().sizeHint().height()
    height = header + max(rows, 1) * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
    table.setMinimumHeight(height)
    if exact:
        table.setMaximumHeight(height)
