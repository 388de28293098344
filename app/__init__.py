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


# PySide6 6.12 hands back True from Signal.emit(), and takes back a bool returned by a slot, without
# the reference that goes with it. Before Python 3.12 made True and False immortal, a few hundred such
# calls free one of them and the interpreter aborts ("bool_dealloc"). So on CPython 3.11 we add spare
# references to both (never given back, as the borrowed ones are not) whenever they run low.
_BOOL_REFS_LOW, _BOOL_REFS_TOP_UP = 100_000, 1_000_000


def keep_bools_alive() -> None:
    """Top up the reference counts of True and False; cheap, called at import and per worker event."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for value in (True, False):
        if sys.getrefcount(value) < _BOOL_REFS_LOW:
            ctypes.c_ssize_t.from_address(id(value)).value += _BOOL_REFS_TOP_UP


keep_bools_alive()
