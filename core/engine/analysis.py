"""What quantization did, layer by layer and for the whole model.

Per-layer SQNR compares each compute node of the converted model with the same node of the prepared
model (float, with conv-BN already folded and observers acting as identity). Comparing against the
unfolded float graph would blame BN folding on quantization (see DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.fx import GraphModule, Interpreter, Node
from torchao.quantization.pt2e import ObserverBase

from core.engine.quantizers import ADD_OPS, CONV_OPS, LINEAR_OPS, MATMUL_OPS, MUL_OPS, module_path

COMPUTE_OPS = CONV_OPS | LINEAR_OPS | MATMUL_OPS | ADD_OPS | MUL_OPS
HIST_BINS = 128
HIST_VALUES = 1 << 17  # values kept per layer for its histogram
ANALYSIS_CHUNK = 4  # samples per pass: bounds memory, since every layer's output is held at once
QUANT_OPS = ("quantize_per_tensor", "quantize_per_channel", "choose_qparams")
DEQUANT_OPS = ("dequantize_per_tensor", "dequantize_per_channel")


def op_name(node: Node) -> str:
    t = node.target
    name = getattr(t, "__name__", str(t))
    if hasattr(t, "_schema"):
        name = t._schema.name.split("::")[-1]
    return name.split(".")[0]


def is_quant(node: Node) -> bool:
    name = str(node.target)
    return node.op == "call_function" and "dequantize" not in name and any(k in name for k in QUANT_OPS)


def is_dequant(node: Node) -> bool:
    return node.op == "call_function" and any(k in str(node.target) for k in DEQUANT_OPS)


def is_compute(node: Node) -> bool:
    if node.op != "call_function" or node.target not in COMPUTE_OPS:
        return False
    if node.target in ADD_OPS or node.target in MUL_OPS:
        # tensor + tensor; a scalar operand (x + 1) is not a layer. DQ nodes may lack "val" metadata.
        return all(
            isinstance(a, Node) and not isinstance(a.meta.get("val"), (int, float)) for a in node.args[:2]
        )
    return True


def runs_quantized(node: Node) -> bool:
    """A weighted op is quantized when its weight is; other ops when all their tensor inputs are."""
    args = node.args[:2]
    if node.target in CONV_OPS | LINEAR_OPS:
        args = node.args[1:2]
    return all(isinstance(a, Node) and is_dequant(a) for a in args)


def layer_names(gm: GraphModule) -> dict[str, str]:
    """node name -> layer name: the module path when it identifies one op, else the node name."""
    nodes = [n for n in gm.graph.nodes if is_compute(n)]
    per_module: dict[str, int] = {}
    for n in nodes:
        per_module[module_path(n)] = per_module.get(module_path(n), 0) + 1
    out = {}
    for n in nodes:
        path = module_path(n)
        out[n.name] = path if path and per_module[path] == 1 and n.target not in ADD_OPS | MUL_OPS else n.name
    return out


def finite_pairs(ref: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64, where both are finite: attention scores with a -inf mask added (a sliding
    window written as log(tril)) made every sum NaN, and the histogram's range infinite."""
    ref, test = ref.detach().double().flatten(), test.detach().double().flatten()
    finite = torch.isfinite(ref) & torch.isfinite(test)
    return (ref, test) if bool(finite.all()) else (ref[finite], test[finite])


def sqnr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    ref, test = finite_pairs(ref, test)
    noise = (ref - test).pow(2).mean().item()
    signal = ref.pow(2).mean().item()
    if noise == 0:
        return 120.0
    if signal == 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


class _Recorder(Interpreter):
    def __init__(self, gm: GraphModule, names: set[str]):
        super().__init__(gm)
        self.names = names
        self.values: dict[str, torch.Tensor] = {}

    def call_module(self, target, args, kwargs):
        # observers only watch; skipping them keeps the float reference fast and its statistics untouched
        if isinstance(self.fetch_attr(target), ObserverBase):
            return args[0]
        return super().call_module(target, args, kwargs)

    def run_node(self, n: Node):
        out = super().run_node(n)
        if n.name in self.names and isinstance(out, torch.Tensor):
            self.values[n.name] = out.detach()
        return out


def record(gm: GraphModule, names: set[str], inputs: tuple) -> tuple[dict[str, torch.Tensor], object]:
    rec = _Recorder(gm, names)
    with torch.no_grad():
        out = rec.run(*inputs)
    return rec.values, out


def _attr(gm: GraphModule, node) -> torch.Tensor | float | int:
    if isinstance(node, Node) and node.op == "get_attr":
        obj = gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    return node


