"""The review plots: per-layer SQNR, a layer's activation histogram on its int8 grid and its per-channel
weight ranges, float vs int8 outputs, latency and size, and the ops the runtime will not fuse.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.review.charts import BarChart, PlotCard
from app.review.quant import (
    FAIR_DB,
    GOOD_DB,
    clip_bounds,
    clipped_fraction,
    fmt,
    fmt_db,
    grid_levels,
    quant_range,
)
from app.review.rundata import RunData
from app.review.style import LEVEL_COLORS, level_color

PICK_A_LAYER = "Select a layer — in the table, the graph or the SQNR chart — to see its {what}."
FILL = QColor(59, 115, 196, 120)
LINE = QColor(59, 115, 196)
CLIP = QColor(229, 83, 75, 60)
OUTLIER = QColor("#e8590c")


def _short(name: str, limit: int = 28) -> str:
    """A layer name short enough for a plot title (pyqtgraph titles do not elide; the middle goes)."""
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return f"{name[:half]}…{name[-half:]}"


def _missing_tensors(run: RunData) -> str | None:
    return (
        None if run.has_tensors else next((p for p in run.problems if "tensors.npz" in p), "No tensors.npz.")
    )


class ActivationHistogram(PlotCard):
    """The layer's float outputs, the int8 levels they snap to, and the clipped tails in red."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Activation histogram", "activation value", "count", parent)
        self.grid: pg.PlotDataItem | None = None
        self.clip_regions: list[pg.LinearRegionItem] = []

    def show_layer(self, run: RunData | None, name: str | None) -> None:
        self.grid, self.clip_regions = None, []
        if run is None or not name:
            self.show_message(PICK_A_LAYER.format(what="activation histogram"))
            return
        missing = _missing_tensors(run)
        hist = run.histogram(name)
        if missing or hist is None:
            self.show_message(missing or f"No activation histogram was recorded for {name}.")
            return
        counts, edges = hist
        self.plot.clear()
        self.plot.plot(
            edges, counts, stepMode="center", fillLevel=0, brush=FILL, pen=pg.mkPen(LINE, width=1.2)
        )
        layer = run.layer(name) or {}
        scale, zp = layer.get("act_scale"), layer.get("act_zero_point")
        if not layer.get("quantized") or not scale:
            self.show_plot(
                f"Activations of {_short(name)}", "Kept in float: there is no int8 grid to snap to."
            )
            return
        qmin, qmax = quant_range(layer)
        lo, hi = clip_bounds(scale, zp or 0, qmin, qmax)
        levels, step = grid_levels(scale, zp or 0, qmin, qmax)
        top = float(counts.max()) * 1.05 or 1.0
        xs = np.repeat(levels, 2)
        ys = np.tile([0.0, top], len(levels))
        self.grid = self.plot.plot(xs, ys, connect="pairs", pen=pg.mkPen(QColor(90, 90, 90, 110), width=1))
        for a, b in ((float(edges[0]), lo), (hi, float(edges[-1]))):
            if a < b:
                region = pg.LinearRegionItem((a, b), movable=False, brush=CLIP, pen=pg.mkPen(None))
                self.plot.addItem(region)
                self.clip_regions.append(region)
        clipped = clipped_fraction(counts, edges, lo, hi)
        dtype = "uint8" if qmin == 0 else "int8"
        grid = "every level" if step == 1 else f"every {step}th of {qmax - qmin + 1} levels"
        note = (
            f"Grey lines: the {dtype} grid ({grid}). Red: clipped, {clipped:.2%} of values. "
            f"Scale {fmt(scale)}, zero point {zp}."
        )
        self.plot.setXRange(min(float(edges[0]), lo), max(float(edges[-1]), hi), padding=0.02)
        self.show_plot(f"Activations of {_short(name)}", note)


