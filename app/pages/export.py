"""Export page: save the int8 model where the deployment team wants it, with the evidence that it works."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.settings import Settings
from app.widgets import fmt
from app.widgets import metrics as mx
from app.widgets.banner import Banner
from app.widgets.page import Page, muted, section, set_tone
from app.widgets.path_picker import PathPicker
from core.errors import UserError
from core.presets import get_preset

FORMATS = {"onnx": ("int8_onnx", "model.int8.onnx", ".onnx"), "pt2": ("int8_pt2", "model.int8.pt2", ".pt2")}


class ExportPage(Page):
    title = "Export"
    intro = (
        "Save the quantized model for deployment and check the evidence that it is sound: the ONNX checker, "
        "agreement with the int8 PyTorch model, the size and the speed-up."
    )

    exported = Signal(str)  # destination path
    _copied = Signal(str, str)  # destination, error message ("" on success); emitted from the copy thread

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self._settings = settings
        self.out_dir = ""
        self.report: dict = {}
        self.run_label = QLabel(wordWrap=True)
        self.body.addWidget(self.run_label)

        self.body.addWidget(section("Format"))
        self.onnx = QRadioButton(
            "ONNX, int8 with Q/DQ (recommended: ONNX Runtime, TensorRT and most runtimes)"
        )
        self.pt2 = QRadioButton("PyTorch ExportedProgram (.pt2), for torch.compile or ExecuTorch")
        self.onnx.setChecked(True)
        group = QButtonGroup(self)
        for button in (self.onnx, self.pt2):
            group.addButton(button)
            button.toggled.connect(self._on_format_toggled)
            self.body.addWidget(button)

        self.body.addWidget(section("Destination"))
        self.destination = PathPicker(settings, "export", modes=("save",), filters="Models (*.onnx *.pt2)")
        self.export_button = QPushButton("Export", objectName="primary")
        self.export_button.clicked.connect(self.export)
        row = QHBoxLayout()
        row.addWidget(self.destination, 1)
        row.addWidget(self.export_button)
        self.body.addLayout(row)
        self.result = Banner("ok")
        self.body.addWidget(self.result)

        self.body.addWidget(section("Validation"))
        self.checks = QGridLayout()
        self.checks.setHorizontalSpacing(24)
        self.checks.setColumnStretch(2, 1)
        self.body.addLayout(self.checks)
        self.warnings = Banner("warn")
        self.body.addWidget(self.warnings)

        links = QHBoxLayout()
        self.open_folder = QPushButton("Open folder")
        self.open_folder.clicked.connect(self._open_folder)
        self.open_report = QPushButton("Open report (report.html)")
        self.open_report.clicked.connect(
            lambda: _open(Path(self.out_dir) / self._artifact("html", "report.html"))
        )
        links.addWidget(self.open_folder)
        links.addWidget(self.open_report)
        links.addStretch(1)
        self.body.addLayout(links)
        self.body.addStretch(1)
        self._copied.connect(self._on_copied)
        self.set_run("", {})

    # -- run ----------------------------------------------------------------------------------------

    def set_run(self, out_dir: str, report: dict) -> None:
        self.out_dir, self.report = out_dir, report
        has_run = bool(out_dir)
        for w in (
            self.onnx,
            self.pt2,
            self.destination,
            self.export_button,
            self.open_folder,
            self.open_report,
        ):
            w.setEnabled(has_run)
        self.result.hide()
        if not has_run:
            self.run_label.setText(
                "Nothing to export yet: run a quantization, or open a finished run from History."
            )
            self._show_checks({})
            self.warnings.hide()
            return
        model = Path((report.get("model") or {}).get("path", "model")).name
        run_id = report.get("run_id")
        self.run_label.setText(
            f"<b>{model}</b>, {_preset_title(report.get('preset'))}"
            + (f", run #{run_id}" if run_id is not None else "")
            + f"<br><span>{out_dir}</span>"
        )
        for button, (key, default, _) in zip((self.onnx, self.pt2), FORMATS.values(), strict=True):
            button.setEnabled((Path(out_dir) / self._artifact(key, default)).exists())
        if not self.onnx.isEnabled():  # a run without ONNX export (--no-onnx)
            self.pt2.setChecked(True)
            self.run_label.setText(
                self.run_label.text() + "<br>This run wrote no ONNX file (it was turned off): the int8 .pt2 "
                "is what there is to export."
            )
        elif not self.pt2.isEnabled():
            self.onnx.setChecked(True)
        self.export_button.setEnabled(self.onnx.isEnabled() or self.pt2.isEnabled())
        self._suggest_destination()
        self._show_checks(report.get("metrics") or {})
        warnings = report.get("warnings") or []
        if warnings:
            self.warnings.show_message("Warnings from this run:\n• " + "\n• ".join(map(str, warnings)))
        else:
            self.warnings.hide()

    def _artifact(self, key: str, default: str) -> str:
        return (self.report.get("artifacts") or {}).get(key) or default

    def _on_format_toggled(self, on: bool) -> None:
        if on:
            self._suggest_destination()

    def _format(self) -> str:
        return "pt2" if self.pt2.isChecked() else "onnx"

    def _suggest_destination(self) -> None:
        if not self.out_dir:
            return
        stem = Path((self.report.get("model") or {}).get("path", "model")).stem
        folder = Path(self.destination.path()).parent if self.destination.path() else None
        folder = folder or Path(self._settings.last_folder("export"))
        self.destination.set_path(str(folder / f"{stem}.int8{FORMATS[self._format()][2]}"), notify=False)

    def _show_checks(self, metrics: dict) -> None:
        while self.checks.count():
            self.checks.takeAt(0).widget().deleteLater()
        for row, (name, value, tone, note) in enumerate(_checks(metrics)):
            self.checks.addWidget(QLabel(name), row, 0)
            value_label = QLabel(value)
            set_tone(value_label, tone)
            self.checks.addWidget(value_label, row, 1)
            self.checks.addWidget(muted(note), row, 2)
        if not metrics:
            self.checks.addWidget(muted("The checks of the run appear here."), 0, 0)

    # -- export -------------------------------------------------------------------------------------

    def export(self) -> None:
        key, default, _ = FORMATS[self._format()]
        source = Path(self.out_dir) / self._artifact(key, default)
        dest = Path(self.destination.path()).expanduser()
        if not self.destination.path():
            self.result.show_message("Choose where to save the file first.", "bad")
            return
        self.export_button.setEnabled(False)
        self.result.show_message(f"Copying to {dest}…", "ok")
        threading.Thread(target=self._copy, args=(source, dest), daemon=True).start()

    def _copy(self, source: Path, dest: Path) -> None:
        """Runs on a helper thread: big models take a while to copy."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(dest.name + ".part")
            shutil.copyfile(source, partial)
            partial.replace(dest)
            for sidecar in source.parent.glob(source.name + ".data"):
                shutil.copyfile(sidecar, dest.parent / sidecar.name)
            self._copied.emit(str(dest), "")
        except OSError as e:
            self._copied.emit(str(dest), e.strerror or str(e))

    def _on_copied(self, dest: str, error: str) -> None:
        self.export_button.setEnabled(True)
        if error:
            self.result.show_message(f"Could not save {dest}: {error}", "bad")
            return
        self._settings.set_last_folder("export", dest)
        self.result.show_message(f"Saved {dest} ({fmt.size(Path(dest).stat().st_size)}).", "ok")
        self.exported.emit(dest)

    def _open_folder(self) -> None:
        dest = Path(self.destination.path())
        _open(dest.parent if dest.exists() else Path(self.out_dir))


