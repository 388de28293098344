"""FX graph -> GraphDoc for the viewers: weights fold into their consumers, Q/DQ stay visible."""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

from core.engine.analysis import _attr, is_compute, is_dequant, is_quant, layer_names, op_name, runs_quantized
from core.engine.quantizers import module_path
from core.graphdoc import GraphDoc, GraphEdge, GraphNode


def _shape(node: Node):
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [d if isinstance(d, int) else str(d) for d in val.shape], str(val.dtype).replace("torch.", "")
    return None, None


def _summ(t) -> dict:
    if isinstance(t, torch.Tensor):
        t = t.detach().float().reshape(-1)
        if t.numel() == 1:
            return {"value": float(t)}
        return {"min": float(t.min()), "max": float(t.max()), "channels": int(t.numel())}
    return {"value": t if isinstance(t, (int, float)) else str(t)}


def _is_constant(node: Node) -> bool:
    return node.op == "get_attr"


def to_graphdoc(gm: GraphModule, name: str, quantized_graph: bool) -> GraphDoc:
    names = layer_names(gm)
    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    kept = {n.name for n in gm.graph.nodes if _is_constant(n)}
    for n in gm.graph.nodes:
        if n.name in kept or (n.op == "call_module" and n.target == "_guards_fn"):
            continue  # constants fold into their consumers; export's guard check is not model compute
        shape, dtype = _shape(n)
        attrs: dict = {}
        role = ""
        if n.op == "placeholder":
            kind, op = "input", "input"
        elif n.op == "output":
            kind, op = "output", "output"
        elif is_quant(n) or is_dequant(n):
            kind = "quantize" if is_quant(n) else "dequantize"
            op = op_name(n)
            attrs["scale"] = _summ(_attr(gm, n.args[1]))
            attrs["zero_point"] = _summ(_attr(gm, n.args[2]))
            attrs["qdtype"] = str(n.args[-1]).replace("torch.", "")
            src = n.args[0]
            if isinstance(src, Node) and src.op == "get_attr":
                role = " bias" if "int32" in attrs["qdtype"] else " weight"
                w = _attr(gm, src)
                attrs["constant"] = src.target
                if isinstance(w, torch.Tensor):
                    shape, dtype = list(w.shape), str(w.dtype).replace("torch.", "")
        elif is_compute(n):
            quantized = runs_quantized(n)
            kind = "compute" if (quantized or not quantized_graph) else "kept_float"
            op = op_name(n)
        else:
            kind, op = "other", op_name(n) if n.op == "call_function" else n.op
        label = names.get(n.name) or n.name
        if kind in ("quantize", "dequantize"):
            label = ("Q" if kind == "quantize" else "DQ") + role
        nodes.append(
            GraphNode(
                id=n.name,
                label=label,
                op=op,
                kind=kind,
                module=module_path(n) if n.op == "call_function" else "",
                layer=names.get(n.name),
                shape=shape,
                dtype=dtype,
                attrs=attrs,
            )
        )
        for inp in n.all_input_nodes:
            if inp.name not in kept and not (inp.op == "call_module" and inp.target == "_guards_fn"):
                edges.append(GraphEdge(inp.name, n.name))
    return GraphDoc(name=name, nodes=nodes, edges=edges)
