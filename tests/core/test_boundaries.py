"""The architecture's import rules, checked in fresh interpreters (other tests import torch freely)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PYTHON, REPO, python_env


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [PYTHON, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=REPO,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "module",
    ["core.jobs.spec", "core.jobs.execute", "core.store", "core.graphdoc", "core.cli", "core.presets"],
)
def test_light_core_modules_do_not_import_torch(module):
    loaded = modules_after(f"import {module}")
    assert not {"torch", "onnx", "onnxruntime", "PySide6"} & loaded


def test_engine_does_not_import_qt():
    loaded = modules_after("import core.engine.pipeline, core.engine.sensitivity")
    assert "PySide6" not in loaded and "pyqtgraph" not in loaded


def test_import_contracts_hold():
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lint-imports")], capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode == 127 or "No such file" in proc.stderr:
        pytest.skip("lint-imports not installed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
