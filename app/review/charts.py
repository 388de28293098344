"""pyqtgraph building blocks for the review plots: themed axes, cards with empty states, bar charts.

Every plot sits in a PlotCard so that, when its data is missing, the user reads why instead of
looking at an empty frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from app.review.style import ACCENT

TICK_PT, LABEL_PT, TITLE_PT = 9, 10, 10.5


def _colors(widget: QWidget) -> tuple[QColor, QColor, QColor]:
    pal = widget.palette()
    return (
        pal.color(QPalette.ColorRole.Base),
        pal.color(QPalette.ColorRole.Text),
        pal.color(QPalette.ColorRole.Mid),
    )


def style_plot(plot: pg.PlotItem, owner: QWidget, title: str, x_label: str, y_label: str) -> None:
    """Readable fonts and theme colours on a plot's axes, labels and title."""
    _, fg, mid = _colors(owner)
    font = QFont()
    font.setPointSize(TICK_PT)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setStyle(tickFont=font, tickTextOffset=4)
        axis.setTextPen(fg)
        axis.setPen(mid)
        axis.enableAutoSIPrefix(False)  # "(x0.001)" next to a label reads as a unit, not a scale
    plot.setLabel("bottom", x_label, color=fg.name(), **{"font-size": f"{LABEL_PT}pt"})
    plot.setLabel("left", y_label, color=fg.name(), **{"font-size": f"{LABEL_PT}pt"})
    set_title(plot, owner, title)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMenuEnabled(False)


def set_title(plot: pg.PlotItem, owner: QWidget, title: str) -> None:
    plot.setTitle(title, color=_colors(owner)[1].name(), size=f"{TITLE_PT}pt")


class PlotCard(QStackedWidget):
    """A plot, or a sentence saying why there is none."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.message = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True, objectName="muted")
        self.message.setMargin(16)
        self.message.setStyleSheet("font-size: 10.5pt;")
        base = _colors(self)[0]
        self.widget = pg.PlotWidget(background=base)
        self.plot: pg.PlotItem = self.widget.getPlotItem()
        self.title = title
        style_plot(self.plot, self, title, x_label, y_label)
        self.plot.hideButtons()
        self.caption = QLabel(wordWrap=True, objectName="muted")
        self.caption.setStyleSheet("font-size: 9pt;")
        self.caption.setContentsMargins(10, 0, 10, 6)
        self.page = QWidget(autoFillBackground=True)
        palette = self.page.palette()
        palette.setColor(QPalette.ColorRole.Window, base)
        self.page.setPalette(palette)
        column = QVBoxLayout(self.page)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.widget, 1)
        column.addWidget(self.caption)
        self.addWidget(self.message)
        self.addWidget(self.page)
        self.setMinimumSize(260, 190)

    def show_message(self, text: str) -> None:
        self.plot.clear()
        self.message.setText(f"<b>{self.title}</b><br><br>{text}")
        self.setCurrentWidget(self.message)

    def show_plot(self, title: str | None = None, caption: str = "") -> None:
        """Show the plot with a title and, under it, a caption that wraps (for keys and numbers)."""
        set_title(self.plot, self, title or self.title)
        self.caption.setText(caption)
        self.caption.setVisible(bool(caption))
        self.setCurrentWidget(self.page)

    def has_plot(self) -> bool:
        return self.currentWidget() is self.page


class BarChart(PlotCard):
    """Horizontal bars, one per named item, top to bottom; click a bar to pick its item."""

    barClicked = Signal(str)
    VISIBLE_BARS = 36

    def __init__(self, title: str, x_label: str, parent: QWidget | None = None):
        super().__init__(title, x_label, "layer", parent)
        self.names: list[str] = []
        self.plot.invertY(True)
        self.plot.showGrid(x=True, y=False, alpha=0.15)
        self.plot.setMouseEnabled(x=False, y=True)
        self._marker = pg.BarGraphItem(
            x0=[], x1=[], y=[], height=0.9, pen=pg.mkPen(ACCENT, width=2.5), brush=None
        )
        self.widget.scene().sigMouseClicked.connect(self._on_click)

    def set_bars(self, names: list[str], values: list[float], colors: list[QColor], marks=()) -> None:
        """Draw the bars; `marks` are x positions of dashed reference lines (thresholds, targets)."""
        self.plot.clear()
        self.names = list(names)
        v = np.asarray(values, dtype=float)
        y = np.arange(len(v))
        bars = pg.BarGraphItem(
            x0=np.minimum(v, 0.0),
            x1=np.maximum(v, 0.0),
            y=y,
            height=0.72,
            brushes=colors,
            pens=[c.darker(125) for c in colors],
        )
        self.plot.addItem(bars)
        for x in marks:
            self.plot.addItem(
                pg.InfiniteLine(
                    pos=x, angle=90, pen=pg.mkPen(_colors(self)[1], width=1, style=Qt.PenStyle.DashLine)
                )
            )
        self.plot.addItem(self._marker)
        self._marker.setOpts(x0=[], x1=[], y=[])
        left = self.plot.getAxis("left")
        left.setTicks([[(i, n) for i, n in enumerate(self.names)]])
        metrics = QFontMetrics(left.style["tickFont"] or QFont())
        left.setWidth(
            max((metrics.horizontalAdvance(n) for n in self.names), default=20) + 40
        )  # names + label
        self._values = v
        self.plot.setXRange(
            min(0.0, float(v.min(initial=0.0))), float(v.max(initial=1.0)) * 1.05 or 1.0, padding=0.02
        )
        self.plot.setYRange(-0.6, min(len(v), self.VISIBLE_BARS) - 0.4, padding=0)
        self.plot.setLimits(yMin=-1, yMax=max(len(v), 1))

    def highlight(self, name: str | None) -> None:
        if name in self.names:
            i = self.names.index(name)
            value = float(self._values[i])
            self._marker.setOpts(x0=[min(value, 0.0)], x1=[max(value, 0.0)], y=[i])
            low, high = self.plot.viewRange()[1]
            if not low <= i <= high:
                half = (high - low) / 2
                self.plot.setYRange(i - half, i + half, padding=0)
        else:
            self._marker.setOpts(x0=[], x1=[], y=[])

    def _on_click(self, event) -> None:
        if not self.names or not self.plot.sceneBoundingRect().contains(event.scenePos()):
            return
        y = self.plot.vb.mapSceneToView(event.scenePos()).y()
        i = int(round(y))
        if 0 <= i < len(self.names):
            self.barClicked.emit(self.names[i])
