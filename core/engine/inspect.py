"""What a model file is, before anything is quantized: inputs, size, ops, and whether it exports."""

from __future__ import annotations

from collections import Counter

from core.engine.analysis import op_name, parameter_count
from core.engine.capture import capture
from core.engine.loading import load_model
from core.errors import UserError


def inspect_model(path: str, trust_code: bool = False) -> dict:
    loaded = load_model(path, trust_code)
    info = {
        "path": loaded.path,
        "format": loaded.format,
        "sha256": loaded.sha256,
        "params": parameter_count(loaded.module),
        "inputs": [
            {"name": n, "shape": ["N", *list(t.shape[1:])], "dtype": str(t.dtype).replace("torch.", "")}
            for n, t in zip(loaded.input_names, loaded.example_inputs)
        ],
        "exportable": True,
        "why": None,
        "dynamic_batch": True,
        "ops": {},
    }
    try:
        cap = capture(loaded)
    except UserError as e:
        info.update(exportable=False, why=str(e))
        return info
    info["dynamic_batch"] = cap.fixed_batch is None
    if cap.warnings:
        info["why"] = "; ".join(cap.warnings)
    ops = Counter(op_name(n) for n in cap.graph_module.graph.nodes if n.op == "call_function")
    info["ops"] = dict(ops.most_common())
    return info