class WeightRanges(PlotCard):
    """One bar per output channel from its smallest to largest weight; outlier channels in orange."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Per-channel weight range", "output channel", "weight value", parent)

    def show_layer(self, run: RunData | None, name: str | None) -> None:
        if run is None or not name:
            self.show_message(PICK_A_LAYER.format(what="per-channel weight ranges"))
            return
        layer = run.layer(name) or {}
        ranges = run.channel_ranges(name)
        missing = _missing_tensors(run)
        if missing:
            self.show_message(missing)
            return
        if ranges is None:
            has_weights = layer.get("weight_scale") is not None
            why = (
                f"No per-channel weight ranges were recorded for {name}."
                if has_weights
                else f"{name} ({layer.get('op', 'this op')}) has no weights."
            )
            self.show_message(why)
            return
        lo, hi = (np.asarray(r, dtype=float).ravel() for r in ranges)
        span = hi - lo
        outliers = span > 3.0 * float(np.median(span)) if span.size else np.zeros(0, bool)
        brushes = [OUTLIER if o else FILL for o in outliers]
        self.plot.clear()
        self.plot.addItem(
            pg.BarGraphItem(
                x=np.arange(lo.size), y0=lo, y1=hi, width=0.8, brushes=brushes, pen=pg.mkPen(None)
            )
        )
        self.plot.autoRange()
        note = f"Smallest to largest weight of each of the {lo.size} output channels."
        if outliers.any():
            note += f" Orange: {int(outliers.sum())} channel(s) with over 3× the median range."
        self.show_plot(f"Weights of {_short(name)}", note)


class OutputScatter(PlotCard):
    """Model outputs, float against int8: points on the diagonal mean quantization changed nothing."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Model output: float vs int8", "float output", "int8 output", parent)

    def show_run(self, run: RunData | None) -> None:
        pair = run.outputs() if run else None
        if run is None or pair is None:
            self.show_message(
                (run and _missing_tensors(run)) or "This run recorded no model outputs to compare."
            )
            return
        a, b = (np.asarray(x, dtype=float) for x in pair)
        self.plot.clear()
        self.plot.addItem(pg.ScatterPlotItem(a, b, size=3, pen=None, brush=QColor(59, 115, 196, 90)))
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        self.plot.plot(
            [lo, hi],
            [lo, hi],
            pen=pg.mkPen(QColor(LEVEL_COLORS["poor"]), width=1.5, style=Qt.PenStyle.DashLine),
        )
        sqnr = (run.report.get("metrics") or {}).get("output_sqnr_db")
        note = f"{a.size:,} samples. On the dashed line (y = x) int8 and float agree."
        if sqnr is not None:
            note += f" Output SQNR {fmt_db(sqnr)} dB."
        self.show_plot(self.title, note)


class CompareBars(PlotCard):
    """Two bars, float and int8, with their values written above them."""

    def __init__(self, title: str, unit: str, parent: QWidget | None = None):
        super().__init__(title, "model", unit, parent)
        self.plot.getAxis("bottom").setTicks([[(0, "float"), (1, "int8")]])
        self.plot.setMouseEnabled(x=False, y=False)
        self.setMinimumSize(170, 190)

    def set_pair(self, float_value, int8_value, digits: int, verdict: str) -> None:
        if float_value is None or int8_value is None:
            self.show_message("This run did not measure it.")
            return
        self.plot.clear()
        values = [float(float_value), float(int8_value)]
        self.plot.addItem(
            pg.BarGraphItem(x=[0, 1], height=values, width=0.6, brushes=[QColor("#9aa3ad"), LINE])
        )
        for x, v in enumerate(values):
            label = pg.TextItem(
                f"{v:.{digits}f}", color=self.palette().color(self.foregroundRole()), anchor=(0.5, 1.0)
            )
            label.setPos(x, v)
            self.plot.addItem(label)
        self.plot.setXRange(-0.6, 1.6, padding=0)
        self.plot.setYRange(0, max(values) * 1.25 or 1.0, padding=0)
        self.show_plot(self.title, verdict)


