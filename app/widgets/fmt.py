"""Numbers as a person reads them: sizes, counts, durations, decibels, dates."""

from __future__ import annotations

from datetime import datetime, timezone


def size(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def count(n: float | None) -> str:
    if n is None:
        return "–"
    for div, unit in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def decibels(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} dB"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def when(value: str | datetime | None) -> str:
    """An ISO time stamp in the user's local time, to the minute."""
    if not value:
        return "–"
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M")


def sqnr_tone(db: float | None) -> str | None:
    """How worrying a signal-to-quantization-noise ratio is: above 30 dB is fine, below 20 dB is not."""
    if db is None:
        return None
    return "ok" if db >= 30 else "warn" if db >= 20 else "bad"
