"""Every page starts with its name and one sentence that says what the page is for."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget


class Page(QWidget):
    """A titled page; subclasses add their content to `self.body` (inside a scroll area if asked)."""

    title = ""
    intro = ""

    def __init__(self, parent: QWidget | None = None, scroll: bool = True):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 18, 24, 12)
        outer.setSpacing(4)
        heading = QLabel(self.title, objectName="pageTitle")
        intro = QLabel(self.intro, objectName="pageIntro", wordWrap=True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(heading)
        outer.addWidget(intro)
        outer.addSpacing(10)
        content = QWidget()
        self.body = QVBoxLayout(content)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(12)
        if scroll:
            area = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area.setWidget(content)
            outer.addWidget(area, 1)
        else:
            outer.addWidget(content, 1)


def section(text: str) -> QLabel:
    return QLabel(text, objectName="sectionTitle")


def muted(text: str = "") -> QLabel:
    label = QLabel(text, objectName="muted", wordWrap=True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def set_tone(widget: QWidget, tone: str | None) -> None:
    """Colour a label or banner by meaning (ok, warn, bad) via the style sheet's [tone] rules."""
    widget.setProperty("tone", tone or "")
    widget.style().unpolish(widget)
    widget.style().polish(widget)