class UnfusedList(QWidget):
    """Ops the runtime will run outside its integer kernels, and why (from the export diagnosis)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(objectName="sectionTitle")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Op", "Node", "Why it is not fused"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.title)
        layout.addWidget(self.table)

    def show_run(self, run: RunData | None) -> None:
        known = run is not None and run.report.get("unfused") is not None
        unfused = run.report["unfused"] if known else []
        if not known:
            self.title.setText("Unfused ops: not diagnosed — this run wrote no ONNX file.")
        elif not unfused:
            self.title.setText("Unfused ops: none — every quantized op runs in an integer kernel.")
        else:
            self.title.setText(
                f"Unfused ops ({len(unfused)}): these stay in float between Q/DQ and cost time"
            )
        self.table.setVisible(bool(unfused))
        self.table.setRowCount(len(unfused))
        for r, item in enumerate(unfused):
            for c, key in enumerate(("op", "name", "reason")):
                self.table.setItem(r, c, QTableWidgetItem(str(item.get(key) or "—")))
        self.table.resizeColumnsToContents()
        rows = min(len(unfused), 4)
        header = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(header + rows * self.table.verticalHeader().defaultSectionSize() + 4)


class LayerPlots(QSplitter):
    """The selected layer's histogram and weight ranges, side by side or stacked."""

    def __init__(self, orientation=Qt.Orientation.Vertical, parent: QWidget | None = None):
        super().__init__(orientation, parent)
        self.histogram = ActivationHistogram()
        self.weights = WeightRanges()
        self.addWidget(self.histogram)
        self.addWidget(self.weights)
        self.setChildrenCollapsible(False)

    def show_layer(self, run: RunData | None, name: str | None) -> None:
        self.histogram.show_layer(run, name)
        self.weights.show_layer(run, name)


def _mb(size_bytes) -> float | None:
    return None if size_bytes is None else size_bytes / 1e6


def sqnr_bars(run: RunData) -> tuple[list[str], list[float], list[QColor]]:
    """Bar data for the per-layer SQNR chart; layers without SQNR get an empty grey bar."""
    names, values, colors = [], [], []
    for layer in run.layers:
        db = layer.get("sqnr_db")
        suffix = "" if db is not None else " (float)" if not layer.get("quantized") else " (n/a)"
        names.append(f"{layer.get('name')}{suffix}")
        values.append(db if db is not None else 0.0)
        colors.append(level_color(db))
    return names, values, colors


class ModelPlots(QWidget):
    """The Plots tab: model-wide charts around the selected layer's plots."""

    layerClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.sqnr = BarChart("SQNR per layer", "SQNR (dB)")
        self.sqnr.barClicked.connect(self._on_bar)
        self.layer = LayerPlots(Qt.Orientation.Horizontal)
        self.scatter = OutputScatter()
        self.latency = CompareBars("Latency", "ms per batch")
        self.size = CompareBars("Model size", "MB")
        self.unfused = UnfusedList()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 6, 0, 0)
        grid.setSpacing(8)
        grid.addWidget(self.sqnr, 0, 0, 2, 1)
        grid.addWidget(self.layer, 0, 1, 1, 2)
        grid.addWidget(self.scatter, 1, 1)
        pair = QHBoxLayout()
        pair.addWidget(self.latency)
        pair.addWidget(self.size)
        grid.addLayout(pair, 1, 2)
        grid.addWidget(self.unfused, 2, 0, 1, 3)
        grid.setColumnStretch(0, 4)
        grid.setColumnStretch(1, 5)
        grid.setColumnStretch(2, 5)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        self._names: list[str] = []
        self.show_run(None)

    def show_run(self, run: RunData | None) -> None:
        self._names = [layer.get("name") for layer in run.layers] if run else []
        if run and run.layers:
            names, values, colors = sqnr_bars(run)
            self.sqnr.set_bars(names, values, colors, marks=(FAIR_DB, GOOD_DB))
            self.sqnr.show_plot(
                caption="Dashed: 20 and 30 dB, where fair and good begin. Click a bar to select."
            )
        else:
            self.sqnr.show_message("This run reports no layers." if run else "Open a run to see its plots.")
        self.scatter.show_run(run)
        metrics = (run.report.get("metrics") or {}) if run else {}
        lf, li = metrics.get("latency_float_ms"), metrics.get("latency_int8_ms")
        self.latency.set_pair(lf, li, 2, f"{lf / li:.2f}× faster in int8" if lf and li else "")
        sf, si = metrics.get("size_float_bytes"), metrics.get("size_int8_bytes")
        self.size.set_pair(_mb(sf), _mb(si), 2, f"{sf / si:.1f}× smaller in int8" if sf and si else "")
        self.unfused.show_run(run)
        self.layer.show_layer(run, None)

    def show_layer(self, run: RunData | None, name: str | None) -> None:
        self.layer.show_layer(run, name)
        self.sqnr.highlight(self._label(name))

    def _label(self, name: str | None) -> str | None:
        if name not in self._names:
            return None
        return self.sqnr.names[self._names.index(name)]

    def _on_bar(self, label: str) -> None:
        self.layerClicked.emit(self._names[self.sqnr.names.index(label)])
