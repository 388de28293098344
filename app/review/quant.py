"""Numbers the review views derive from a report: traffic lights, the int8 grid, readable summaries.

Kept free of Qt so the rules (thresholds, which integer range a layer used) are tested once and shared
by the table, the graph and the plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GOOD_DB = 30.0
FAIR_DB = 20.0
INT8 = (-128, 127)
UINT8 = (0, 255)


def sqnr_level(db: float | None) -> str:
    """good (>= 30 dB), fair (20-30), poor (< 20) or none when the layer has no SQNR."""
    if db is None or not math.isfinite(db):
        return "none"
    return "good" if db >= GOOD_DB else "fair" if db >= FAIR_DB else "poor"


def fmt(value, digits: int = 4) -> str:
    """A short human number; an em dash for values that do not apply."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def fmt_db(value: float | None) -> str:
    """Decibels with one decimal, so 24.0 and 24.3 line up in a column."""
    return "—" if value is None else f"{value:.1f}"


def fmt_range(lo, hi) -> str:
    return "—" if lo is None or hi is None else f"{fmt(lo)} … {fmt(hi)}"


def summarise(value) -> str:
    """Scalars as they are; per-channel lists and {min, max, channels} as 'min … max (N channels)'.

    graph.json writes a per-tensor value as {"value": v} and a per-channel one as {min, max, channels}.
    """
    if isinstance(value, dict) and "value" in value:
        return summarise(value["value"])
    if isinstance(value, dict) and {"min", "max"} <= value.keys():
        channels = value.get("channels")
        if value["min"] == value["max"] and channels:
            return f"{fmt(value['min'])} (all {channels} channels)"
        suffix = f" ({channels} channels)" if channels else ""
        return fmt_range(value["min"], value["max"]) + suffix
    if isinstance(value, (list, tuple)):
        numbers = [v for v in value if isinstance(v, (int, float))]
        if not numbers:
            return ", ".join(map(str, value)) or "—"
        if min(numbers) == max(numbers):
            return f"{fmt(numbers[0])} (all {len(numbers)} channels)"
        return f"{fmt_range(min(numbers), max(numbers))} ({len(numbers)} channels)"
    return fmt(value)


def quant_range(layer: dict) -> tuple[int, int]:
    """The integer range of a layer's activations.

    Taken from act_qmin/act_qmax when the report has them; otherwise a negative zero point means int8,
    one above 127 means uint8, and for the rest the range whose float interval best matches the
    observed [act_min, act_max] wins (a zero point of 0 is both symmetric int8 and post-ReLU uint8).
    """
    if layer.get("act_qmin") is not None and layer.get("act_qmax") is not None:
        return int(layer["act_qmin"]), int(layer["act_qmax"])
    zp = int(layer.get("act_zero_point") or 0)
    if zp < 0:
        return INT8
    if zp > INT8[1]:
        return UINT8
    scale, lo, hi = layer.get("act_scale"), layer.get("act_min"), layer.get("act_max")
    if not scale or lo is None or hi is None or hi <= lo:
        return INT8
    return max((INT8, UINT8), key=lambda r: _overlap(clip_bounds(scale, zp, *r), (lo, hi)))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def clip_bounds(scale: float, zero_point: int, qmin: int, qmax: int) -> tuple[float, float]:
    """The float interval an int8 tensor can represent; values outside it are clipped."""
    return scale * (qmin - zero_point), scale * (qmax - zero_point)


def grid_levels(
    scale: float, zero_point: int, qmin: int, qmax: int, max_lines: int = 64
) -> tuple[np.ndarray, int]:
    """Float positions of the integer levels, every `step`-th one so at most max_lines are drawn."""
    count = qmax - qmin + 1
    step = 1
    while count / step > max_lines:
        step *= 2
    q = np.arange(qmin, qmax + 1, step)
    return scale * (q - zero_point), step


def clipped_fraction(counts: Sequence[float], edges: Sequence[float], lo: float, hi: float) -> float:
    """Share of the histogram's mass outside [lo, hi], splitting straddling bins proportionally."""
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    total = counts.sum()
    if total <= 0:
        return 0.0
    left, right = edges[:-1], edges[1:]
    width = np.maximum(right - left, 1e-30)
    below = np.clip((lo - left) / width, 0.0, 1.0)
    above = np.clip((right - hi) / width, 0.0, 1.0)
    return float((counts * np.minimum(below + above, 1.0)).sum() / total)
