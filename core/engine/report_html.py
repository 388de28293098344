"""report.html: one self-contained page a deployment team can read without the app (inline SVG plots)."""

from __future__ import annotations

import html

import numpy as np

GOOD, FAIR = 30.0, 20.0


def _fmt(v, unit="") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3g}{unit}" if abs(v) < 1000 else f"{v:,.0f}{unit}"
    return f"{v}{unit}"


def _mb(n: int | None) -> float | None:
    return None if n is None else n / 1e6


def _colour(sqnr) -> str:
    if sqnr is None:
        return "#9e9e9e"
    return "#2e7d32" if sqnr >= GOOD else "#f9a825" if sqnr >= FAIR else "#c62828"


def _bars_svg(labels: list[str], values: list[float | None], title: str, unit: str) -> str:
    """Horizontal bars, one per layer, coloured like the app's traffic light."""
    row, width, left = 16, 720, 220
    vals = [v for v in values if v is not None]
    top = max(vals) if vals else 1.0
    height = row * len(labels) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" font-family="sans-serif">'
    ]
    parts.append(f'<text x="4" y="14" font-weight="bold">{html.escape(title)}</text>')
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = 24 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{html.escape(lab[:34])}</text>')
        if v is not None and v > 0:
            w = (width - left - 70) * min(v, top) / top
            parts.append(
                f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{_colour(v)}"/>'
            )
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 11}">{v:.1f}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _scatter_svg(xf: np.ndarray, xq: np.ndarray) -> str:
    size, pad = 320, 30
    lo, hi = float(min(xf.min(), xq.min())), float(max(xf.max(), xq.max()))
    span = hi - lo or 1.0

    def sx(v):
        return pad + (v - lo) / span * (size - 2 * pad)

    def sy(v):
        return size - pad - (v - lo) / span * (size - 2 * pad)

    pts = "".join(
        f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="1.2" fill="#1565c0"/>'
        for a, b in zip(xf[:1500], xq[:1500])
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" font-size="11" font-family="sans-serif">'
        f'<rect x="{pad}" y="{pad}" width="{size - 2 * pad}" height="{size - 2 * pad}" fill="none" stroke="#aaa"/>'
        f'<line x1="{sx(lo)}" y1="{sy(lo)}" x2="{sx(hi)}" y2="{sy(hi)}" stroke="#c62828" stroke-dasharray="4"/>{pts}'
        f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle">float output</text>'
        f'<text x="10" y="{size / 2}" transform="rotate(-90 10 {size / 2})" text-anchor="middle">int8 output</text></svg>'
    )


def render(report: dict, tensors: dict) -> str:
    m = report.get("metrics", {})
    esc = html.escape
    rows = [
        ("Output SQNR vs float", _fmt(m.get("output_sqnr_db"), " dB")),
        ("ONNX parity (int8 ONNX vs int8 torch)", _fmt(m.get("onnx_parity_sqnr_db"), " dB")),
        ("ONNX checker", _fmt(m.get("onnx_checker"))),
        (
            "Size float / int8",
            f"{_fmt(_mb(m.get('size_float_bytes')), ' MB')} / {_fmt(_mb(m.get('size_int8_bytes')), ' MB')}",
        ),
        (
            "Latency float / int8 (ONNX Runtime CPU, batch 1)",
            f"{_fmt(m.get('latency_float_ms'), ' ms')} / {_fmt(m.get('latency_int8_ms'), ' ms')}",
        ),
        ("Speed-up", _fmt(m.get("speedup"), "×")),
        ("Top-1 agreement with float", _fmt(m.get("top1_agreement"))),
        ("Accuracy float / int8", f"{_fmt(m.get('accuracy_float'))} / {_fmt(m.get('accuracy_int8'))}"),
    ]
    if each := m.get("outputs_sqnr_db"):
        rows.insert(1, ("SQNR of each output", ", ".join(f"{k} {_fmt(v, ' dB')}" for k, v in each.items())))
    layers = report.get("layers", [])
    layer_rows = "".join(
        f"<tr><td>{esc(str(layer['name']))}</td><td>{esc(str(layer['op']))}</td>"
        f"<td>{'int8' if layer['quantized'] else 'float'}</td><td>{_fmt(layer.get('act_scale'))}</td>"
        f"<td>{_fmt(layer.get('act_zero_point'))}</td>"
        f"<td style='color:{_colour(layer.get('sqnr_db'))}'>{_fmt(layer.get('sqnr_db'), ' dB')}</td></tr>"
        for layer in layers
    )
    warnings = "".join(f"<li>{esc(w)}</li>" for w in report.get("warnings", [])) or "<li>none</li>"
    diagnosed = report.get("unfused")
    unfused = (
        "<li>not diagnosed: this run wrote no ONNX file</li>"
        if diagnosed is None
        else "".join(
            f"<li><b>{esc(u['op'])}</b> {esc(u['name'])}: {esc(u['reason'])}</li>" for u in diagnosed
        )
        or "<li>every Conv, Gemm, MatMul and Add runs as an integer kernel</li>"
    )
    plots = _bars_svg(
        [layer["name"] for layer in layers],
        [layer.get("sqnr_db") for layer in layers],
        "Per-layer SQNR (dB)",
        " dB",
    )
    if "out_float" in tensors:
        plots += _scatter_svg(np.asarray(tensors["out_float"]), np.asarray(tensors["out_int8"]))
    model = report.get("model", {})
    calib = report.get("calibration", {})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>QDQ Studio report – {esc(str(model.get("path", "")))}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:3px 8px;font-size:13px}}th{{background:#f3f3f3}}.warn{{color:#b45309}}</style></head><body>
<h1>Quantization report</h1>
<p><b>Model</b> {esc(str(model.get("path", "")))} ({_fmt(model.get("params"))} parameters, sha256 {esc(str(model.get("sha256", ""))[:16])}…)<br>
<b>Preset</b> {esc(str(report.get("preset")))} · <b>device</b> {esc(str(report.get("device")))} ·
<b>calibration</b> {esc(str(calib.get("source")))} ({calib.get("samples")} samples{", SYNTHETIC" if calib.get("synthetic") else ""})</p>
<h2>Summary</h2><table>{"".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)}</table>
<h2>Warnings</h2><ul class="warn">{warnings}</ul>
<h2>Ops not running as integer kernels</h2><ul>{unfused}</ul>
<h2>Plots</h2>{plots}
<h2>Layers</h2><table><tr><th>layer</th><th>op</th><th>runs as</th><th>act scale</th><th>zero point</th><th>SQNR</th></tr>{layer_rows}</table>
<p style="color:#888">Generated by QDQ Studio on {esc(str(report.get("created_at")))}.</p></body></html>"""
