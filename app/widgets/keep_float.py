"""Edit the list of layers (names or patterns such as `classifier.*`) that stay in floating point."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QListWidget, QPushButton, QVBoxLayout, QWidget


class KeepFloatEditor(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.entry = QLineEdit(placeholderText="Layer name or pattern, e.g. head.fc or layer4.*")
        self.entry.returnPressed.connect(self._add_entry)
        add = QPushButton("Add")
        add.clicked.connect(self._add_entry)
        self.remove = QPushButton("Remove selected")
        row.addWidget(self.entry, 1)
        row.addWidget(add)
        row.addWidget(self.remove)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.remove.clicked.connect(self._remove_selected)
        layout.addLayout(row)
        layout.addWidget(self.list)

    def names(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def add(self, names: list[str]) -> None:
        known = set(self.names())
        for name in names:
            if name and name not in known:
                self.list.addItem(name)
                known.add(name)

    def _add_entry(self) -> None:
        self.add([self.entry.text().strip()])
        self.entry.clear()

    def _remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
