"""A coloured message strip for warnings and failures, with an optional action button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.widgets.page import set_tone


class Banner(QFrame):
    actionClicked = Signal()

    def __init__(self, tone: str = "warn", action: str = "", parent: QWidget | None = None):
        super().__init__(parent, objectName="banner")
        set_tone(self, tone)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        self.label = QLabel(wordWrap=True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.button = QPushButton(action)
        self.button.setVisible(bool(action))
        self.button.clicked.connect(self.actionClicked)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, tone: str | None = None) -> None:
        if tone:
            set_tone(self, tone)
        self.label.setText(text)
        self.show()
