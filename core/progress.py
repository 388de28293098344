"""Progress reporting that maps sub-steps onto slices of one bar and estimates time left.

Engine functions take a `Progress` and call it; the callback it wraps may raise `Cancelled`, which is
how a job stops cooperatively between batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Callback = Callable[[dict[str, Any]], None]


class Progress:
    def __init__(
        self, emit: Callback | None = None, start: float = 0.0, end: float = 1.0, _t0: float | None = None
    ):
        self._emit = emit or (lambda event: None)
        self.start, self.end = start, end
        self._t0 = time.monotonic() if _t0 is None else _t0
        self._slice_t0 = time.monotonic()

    def sub(self, start: float, end: float) -> Progress:
        """A child whose 0..1 maps onto [start, end] of this one."""
        span = self.end - self.start
        return Progress(self._emit, self.start + span * start, self.start + span * end, self._t0)

    def __call__(self, fraction: float, message: str = "", **extra: Any) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        overall = self.start + (self.end - self.start) * fraction
        self._emit(
            {
                "type": "progress",
                "fraction": overall,
                "message": message,
                "eta_s": self._eta(fraction),
                **extra,
            }
        )

    def _eta(self, fraction: float) -> float | None:
        """Time left in this slice from its own rate; sub-steps are timed where they are measured."""
        elapsed = time.monotonic() - self._slice_t0
        if fraction <= 0.02 or elapsed < 0.5:
            return None
        return elapsed * (1 - fraction) / fraction

    def stage(self, name: str, index: int, count: int) -> None:
        self._slice_t0 = time.monotonic()
        self._emit({"type": "stage", "name": name, "index": index, "count": count})

    def log(self, message: str) -> None:
        self._emit({"type": "log", "message": message})

    def warning(self, message: str) -> None:
        self._emit({"type": "warning", "message": message})
