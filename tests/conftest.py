"""Shared fixtures: real models saved as .pt2 files, a temporary history database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


def pytest_collection_modifyitems(config, items):
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo_pt2(zoo_dir):
    """name -> path of that zoo model exported with a symbolic batch."""
    from tests.models import build, save_pt2

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            model, shape = build(name)
            path = zoo_dir / f"{name}.pt2"
            save_pt2(model, shape, path)
            cache[name] = path
        return cache[name]

    return get


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "history.sqlite")


def python_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


PYTHON = sys.executable