def _qparams(gm: GraphModule, q: Node) -> tuple[float, int, int, int] | None:
    """(scale, zero_point, qmin, qmax) of a per-tensor quantize/dequantize node."""
    if "per_tensor" not in str(q.target):
        return None
    scale, zp, qmin, qmax = (_attr(gm, a) for a in q.args[1:5])
    return float(scale), int(zp), int(qmin), int(qmax)


def _output_q(node: Node) -> Node | None:
    """The quantize node that quantizes this op's output, looking through one fused ReLU/clip."""
    for user in node.users:
        if is_quant(user):
            return user
    if len(node.users) == 1:
        (user,) = node.users
        if user.op == "call_function" and user.target in _ACTIVATIONS:
            return next((u for u in user.users if is_quant(u)), None)
    return None


_ACTIVATIONS = {
    torch.ops.aten.relu.default,
    torch.ops.aten.relu_.default,
    torch.ops.aten.hardtanh.default,
    torch.ops.aten.hardtanh_.default,
}


def _weight_scales(gm: GraphModule, node: Node) -> torch.Tensor | None:
    if len(node.args) < 2 or not isinstance(node.args[1], Node):
        return None
    w = node.args[1]
    if not is_dequant(w):
        return None
    scales = _attr(gm, w.args[1])
    return (
        scales.detach().float().reshape(-1)
        if isinstance(scales, torch.Tensor)
        else torch.tensor([float(scales)])
    )


def _weight_tensor(gm: GraphModule, node: Node) -> torch.Tensor | None:
    """Float weight values of a conv/linear in the prepared (float) model, for per-channel ranges."""
    if node.target not in CONV_OPS | LINEAR_OPS or len(node.args) < 2:
        return None
    w = node.args[1]
    while isinstance(w, Node) and w.op == "call_module":
        w = w.args[0]
    val = _attr(gm, w)
    return val.detach() if isinstance(val, torch.Tensor) else None


@dataclass
class Analysis:
    layers: list[dict]
    output_sqnr_db: float
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    quantized_outputs: object = None
    float_outputs: object = None


def named_output_leaves(out) -> list[tuple[str, torch.Tensor]]:
    """The output tensors an SQNR is taken over, named by their place in the output ("boxes",
    "output 1"): the floating ones where there are any. Class ids (argmax, top-k indices) beside them
    are not signals: one flipped index read as 21 dB of noise."""
    flat, _ = torch.utils._pytree.tree_flatten_with_path(out)
    leaves = [(_leaf_name(path), t) for path, t in flat if isinstance(t, torch.Tensor)]
    return [(n, t) for n, t in leaves if t.is_floating_point()] or leaves


def _leaf_name(path) -> str:
    name = ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
    return f"output {name}" if name.replace(".", "").isdigit() else name or "output"


def output_leaves(out) -> list[torch.Tensor]:
    return [t for _, t in named_output_leaves(out)]


def each_output_sqnr(float_out, quantized_out) -> dict[str, float]:
    """Each output's own SQNR. The whole-model figure weighs outputs by their energy, so a head with
    small values hides behind a large one, and one ill-conditioned output (a heatmap masked by
    max-pool NMS, where a rounding flips the mask) sinks it for heads that are fine."""
    pairs = zip(named_output_leaves(float_out), output_leaves(quantized_out), strict=False)
    return {name: round(sqnr_db(f, q), 3) for (name, f), q in pairs if f.shape == q.shape}


def flat_outputs(out) -> torch.Tensor:
    leaves = output_leaves(out)
    return torch.cat([t.detach().float().flatten() for t in leaves]) if leaves else torch.zeros(0)


