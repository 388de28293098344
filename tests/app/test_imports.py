"""The window process must never load torch: it would cost seconds at start-up and tie the UI to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHECK = """
import json, sys
from PySide6.QtWidgets import QApplication
import app.main, app.window, app.selftest
from app.job_client import JobClient
from app.settings import Settings
from app.window import MainWindow
app_ = QApplication([])
w = MainWindow(JobClient(), Settings(sys.argv[1]), db_path=sys.argv[2])
w._install_review()
for key in ("model", "preset", "calib", "run", "review", "export", "history"):
    w.show_page(key)
banned = ("torch", "torchao", "onnx", "onnxruntime", "onnxscript", "core.engine")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith("core.engine"))))
"""


def test_window_does_not_import_torch(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "s.ini"), str(tmp_path / "h.sqlite")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_help_runs_without_a_display():
    out = subprocess.run(
        [sys.executable, "-m", "app.main", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for flag in ("--demo", "--self-test", "--db"):
        assert flag in out.stdout
