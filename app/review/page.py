"""The Review page: what quantization did to a run, where accuracy went, and one-click fixes.

One selection drives every view: a table row, a graph node or an SQNR bar selects the layer everywhere
(table row, centred graph node, histogram and weight plots), so the reviewer never hunts for it twice.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QTabWidget, QWidget

from app.review.graph_panel import GraphPanel
from app.review.layer_table import LayerTable
from app.review.plots import LayerPlots, ModelPlots
from app.review.quant import fmt_db, sqnr_level
from app.review.rundata import RunData, load_run_data, sqnr_deltas
from app.review.sensitivity import SensitivityPanel
from app.review.style import LEVEL_COLORS
from app.widgets.banner import Banner
from app.widgets.page import Page


class ReviewPage(Page):
    title = "Review"
    intro = (
        "See what quantization did: the converted graph, the error of every layer and its histograms. "
        "Select layers that lose too much and keep them in float with one click."
    )
    keepFloatRequested = Signal(list)
    sensitivityRequested = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, scroll=False)
        self.run: RunData | None = None
        self.previous: RunData | None = None
        self.selected: list[str] = []

        self.problems = Banner("warn")
        self.compare = Banner("ok")
        self.body.addWidget(self.problems)
        self.body.addWidget(self.compare)
        head = QHBoxLayout()
        self.summary = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.keep = QPushButton("Keep in float and re-run", objectName="primary")
        self.keep.setToolTip(
            "Select layers in the table, graph or SQNR chart first (Ctrl/Shift-click for several)"
        )
        self.keep.clicked.connect(self._on_keep)
        head.addWidget(self.summary, 1)
        head.addWidget(self.keep, 0, Qt.AlignmentFlag.AlignVCenter)
        self.body.addLayout(head)

        self.graph = GraphPanel()
        self.table = LayerTable()
        self.layer_plots = LayerPlots(Qt.Orientation.Vertical)
        self.layers_tab = QSplitter(Qt.Orientation.Horizontal)
        self.layers_tab.addWidget(self.table)
        self.layers_tab.addWidget(self.layer_plots)
        self.layers_tab.setStretchFactor(0, 3)
        self.layers_tab.setStretchFactor(1, 2)
        self.layers_tab.setSizes([700, 480])
        self.layers_tab.setChildrenCollapsible(False)
        self.plots = ModelPlots()
        self.sensitivity = SensitivityPanel()
        self.tabs = QTabWidget(documentMode=True)
        for widget, text in (
            (self.graph, "Graph"),
            (self.layers_tab, "Layers"),
            (self.plots, "Plots"),
            (self.sensitivity, "Sensitivity"),
        ):
            self.tabs.addTab(widget, text)
        self.body.addWidget(self.tabs, 1)

        self.graph.nodeSelected.connect(self._on_node)
        self.table.layersSelected.connect(lambda names: self._select(names, "table"))
        self.plots.layerClicked.connect(lambda name: self._select([name], "plots"))
        self.sensitivity.chart.barClicked.connect(lambda name: self._select([name], "plots"))
        self.sensitivity.rankRequested.connect(self.sensitivityRequested)
        self.sensitivity.keepFloatRequested.connect(self.keepFloatRequested)
        self.clear()

    # API used by the main window -------------------------------------------------------------------

    def load_run(self, out_dir: str) -> None:
        """Show a run directory. Resets any comparison: call set_comparison afterwards to compare."""
        self._show(load_run_data(out_dir))

    def clear(self) -> None:
        self._show(None)

    def set_comparison(self, previous_out_dir: str | None) -> None:
        """Compare with an earlier run: a banner with the output change and a Δ SQNR column."""
        self.previous = load_run_data(previous_out_dir) if previous_out_dir and self.run else None
        if self.previous is None or not self.previous.report:
            self.table.set_deltas(None)
            if self.previous is not None:
                self.compare.show_message(f"Could not compare: {self.previous.problems[0]}", "warn")
            else:
                self.compare.hide()
            return
        self.table.set_deltas(sqnr_deltas(self.run, self.previous))
        self.compare.show_message(self._comparison_text(), "ok")

    def show_sensitivity(self, result: dict) -> None:
        self.sensitivity.show_result(result)
        self.tabs.setCurrentWidget(self.sensitivity)

    def graph_node_count(self) -> int:
        return self.graph.view.node_count()

    def layer_row_count(self) -> int:
        return self.table.row_count()

    def graph_ready(self) -> bool:
        return self.graph.view.is_ready()

    def screenshot_targets(self) -> dict[str, QWidget]:
        return {
            "graph": self.graph,
            "layers": self.layers_tab,
            "plots": self.plots,
            "sensitivity": self.sensitivity,
        }

    def show_target(self, key: str, wait_ms: int = 5000) -> None:
        """Bring a view to the front before a grab; for the graph, wait (up to wait_ms) for its layout."""
        self.tabs.setCurrentWidget(self.screenshot_targets()[key])
        view = self.graph.view
        if key == "graph" and view.mode and not view.is_ready():
            loop = QEventLoop()

            def done(_key: str) -> None:
                if view.is_ready():
                    loop.quit()

            view.layoutFinished.connect(done)
            QTimer.singleShot(wait_ms, loop.quit)
            loop.exec()
            view.layoutFinished.disconnect(done)

    # internals -----------------------------------------------------------------------------------

    def _show(self, run: RunData | None) -> None:
        self.run, self.previous, self.selected = run, None, []
        self.compare.hide()
        notes = (run.problems + list(run.report.get("warnings") or [])) if run else []
        if notes:
            self.problems.show_message(
                "\n".join(f"• {n}" for n in notes[:4]), "bad" if run.problems else "warn"
            )
        else:
            self.problems.hide()
        self.summary.setText(self._summary_text())
        layers = run.layers if run else []
        weight_ranges = {
            name: r for name in (x.get("name") for x in layers) if run and (r := run.weight_range(name))
        }
        self.table.set_layers(layers, weight_ranges)
        self.table.set_deltas(None)
        self.graph.set_run(run)
        self.plots.show_run(run)
        self.layer_plots.show_layer(run, None)
        self.sensitivity.clear()
        self.tabs.setTabText(
            0, f"Graph ({self.graph_node_count():,} nodes)" if run and run.graphs else "Graph"
        )
        self.tabs.setTabText(1, f"Layers ({len(layers)})" if layers else "Layers")
        self._update_keep()

    def select_layers(self, names: list[str]) -> None:
        """Select layers everywhere (table, graph, plots), as a click would."""
        self._select(names, "api")

    def worst_layer(self) -> str | None:
        """The quantized layer with the lowest SQNR: where a reviewer should look first."""
        scored = [
            layer for layer in (self.run.layers if self.run else []) if layer.get("sqnr_db") is not None
        ]
        return min(scored, key=lambda layer: layer["sqnr_db"])["name"] if scored else None

    def _select(self, names: list[str], source: str) -> None:
        self.selected = [n for n in names if n]
        current = self.table.current_layer() if source == "table" else None
        primary = current if current in self.selected else (self.selected[0] if self.selected else None)
        if source != "table":
            self.table.select_layers(self.selected)
        if source != "graph":
            self.graph.select_layer(primary)
        self.plots.show_layer(self.run, primary)
        self.layer_plots.show_layer(self.run, primary)
        self._update_keep()

    def _on_node(self, node_id: str) -> None:
        doc = self.graph.view.docs.get(self.graph.view.mode)
        node = doc.node(node_id) if doc else None
        self._select([node.layer] if node and node.layer else [], "graph")

    def _quantized_selection(self) -> list[str]:
        return [n for n in self.selected if self.run and (self.run.layer(n) or {}).get("quantized")]

    def _update_keep(self) -> None:
        names = self._quantized_selection()
        self.keep.setEnabled(bool(names))
        count = len(names)
        self.keep.setText(
            f"Keep {count} layer{'s' * (count != 1)} in float and re-run"
            if count
            else "Keep in float and re-run"
        )

    def _on_keep(self) -> None:
        names = self._quantized_selection()
        if names:
            self.keepFloatRequested.emit(names)

    def _summary_text(self) -> str:
        if self.run is None:
            return "Open a finished run (from the Run page or the history) to review it."
        report = self.run.report
        metrics = report.get("metrics") or {}
        parts = []
        db = metrics.get("output_sqnr_db")
        if db is not None:
            color = LEVEL_COLORS[sqnr_level(db)]
            parts.append(
                f"<span style='color:{color}; font-size:13pt'>●</span> Output SQNR <b>{fmt_db(db)} dB</b>"
            )
        if each := metrics.get("outputs_sqnr_db"):
            name, low = min(each.items(), key=lambda kv: kv[1])
            parts.append(f"lowest output {html.escape(name)} {fmt_db(low)} dB")
        sf, si = metrics.get("size_float_bytes"), metrics.get("size_int8_bytes")
        if sf and si:
            parts.append(f"size {sf / 1e6:.2f} → <b>{si / 1e6:.2f} MB</b>")
        lf, li = metrics.get("latency_float_ms"), metrics.get("latency_int8_ms")
        if lf and li:
            parts.append(f"latency {lf:.2f} → <b>{li:.2f} ms</b> ({lf / li:.2f}×)")
        layers = self.run.layers
        if layers:
            kept = sum(1 for x in layers if not x.get("quantized"))
            parts.append(f"{len(layers)} layers, {kept} in float")
        if report.get("preset"):
            parts.append(f"preset {report['preset']}")
        head = f"<b>{self.run.label.capitalize()}</b>"
        return head + (" · " + " · ".join(parts) if parts else "")

    def _comparison_text(self) -> str:
        now = (self.run.report.get("metrics") or {}).get("output_sqnr_db")
        then = (self.previous.report.get("metrics") or {}).get("output_sqnr_db")
        text = f"Compared with {self.previous.label}"
        if now is not None and then is not None:
            text += f": output SQNR {fmt_db(then)} → {fmt_db(now)} dB ({now - then:+.1f} dB)"
        floated = [
            x.get("name")
            for x in self.run.layers
            if not x.get("quantized") and (self.previous.layer(x.get("name")) or {}).get("quantized")
        ]
        if floated:
            text += f". Now in float: {', '.join(floated[:6])}{' …' if len(floated) > 6 else ''}"
        return text + ". The Layers tab shows each layer's Δ SQNR."
