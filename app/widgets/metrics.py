"""Report metrics in words: one table of names and formats shared by Export, History and Compare."""

from __future__ import annotations

from collections.abc import Callable

from app.widgets import fmt


def _plain(value) -> str:
    if isinstance(value, bool):
        return "passed" if value else "failed"
    if isinstance(value, float):
        return f"{value:.3g}"
    return "–" if value is None else str(value)


def _checker(value) -> str:
    return "passed" if value in (True, "ok") else f"failed: {value}"


def _ms(value) -> str:
    return "–" if value is None else f"{value:.2f} ms"


def _times(value) -> str:
    return "–" if value is None else f"{value:.2f}×"


METRICS: dict[str, tuple[str, Callable]] = {
    "output_sqnr_db": ("Output error vs float (SQNR, higher is better)", fmt.decibels),
    "onnx_parity_sqnr_db": ("ONNX file matches the int8 model (SQNR)", fmt.decibels),
    "onnx_output_sqnr_db": ("ONNX file's error vs float (SQNR, higher is better)", fmt.decibels),
    "accuracy_float": ("Accuracy, float", fmt.percent),
    "accuracy_int8": ("Accuracy, int8", fmt.percent),
    "top1_agreement": ("Same top prediction as float", fmt.percent),
    "size_float_bytes": ("Size, float", fmt.size),
    "size_int8_bytes": ("Size, int8", fmt.size),
    "latency_float_ms": ("Time per input, float (ONNX Runtime CPU)", _ms),
    "latency_int8_ms": ("Time per input, int8 (ONNX Runtime CPU)", _ms),
    "speedup": ("Speed-up", _times),
    "onnx_checker": ("ONNX checker", _checker),
    "accuracy_samples": ("Labelled images used", _plain),
}


def label(key: str) -> str:
    return METRICS.get(key, (key.replace("_", " ").capitalize(), _plain))[0]


def show(key: str, value) -> str:
    return METRICS.get(key, ("", _plain))[1](value) if value is not None else "–"


def ordered(keys) -> list[str]:
    """Known metrics in reading order, then any others the engine added."""
    keys = list(keys)
    return [k for k in METRICS if k in keys] + sorted(k for k in keys if k not in METRICS)