def _sample(t: torch.Tensor, k: int) -> torch.Tensor:
    flat = t.detach().float().flatten()
    return flat[:: max(1, flat.numel() // k)][:k]


@dataclass
class _Accumulator:
    """Per-layer sums over chunks of samples, so memory stays bounded on big models."""

    signal: float = 0.0
    noise: float = 0.0
    compared: bool = False
    values: list = field(default_factory=list)

    def sqnr(self) -> float | None:
        if not self.compared:
            return None
        if self.noise == 0:
            return 120.0
        return float(10 * np.log10(self.signal / self.noise)) if self.signal > 0 else float("-inf")


def _accumulate(converted, float_ref, names, quantized_tensor, inputs, chunk: int) -> dict[str, _Accumulator]:
    ref_names = {n.name for n in float_ref.graph.nodes}
    wanted = (set(names) | set(quantized_tensor.values())) & ref_names
    n = int(inputs[0].shape[0])
    chunks = max(1, -(-n // chunk))
    stats = {name: _Accumulator() for name in names}
    for i in range(0, n, chunk):
        part = tuple(t[i : i + chunk] for t in inputs)
        q_vals, _ = record(converted, set(names), part)
        f_vals, _ = record(float_ref, wanted, part)
        for name, acc in stats.items():
            f, q = f_vals.get(name), q_vals.get(name)
            if f is not None and q is not None and f.shape == q.shape:
                f64, q64 = finite_pairs(f, q)
                acc.signal += float(f64.pow(2).sum())
                acc.noise += float((f64 - q64).pow(2).sum())
                acc.compared = True
            h = f_vals.get(quantized_tensor[name], f)
            if h is not None:
                acc.values.append(_sample(h, HIST_VALUES // chunks))
        del q_vals, f_vals
    return stats


def analyse(
    converted: GraphModule,
    float_ref: GraphModule,
    float_model: torch.nn.Module,
    inputs: tuple,
    keep_float_match,
    chunk: int = ANALYSIS_CHUNK,
) -> Analysis:
    names = layer_names(converted)
    # histograms show the tensor that is really quantized: after a fused ReLU, not before it
    quantized_tensor = {}
    for node in converted.graph.nodes:
        if node.name in names:
            out_q = _output_q(node)
            quantized_tensor[node.name] = out_q.args[0].name if out_q is not None else node.name
    stats = _accumulate(converted, float_ref, names, quantized_tensor, inputs, chunk)
    with torch.no_grad():
        f_out = float_model(*inputs)
        q_out = converted(*inputs)
    tensors: dict[str, np.ndarray] = {}
    ref_nodes = {n.name: n for n in float_ref.graph.nodes}
    layers = []
    for node in converted.graph.nodes:
        if node.name not in names:
            continue
        lname = names[node.name]
        quantized = runs_quantized(node)
        out_q = _output_q(node)
        act = _qparams(converted, out_q) if out_q is not None else None
        w_scales = _weight_scales(converted, node)
        acc = stats[node.name]
        sqnr = acc.sqnr()
        entry = {
            "name": lname,
            "op": op_name(node),
            "module": module_path(node),
            "node": node.name,
            "quantized": quantized,
            "kept_float": (not quantized) and keep_float_match(node),
            "weight_scale": None
            if w_scales is None
            else {
                "min": float(w_scales.min()),
                "max": float(w_scales.max()),
                "channels": int(w_scales.numel()),
            },
            "act_scale": act[0] if act else None,
            "act_zero_point": act[1] if act else None,
            "act_min": act[0] * (act[2] - act[1]) if act else None,
            "act_max": act[0] * (act[3] - act[1]) if act else None,
            "sqnr_db": None if sqnr is None else round(sqnr, 3),
        }
        hist_src = torch.cat(acc.values) if acc.values else torch.zeros(0)
        hist_src = hist_src[torch.isfinite(hist_src)]
        if hist_src.numel():
            lo, hi = float(hist_src.min()), float(hist_src.max())
            if act:
                lo, hi = min(lo, entry["act_min"]), max(hi, entry["act_max"])
            if hi <= lo:
                hi = lo + 1e-6
            counts = torch.histc(hist_src, bins=HIST_BINS, min=lo, max=hi)
            tensors[f"act_hist::{lname}"] = counts.numpy().astype(np.int64)
            tensors[f"act_edges::{lname}"] = np.linspace(lo, hi, HIST_BINS + 1, dtype=np.float32)
        ref_node = ref_nodes.get(node.name)
        w = _weight_tensor(float_ref, ref_node) if ref_node is not None else None
        if w is not None and w.dim() >= 1:
            flat = w.detach().float().reshape(w.shape[0], -1)
            tensors[f"w_min::{lname}"] = flat.min(dim=1).values.numpy().astype(np.float32)
            tensors[f"w_max::{lname}"] = flat.max(dim=1).values.numpy().astype(np.float32)
        layers.append(entry)
    f_flat, q_flat = flat_outputs(f_out), flat_outputs(q_out)
    idx = np.linspace(0, f_flat.numel() - 1, min(4096, f_flat.numel())).astype(np.int64)
    tensors["out_float"] = f_flat.numpy()[idx].astype(np.float32)
    tensors["out_int8"] = q_flat.numpy()[idx].astype(np.float32)
    return Analysis(layers, round(sqnr_db(f_flat, q_flat), 3), tensors, q_out, f_out)


def top1_agreement(f_out, q_out) -> float | None:
    """Share of samples whose arg-max class agrees; None unless the output looks like class scores."""
    if not isinstance(f_out, torch.Tensor) or f_out.dim() != 2 or f_out.shape[1] < 2:
        return None
    q = q_out if isinstance(q_out, torch.Tensor) else torch.as_tensor(q_out)
    return float((f_out.argmax(1) == q.argmax(1)).float().mean())


def parameter_count(module: torch.nn.Module) -> int:
    seen = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen and t.is_floating_point():
            seen.add(id(t))
            total += t.numel()
    return total
