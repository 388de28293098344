"""Two runs side by side: metric changes and the layers whose error moved the most."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.theme import tone
from app.widgets import fmt
from app.widgets import metrics as mx
from app.widgets.page import muted, section
from app.widgets.table import fact_table

# Metrics where a smaller number is the better one.
LOWER_IS_BETTER = {"size_int8_bytes", "size_float_bytes", "latency_int8_ms", "latency_float_ms"}


class CompareDialog(QDialog):
    def __init__(self, result: dict, run_a: dict, run_b: dict, parent: QWidget | None = None):
        super().__init__(parent, windowTitle=f"Run #{run_a['id']} compared with run #{run_b['id']}")
        self.resize(860, 640)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(f"<b>A</b> = {_describe(run_a)}<br><b>B</b> = {_describe(run_b)}", wordWrap=True)
        )
        layout.addWidget(section("Results"))
        numeric = {
            k: v
            for k, v in result.get("metrics", {}).items()
            if not isinstance(v.get("a") or v.get("b"), dict)
        }
        self.metrics = fact_table(["Measure", "A", "B", "Change (B − A)"])
        self.metrics.setRowCount(len(numeric))
        for r, key in enumerate(mx.ordered(numeric)):
            v = numeric[key]
            delta = v.get("delta")
            cells = [mx.label(key), mx.show(key, v.get("a")), mx.show(key, v.get("b")), _delta(key, delta)]
            for c, text in enumerate(cells):
                self.metrics.setItem(r, c, QTableWidgetItem(text))
            if delta:
                better = (delta < 0) if key in LOWER_IS_BETTER else (delta > 0)
                self.metrics.item(r, 3).setForeground(tone("ok" if better else "bad"))
        layout.addWidget(self.metrics, 1)

        layout.addWidget(section("Per-layer error (SQNR, higher is better), biggest changes first"))
        layers = sorted(result.get("layers", {}).items(), key=lambda kv: -abs(kv[1].get("delta") or 0))
        self.layers = fact_table(["Layer", "A", "B", "Change", "Int8 in A / B"])
        self.layers.setRowCount(len(layers))
        for r, (name, v) in enumerate(layers):
            q = "/".join("yes" if v.get(k) else "float" for k in ("quantized_a", "quantized_b"))
            cells = [
                name,
                fmt.decibels(v.get("sqnr_a")),
                fmt.decibels(v.get("sqnr_b")),
                _signed(v.get("delta"), " dB"),
                q,
            ]
            for c, text in enumerate(cells):
                self.layers.setItem(r, c, QTableWidgetItem(text))
        layout.addWidget(self.layers, 2)
        only = [
            f"only in A: {', '.join(result['only_in_a'])}" if result.get("only_in_a") else "",
            f"only in B: {', '.join(result['only_in_b'])}" if result.get("only_in_b") else "",
        ]
        if any(only):
            layout.addWidget(muted("; ".join(s for s in only if s)))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def _describe(run: dict) -> str:
    return f"run #{run['id']}: {Path(run.get('model_path') or '').name}, preset {run.get('preset')}, {fmt.when(run.get('started_at'))}"


def _signed(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:+.3g}{unit}"


def _delta(key: str, delta) -> str:
    if delta is None:
        return "–"
    if key.startswith("size_"):
        return ("+" if delta >= 0 else "−") + fmt.size(abs(delta))
    if key.startswith(("accuracy", "top1")):
        return f"{100 * delta:+.1f} points"
    return _signed(delta, " dB" if key.endswith("_db") else " ms" if key.endswith("_ms") else "")