def _preset_title(preset_id: str | None) -> str:
    try:
        return f"preset {get_preset(preset_id).title}"
    except UserError:
        return f"preset {preset_id}"


def _open(path: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def _checks(m: dict) -> list[tuple[str, str, str | None, str]]:
    """(what, value, tone, what it means) for the validation grid; only what the run measured."""
    rows = []
    if "onnx_checker" in m:
        ok = m["onnx_checker"] in (True, "ok")
        rows.append(
            (
                "ONNX checker",
                mx.show("onnx_checker", m["onnx_checker"]),
                "ok" if ok else "bad",
                "The file is a valid ONNX model.",
            )
        )
    if m.get("onnx_parity_sqnr_db") is not None:
        v = m["onnx_parity_sqnr_db"]
        rows.append(
            (
                "ONNX vs PyTorch int8",
                fmt.decibels(v),
                fmt.sqnr_tone(v),
                "How closely ONNX Runtime reproduces the quantized model (above 35 dB: the same).",
            )
        )
    # the exported file's own error where it was measured, else the int8 torch model's
    key = "onnx_output_sqnr_db" if m.get("onnx_output_sqnr_db") is not None else "output_sqnr_db"
    if m.get(key) is not None:
        v = m[key]
        rows.append(
            (
                "Int8 vs float output",
                fmt.decibels(v),
                fmt.sqnr_tone(v),
                "Signal-to-noise of the int8 output against the float one (above 30 dB is good, below 20 dB worrying).",
            )
        )
    if m.get("accuracy_float") is not None and m.get("accuracy_int8") is not None:
        drop = m["accuracy_float"] - m["accuracy_int8"]
        tone = "ok" if drop <= 0.01 else "warn" if drop <= 0.03 else "bad"
        rows.append(
            (
                "Accuracy",
                f"{fmt.percent(m['accuracy_float'])} → {fmt.percent(m['accuracy_int8'])}",
                tone,
                "Float, then int8, on the labelled images.",
            )
        )
    if m.get("top1_agreement") is not None:
        v = m["top1_agreement"]
        rows.append(
            (
                "Same prediction",
                fmt.percent(v),
                "ok" if v >= 0.98 else "warn",
                "Share of samples where int8 picks the same class as float.",
            )
        )
    if m.get("size_float_bytes") and m.get("size_int8_bytes"):
        ratio = m["size_float_bytes"] / m["size_int8_bytes"]
        rows.append(
            (
                "Size",
                f"{fmt.size(m['size_float_bytes'])} → {fmt.size(m['size_int8_bytes'])}",
                "ok" if ratio > 1.5 else "warn",
                f"{ratio:.1f}× smaller on disk.",
            )
        )
    if m.get("latency_float_ms") and m.get("latency_int8_ms"):
        speedup = m.get("speedup") or m["latency_float_ms"] / m["latency_int8_ms"]
        words = f"{speedup:.2f}× faster" if speedup >= 1 else f"{1 / speedup:.2f}× slower"
        rows.append(
            (
                "Speed (ONNX Runtime CPU)",
                f"{m['latency_float_ms']:.2f} ms → {m['latency_int8_ms']:.2f} ms",
                "ok" if speedup >= 1.2 else "warn",
                f"{words} per input on this computer.",
            )
        )
    return rows
