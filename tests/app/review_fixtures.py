"""Synthetic run directories in the exact docs/formats.md shapes, for the review page tests and bench.

The model is ResNet-shaped (stem conv, residual blocks of two convs and an add, a linear head). The
quantized graph puts quantize/dequantize pairs after every activation and a dequantize on every weight,
as PT2E does; layers listed in `kept_float` stay float. One layer can be made hard to quantize.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.graphdoc import GraphDoc, GraphEdge, GraphNode, dump_graphs


@dataclass
class _Builder:
    quantized: bool
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def add(self, node_id: str, op: str, kind: str, inputs=(), **extra) -> str:
        self.nodes.append(GraphNode(id=node_id, label=extra.pop("label", node_id), op=op, kind=kind, **extra))
        self.edges.extend(GraphEdge(src, node_id) for src in inputs)
        return node_id

    def qdq(self, src: str, layer: dict | None) -> str:
        """Quantize then dequantize an activation, as convert_pt2e leaves it."""
        if not self.quantized or layer is None or not layer["quantized"]:
            return src
        attrs = {
            "scale": {"value": layer["act_scale"]},
            "zero_point": {"value": layer["act_zero_point"]},
            "qdtype": "uint8",
        }
        q = self.add(f"{src}_q", "quantize_per_tensor", "quantize", [src], dtype="uint8", attrs=attrs)
        return self.add(f"{src}_dq", "dequantize_per_tensor", "dequantize", [q], dtype="float32", attrs=attrs)

    def layer_node(self, layer: dict, inputs: list[str], shape: list) -> str:
        name = layer["name"]
        extra = {"module": layer["module"], "layer": name, "shape": shape, "dtype": "float32"}
        ins = list(inputs)
        if layer["weight_scale"] is not None:
            w = self.add(
                f"{layer['node']}_weight", "get_attr", "constant", shape=[layer["weight_scale"]["channels"]]
            )
            if self.quantized and layer["quantized"]:
                channels = layer["weight_scale"]["channels"]
                attrs = {
                    "scale": dict(layer["weight_scale"]),
                    "zero_point": {"min": 0.0, "max": 0.0, "channels": channels},
                    "qdtype": "int8",
                }
                w = self.add(
                    f"{w}_dq", "dequantize_per_channel", "dequantize", [w], dtype="float32", attrs=attrs
                )
            ins.append(w)
        kind = "compute" if (layer["quantized"] or not self.quantized) else "kept_float"
        return self.add(layer["node"], layer["op"], kind, ins, **extra)


def _layer(name: str, op: str, channels: int | None, rng: np.random.Generator, bad: bool) -> dict:
    act_max = float(rng.uniform(2.0, 8.0)) * (12.0 if bad else 1.0)
    act_min = 0.0 if op != "add" else -float(rng.uniform(1.0, 3.0))
    scale = (act_max - act_min) / 255.0
    wscale = None
    if channels:
        lo = float(rng.uniform(0.001, 0.004))
        wscale = {"min": lo, "max": lo * (40.0 if bad else 3.0), "channels": channels}
    return {
        "name": name,
        "op": op,
        "module": name if op != "add" else "",
        "node": name.replace(".", "_"),
        "quantized": True,
        "weight_scale": wscale,
        "act_scale": scale,
        "act_zero_point": int(round(-act_min / scale)),
        "act_min": act_min,
        "act_max": act_max,
        "sqnr_db": float(rng.uniform(12.0, 16.0) if bad else rng.uniform(24.0, 42.0)),
    }


def make_layers(blocks: int, bad: str | None = None, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = [("conv1", "conv2d", 16)]
    for b in range(blocks):
        stage = f"layer{b // 2 + 1}.{b % 2}"
        width = 16 * 2 ** min(b // 2, 3)
        names += [
            (f"{stage}.conv1", "conv2d", width),
            (f"{stage}.conv2", "conv2d", width),
            (f"add_{b}", "add", None),
        ]
    names.append(("fc", "linear", 10))
    return [_layer(n, op, ch, rng, n == bad) for n, op, ch in names]


def build_graph(layers: list[dict], quantized: bool, kept_float=()) -> GraphDoc:
    """The float or quantized GraphDoc of the ResNet-shaped model described by `layers`."""
    b = _Builder(quantized)
    by_name = {
        layer["name"]: dict(layer, quantized=layer["quantized"] and layer["name"] not in kept_float)
        for layer in layers
    }
    x = b.add("x", "placeholder", "input", shape=["batch", 3, 32, 32], dtype="float32")
    x = b.qdq(x, by_name["conv1"])
    x = b.layer_node(by_name["conv1"], [x], ["batch", 16, 32, 32])
    x = b.add("relu", "relu", "compute", [x], shape=["batch", 16, 32, 32])
    x = b.qdq(x, by_name["conv1"])
    blocks = [layer for layer in layers if layer["op"] == "add"]
    for i, add in enumerate(blocks):
        stage = f"layer{i // 2 + 1}.{i % 2}"
        c1, c2 = by_name[f"{stage}.conv1"], by_name[f"{stage}.conv2"]
        ch = c1["weight_scale"]["channels"]
        side = 32 >> min(i // 2, 3)
        shape = ["batch", ch, side, side]
        h = b.layer_node(c1, [x], shape)
        h = b.add(f"{c1['node']}_relu", "relu", "compute", [h], shape=shape)
        h = b.qdq(h, c1)
        h = b.layer_node(c2, [h], shape)
        h = b.qdq(h, c2)
        x = b.layer_node(by_name[add["name"]], [h, x], shape)
        x = b.add(f"{add['node']}_relu", "relu", "compute", [x], shape=shape)
        x = b.qdq(x, by_name[add["name"]])
    x = b.add("flatten", "flatten", "other", [x], shape=["batch", -1])
    x = b.layer_node(by_name["fc"], [x], ["batch", 10])
    b.add("output", "output", "output", [x], shape=["batch", 10], dtype="float32")
    return GraphDoc(name="quantized" if quantized else "float", nodes=b.nodes, edges=b.edges)


def random_dag(n: int, seed: int = 0) -> GraphDoc:
    """Nodes in order, each fed by one to three of the 25 before it: a wide, crossing-heavy DAG."""
    rng = random.Random(seed)
    nodes = [GraphNode(id=f"n{i}", label=f"n{i}", op="op") for i in range(n)]
    edges = [
        GraphEdge(f"n{j}", f"n{i}")
        for i in range(1, n)
        for j in {rng.randrange(max(0, i - 25), i) for _ in range(rng.randint(1, 3))}
    ]
    return GraphDoc("random", nodes, edges)


def synthetic_graph(approx_nodes: int, seed: int = 0) -> GraphDoc:
    """A quantized ResNet-shaped graph of about `approx_nodes` nodes (for layout benchmarks)."""
    blocks = max(1, round((approx_nodes - 14) / 15))
    return build_graph(make_layers(blocks, seed=seed), quantized=True)


def _tensors(layers: list[dict], bad: str | None, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        name = layer["name"]
        lo, hi = layer["act_min"], layer["act_max"]
        samples = rng.gamma(2.0, hi / 6.0, 20000) + lo
        if name == bad:
            samples = np.concatenate([samples / 8.0, rng.uniform(lo, hi * 1.2, 40)])
        counts, edges = np.histogram(samples, bins=128, range=(lo - 0.05 * (hi - lo), hi * 1.1))
        out[f"act_hist::{name}"] = counts.astype(np.float64)
        out[f"act_edges::{name}"] = edges
        if layer["weight_scale"]:
            ch = layer["weight_scale"]["channels"]
            spread = rng.uniform(0.2, 0.6, ch)
            if name == bad:
                spread[rng.integers(ch)] = 9.0
            out[f"w_min::{name}"] = -spread * rng.uniform(0.8, 1.0, ch)
            out[f"w_max::{name}"] = spread
    y = rng.normal(0.0, 3.0, 4096)
    out["out_float"] = y.astype(np.float32)
    out["out_int8"] = (y + rng.normal(0.0, 0.08, 4096)).astype(np.float32)
    return out


def make_run_dir(
    path: Path,
    *,
    blocks: int = 4,
    bad: str | None = "layer2.0.conv2",
    kept_float=(),
    run_id: int | None = 7,
    seed: int = 0,
    tensors: bool = True,
    unfused=None,
) -> Path:
    """Write report.json, graph.json and (optionally) tensors.npz into `path`; return it."""
    path.mkdir(parents=True, exist_ok=True)
    layers = make_layers(blocks, bad=bad, seed=seed)
    for layer in layers:
        if layer["name"] in kept_float:
            layer.update(quantized=False, act_scale=None, act_zero_point=None, sqnr_db=None)
    graphs = {"float": build_graph(layers, False), "quantized": build_graph(layers, True, kept_float)}
    (path / "graph.json").write_text(dump_graphs(graphs), encoding="utf-8")
    report = {
        "schema": 1,
        "run_id": run_id,
        "created_at": "2025-01-01T12:00:00+00:00",
        "model": {
            "path": "model.pt2",
            "sha256": "0" * 64,
            "format": "pt2",
            "params": 1_200_000,
            "inputs": [{"name": "x", "shape": ["batch", 3, 32, 32], "dtype": "float32"}],
        },
        "preset": "onnxruntime",
        "options": {
            "model": "model.pt2",
            "out_dir": str(path),
            "preset": "onnxruntime",
            "keep_float": list(kept_float),
        },
        "device": "cpu",
        "calibration": {
            "source": "synthetic",
            "samples": 64,
            "batch_size": 8,
            "seconds": 1.5,
            "synthetic": True,
            "skipped": 0,
        },
        "qat": None,
        "artifacts": {
            "int8_onnx": "model.int8.onnx",
            "int8_pt2": "model.int8.pt2",
            "float_onnx": "model.float.onnx",
            "graph": "graph.json",
            "tensors": "tensors.npz",
            "html": "report.html",
        },
        "metrics": {
            "output_sqnr_db": 31.4,
            "outputs_sqnr_db": {"logits": 31.4, "aux": 27.9},
            "onnx_parity_sqnr_db": 48.2,
            "size_float_bytes": 4_800_000,
            "size_int8_bytes": 1_250_000,
            "latency_float_ms": 19.0,
            "latency_int8_ms": 5.5,
            "speedup": 3.45,
            "onnx_checker": "ok",
            "top1_agreement": 0.97,
            "accuracy_float": None,
            "accuracy_int8": None,
        },
        "layers": layers,
        "unfused": [{"op": "BatchNormalization", "name": "bn_7", "reason": "standalone BatchNorm after ReLU"}]
        if unfused is None
        else unfused,
        "timings": {
            "load_s": 0.2,
            "capture_s": 1.1,
            "prepare_s": 0.3,
            "calibrate_s": 1.5,
            "convert_s": 0.4,
            "analyse_s": 0.9,
            "export_s": 1.2,
        },
        "warnings": ["Calibrated on synthetic data: accuracy figures are only indicative."],
    }
    (path / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    if tensors:
        np.savez(path / "tensors.npz", **_tensors(layers, bad, seed))
    return path
