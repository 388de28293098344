"""Every page starts with its name and one sentence that says what the page is for."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)


class Page(QWidget):
    """A titled page; subclasses add their content to `self.body` (inside a scroll area if asked).

    A page with `next_page` set ends with a button to it, so a first-time user always sees the next step.
    """

    title = ""
    intro = ""
    next_page = ""  # key of the page the Next button opens
    next_label = ""

    nextRequested = Signal(str)

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
        if self.next_page:
            row = QHBoxLayout()
            row.addStretch(1)
            self.next_button = QPushButton(f"Next: {self.next_label}  →")
            self.next_button.clicked.connect(self._go_next)
            row.addWidget(self.next_button)
            outer.addLayout(row)

    def _go_next(self) -> None:
        self.nextRequested.emit(self.next_page)


def section(text: str) -> QLabel:
    return QLabel(text, objectName="sectionTitle")


def muted(text: str = "") -> QLabel:
    """Secondary text; it takes the width it is given (word-wrapped labels otherwise shrink in forms)."""
    label = QLabel(text, objectName="muted", wordWrap=True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def noted(field: QWidget, note: QLabel, wide: bool = False) -> QWidget:
    """A form field with its explanation underneath, so the note wraps to the row's width."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(field, 0, Qt.AlignmentFlag(0) if wide else Qt.AlignmentFlag.AlignLeft)
    layout.addWidget(note)
    return box


def set_tone(widget: QWidget, tone: str | None) -> None:
    """Colour a label or banner by meaning (ok, warn, bad) via the style sheet's [tone] rules."""
    widget.setProperty("tone", tone or "")
    widget.style().unpolish(widget)
    widget.style().polish(widget)
