"""The full story behind a failure (a traceback), shown only when the user asks for it."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget


class DetailsDialog(QDialog):
    def __init__(self, message: str, details: str, parent: QWidget | None = None):
        super().__init__(parent, windowTitle="What went wrong")
        self.resize(760, 480)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(message, wordWrap=True))
        self.text = QPlainTextEdit(details, readOnly=True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy to clipboard", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{message}\n\n{details}"))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
