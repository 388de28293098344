"""A path field with Browse buttons that remember the last folder of their kind."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from app.settings import Settings


class PathPicker(QWidget):
    """`modes` picks the buttons: "folder", "file" (open) and "save"; `filters` is a Qt name filter."""

    pathChanged = Signal(str)

    def __init__(
        self,
        settings: Settings,
        kind: str,
        modes: tuple[str, ...] = ("file",),
        filters: str = "",
        hint: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self._settings, self._kind, self._filters = settings, kind, filters
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(placeholderText=hint, clearButtonEnabled=True)
        self.edit.editingFinished.connect(self._edited)
        layout.addWidget(self.edit, 1)
        labels = {"folder": "Choose folder…", "file": "Choose file…", "save": "Browse…"}
        for mode in modes:
            button = QPushButton(labels[mode])
            button.clicked.connect(lambda _=False, m=mode: self._browse(m))
            layout.addWidget(button)

    def _edited(self) -> None:
        self.pathChanged.emit(self.path())

    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str, notify: bool = True) -> None:
        self.edit.setText(path)
        if notify:
            self.pathChanged.emit(self.path())

    def _browse(self, mode: str) -> None:
        start = self.path() or self._settings.last_folder(self._kind)
        if mode == "folder":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif mode == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self._filters)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", start, self._filters)
        if chosen:
            self._settings.set_last_folder(self._kind, chosen)
            self.set_path(chosen)
