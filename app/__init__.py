"""QDQ Studio's window. It never imports torch: every torch job runs in the worker process."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def root_dir() -> Path:
    """The folder holding `core`, `app` and `resources`: the repo, or the unpacked bundle when frozen."""
    return Path(getattr(sys, "_MEIPASS", PACKAGE_DIR.parent))


def resource_path(*parts: str) -> Path:
    return root_dir().joinpath("resources", *parts)


def demo_model_path() -> Path:
    return resource_path("demo", "model.pt2")
