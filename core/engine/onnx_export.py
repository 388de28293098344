"""ONNX export of the float and converted models, validation in onnxruntime, and the latency check.

The converted graph already holds Q/DQ in the places ONNX Runtime fuses (see quantizers.py), so the
dynamo exporter's QuantizeLinear/DequantizeLinear output is a standard QDQ model; `finalize` only
tidies it (no training-mode leftovers, a readable producer) and `diagnose_unfused` proves the fusion.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import io
import random
import re
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.fx import GraphModule, Node

from core.engine import onnx_passes
from core.engine.quantizers import float_is_faster
from core.errors import UserError

OPSET = 20
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
NO_ONNX = (
    "command line: --no-onnx; in the window: Preset, Advanced options, untick 'Write the int8 ONNX file'"
)
SCOPE_KEY = "pkg.torch.onnx.name_scopes"
INTEGER_OPS = {
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "QLinearAdd",
    "QLinearMul",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearConcat",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearSoftmax",
    "QLinearReduceMean",
    "QAttention",
}
FLOAT, FLOAT_TYPES = (
    onnx.TensorProto.FLOAT,
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16},
)
FLOAT_COMPUTE = {"Conv", "Gemm", "MatMul", "Add", "Sum", "Mul", "ConvTranspose"}
TOKEN_NORMS = {
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
}


def _dynamic_translations() -> dict:
    """ONNX for the dynamic-quantization ops torch's exporter cannot translate (choose_qparams)."""
    from onnxscript import opset18 as op

    qd = torch.ops.quantized_decomposed
    f32, f64, u8, i64 = (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.INT64,
    )

    def choose_qparams(input, quant_min, quant_max, eps, dtype):
        _, scale, zero_point = op.DynamicQuantizeLinear(input)
        axis0 = op.Constant(value_ints=[0])  # torch declares both as shape (1,), ONNX gives scalars
        return op.Unsqueeze(op.Cast(scale, to=f64), axis0), op.Unsqueeze(op.Cast(zero_point, to=i64), axis0)

    def quantize(input, scale, zero_point, quant_min, quant_max, dtype):
        return op.QuantizeLinear(
            input, op.Squeeze(op.Cast(scale, to=f32)), op.Squeeze(op.Cast(zero_point, to=u8))
        )

    def dequantize(input, scale, zero_point, quant_min, quant_max, dtype, out_dtype=-1):
        return op.DequantizeLinear(
            input, op.Squeeze(op.Cast(scale, to=f32)), op.Squeeze(op.Cast(zero_point, to=u8))
        )

    return {
        qd.choose_qparams.tensor: choose_qparams,
        qd.quantize_per_tensor.tensor: quantize,
        qd.dequantize_per_tensor.tensor: dequantize,
    }


def first_complex_value(gm: GraphModule) -> Node | None:
    """The first op that makes a complex tensor: the exporter fails on them only after calibration."""
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.is_complex():
            return node
    return None


def float_export_failure(cap, input_names) -> str | None:
    """Why the float model does not export, or None. Tried before calibration for models with complex
    values: rfft, a complex product and irfft export (as DFT), slice or select writes into a complex
    tensor fail, and the int8 export would only find out after calibration."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(tmp) / "float.onnx"
            export_onnx(cap.graph_module, cap.example_inputs, path, cap.fixed_batch is None, input_names)
        except UserError as e:
            return _why(e.__cause__) if e.__cause__ is not None else str(e)
    return None


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple,
    path: Path,
    dynamic_batch: bool,
    input_names,
    space_to_depth_stems: bool = False,
    integer_pads: bool = False,
) -> None:
    """torch.onnx dynamo export with a symbolic batch; prints of the exporter are kept off the console.

    `space_to_depth_stems` rewrites stride-2 int8 convs over a few channels; `integer_pads` pads uint8
    tensors directly or folds zero pads into the convs that read them. Both for ONNX Runtime's CPU
    kernels (see onnx_passes); the results stay bit for bit the same.
    """
    from core.engine.capture import batch_dynamic_shapes

    dyn = batch_dynamic_shapes(example_inputs) if dynamic_batch else None
    sink = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
            _without_slice_split_rule(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                tuple(example_inputs),
                dynamo=True,
                dynamic_shapes=dyn,
                opset_version=OPSET,
                input_names=list(input_names),
                verbose=False,
                optimize=True,
                custom_translation_table=_dynamic_translations(),
            )
        model = program.model_proto
    except Exception as e:
        raise UserError(
            f"ONNX export failed: {_why(e)}. For an int8 .pt2 without ONNX, quantize again without ONNX "
            f"export ({NO_ONNX})"
        ) from e
    onnx_passes.distinct_output_names(model)
    onnx_passes.same_type_casts(model)
    onnx_passes.reduce_mean_to_global_pool(model)
    onnx_passes.fold_scaling_muls(model)
    if space_to_depth_stems:
        onnx_passes.space_to_depth_stems(model)
    if integer_pads:
        onnx_passes.pads_on_integers(model)
        onnx_passes.pads_into_convs(model)
        onnx_passes.sums_before_norms(model)
        onnx_passes.fast_softplus(model)
    _strip_debug_metadata(model)
    model.producer_name = "qdq-studio"
    onnx.save_model(model, str(path))


def _why(error: BaseException) -> str:
    """The exporter's failed step and, from the end of the cause chain, what failed inside it."""
    lines = []
    while error is not None:
        text = ANSI_CODES.sub("", str(error)).strip()  # the exporter colours its step names for a terminal
        first = text.splitlines()[0].split(" Next steps:")[0][:300] if text else type(error).__name__
        lines.append(first)
        error = error.__cause__
    return lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1]})"


@contextlib.contextmanager
def _without_slice_split_rule():
    """Leave onnxscript's SlicesSplit rewrite out of the exporter's optimisation.

    Its pattern ends in two nodes, and onnxscript's matcher then indexes the whole graph again for
    every Slice it tries: quadratic. Exporting a 16-step unrolled SRU took 303 s, 185 of them in that
    rule. It never applies to torch's exports anyway: it wants the second slice to end at the
    dimension, where torch writes INT64_MAX. The rule list is onnxscript's private default; without
    it, the export runs as before.
    """
    try:
        from onnxscript import rewriter
        from onnxscript.rewriter.rules.common import slice_split_rule

        rules = rewriter._DEFAULT_REWRITE_RULES
    except (ImportError, AttributeError):
        yield
        return
    rewriter._DEFAULT_REWRITE_RULES = tuple(r for r in rules if r is not slice_split_rule)
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = rules


def _strip_debug_metadata(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node stack traces and FX dumps (they can outweigh a small model's int8
    weights); keep the module scope, which the unfused-op diagnosis maps back to torch layers."""
    for n in model.graph.node:
        keep = [(p.key, p.value) for p in n.metadata_props if p.key == SCOPE_KEY]
        del n.metadata_props[:]
        for key, value in keep:
            n.metadata_props.add(key=key, value=value)


def check(path: Path) -> str:
    onnx.checker.check_model(str(path), full_check=True)
    return "ok"


def session(path: Path, threads: int = 2, optimized_path: Path | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # Spinning pool threads of one session keep both cores busy while the next session runs: timings
    # of models compared in one process then measure each other's spin (blocks swung 1.7 -> 7 ms).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path is not None:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, inputs: tuple) -> list[np.ndarray]:
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)


def latency_blocks(
    sessions: dict[str, ort.InferenceSession],
    feeds: dict[str, dict],
    budget_s: float = 1.5,
    block: int = 5,
    min_rounds: int = 3,
    max_rounds: int = 50,
) -> dict[str, list[float]]:
    """Median latency of each block of `block` runs per session, sessions in a shuffled order per round.

    A deployed model runs with its own weights in cache; alternating single runs of two models times
    cache refills instead (a float ResNet-18 alone is 45 MB), which flatters whichever runs second.
    """
    blocks: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions)
    shuffle = random.Random(0).shuffle
    deadline = time.monotonic() + budget_s
    rounds = 0
    while rounds < min_rounds or (time.monotonic() < deadline and rounds < max_rounds):
        shuffle(order)
        for k in order:
            s = sessions[k]
            s.run(None, feeds[k])  # warm this model's weights into cache
            t = []
            for _ in range(block):
                t0 = time.perf_counter()
                s.run(None, feeds[k])
                t.append((time.perf_counter() - t0) * 1000)
            blocks[k].append(statistics.median(t))
        rounds += 1
    return blocks


def latency_ms(
    sessions: dict[str, ort.InferenceSession], inputs: tuple, budget_s: float = 1.5
) -> dict[str, float]:
    """Median batch-1 latency of each session (see `latency_blocks`); a file whose batch is fixed
    runs at that batch."""
    feeds = {
        k: {i.name: t[: _fixed_rows(i)].detach().cpu().numpy() for i, t in zip(s.get_inputs(), inputs)}
        for k, s in sessions.items()
    }
    return {k: statistics.median(v) for k, v in latency_blocks(sessions, feeds, budget_s).items()}


def _fixed_rows(arg: ort.NodeArg) -> int:
    rows = arg.shape[0] if arg.shape else None
    return rows if isinstance(rows, int) else 1


def _torch_scopes(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """ONNX node name -> (module path, FX node name), from the exporter's name_scopes metadata."""
    out = {}
    for n in model.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        scopes = meta.get(SCOPE_KEY)
        if not scopes:
            continue
        try:
            parts = [str(x) for x in ast.literal_eval(scopes) if x]
        except (ValueError, SyntaxError):
            continue
        if parts:  # cumulative paths: ['', 'enc', 'enc.self_attn', 'linear']
            out[n.name] = (parts[-2] if len(parts) > 1 else "", parts[-1])
    return out


def diagnose_unfused(path: Path, work_dir: Path, keep_float: tuple[str, ...] = ()) -> tuple[list[dict], dict]:
    """Ops that still run in float after onnxruntime's graph optimisation, each with a reason."""
    scopes = _torch_scopes(onnx.load(str(path), load_external_data=False))
    opt = work_dir / ".optimized.onnx"
    try:
        session(path, optimized_path=opt)
        model = onnx.load(str(opt))
    finally:
        opt.unlink(missing_ok=True)
    model = onnx.shape_inference.infer_shapes(model)
    elem = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers = onnx_passes.readers_of(model.graph)
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    downstream = _float_reach(model.graph.node, "DequantizeLinear", producers, consumers, forward=True)
    upstream = _float_reach(model.graph.node, "QuantizeLinear", producers, consumers, forward=False)
    residual = _residual_sums(model, producers, consumers)
    unfused = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type in INTEGER_OPS:
            continue
        if any(elem.get(o, FLOAT) not in FLOAT_TYPES for o in n.output):
            continue  # shape arithmetic on int64, not model compute
        from_dq, to_q = n.name in downstream, n.name in upstream
        if n.op_type not in FLOAT_COMPUTE and not (from_dq and to_q):
            continue
        module, fx_name = scopes.get(n.name, ("", ""))
        if any(fnmatch.fnmatchcase(x, pat) for pat in keep_float for x in (module, fx_name) if x):
            reason = "kept in float (your keep-in-float list)"
        elif n.name in residual:
            reason = (
                "a transformer's residual sum, float on purpose: the norm after it runs in float anyway, "
                "and 8 bits there cost accuracy"
            )
        elif n.op_type == "Add" and any(
            producers.get(i) is not None and producers[i].op_type == "MatMulIntegerToFloat" for i in n.input
        ):
            reason = (
                "bias of a Linear on 3-D input: the MatMul runs as an integer kernel, this bias Add in float"
            )
        elif (
            n.op_type in ("Gemm", "MatMul") and (shape := _linear_shape(model, n)) and float_is_faster(*shape)
        ):
            reason = (
                f"a linear from {shape[0]} inputs to {shape[1]} outputs, float on purpose: ONNX Runtime's "
                "int8 kernel is slower there"
            )
        elif n.op_type in FLOAT_COMPUTE and not from_dq:
            reason = "its inputs are not quantized, so it runs as a float kernel"
        elif n.op_type in FLOAT_COMPUTE and not to_q:
            reason = "its output is not re-quantized, so the runtime keeps the float kernel"
        elif n.op_type in FLOAT_COMPUTE:
            reason = "the Q/DQ pattern around it is not one the runtime fuses"
        else:
            reason = f"ONNX Runtime has no integer kernel for {n.op_type} here; it runs in float between dequantize and quantize"
        unfused.append({"op": n.op_type, "name": n.name, "module": module, "node": fx_name, "reason": reason})
    return unfused, counts


def _linear_shape(model: onnx.ModelProto, node) -> tuple[int, int] | None:
    """(inputs, outputs) of a Gemm or MatMul with a constant 2-D weight."""
    w = onnx_passes._constant(model, node.input[1]) if len(node.input) > 1 else None
    if w is None or w.ndim != 2:
        return None
    k, n = w.shape
    return (int(n), int(k)) if any(a.name == "transB" and a.i for a in node.attribute) else (int(k), int(n))


def _squares(model: onnx.ModelProto, node) -> bool:
    """x ** 2 (an RMSNorm written out), not the ** 0.75 of a LocalResponseNorm's (k + a * s)."""
    e = onnx_passes._constant(model, node.input[1]) if node.op_type == "Pow" else None
    return e is not None and e.size == 1 and float(e.reshape(-1)[0]) == 2.0


def _residual_sums(model: onnx.ModelProto, producers, consumers) -> set[str]:
    """Adds a LayerNorm or RMSNorm reads (also written out), and the sums that add onto them (see
    quantizers._residual_stream)."""
    out: set[str] = set()
    for n in model.graph.node:
        users = [c for o in n.output for c in consumers.get(o, [])]
        if n.op_type in ("Add", "Sum") and (  # Sum: onnx_passes.sums_before_norms
            _normalised_later(model, users, consumers, producers)
            or any(i in producers and producers[i].name in out for i in n.input)
        ):
            out.add(n.name)
    return out


TOKEN_MOVES = {
    "Reshape",
    "Transpose",
    "Slice",
    "Gather",
    "Concat",
    "Squeeze",
    "Unsqueeze",
    "Split",
    "Flatten",
}


def _normalised_later(
    model: onnx.ModelProto, users, consumers, producers, depth: int = 12, seen: set | None = None
) -> bool:
    """A norm reads these users' input, also through row moves and adds of a constant table (see
    quantizers._normalised_later)."""
    readers = {c.op_type for c in users}
    if readers & TOKEN_NORMS or any(_squares(model, c) for c in users) or {"ReduceMean", "Sub"} <= readers:
        return True
    seen = set() if seen is None else seen
    for c in users:
        if depth <= 0 or id(c) in seen:
            continue
        seen.add(id(c))
        after = [d for o in c.output for d in consumers.get(o, [])]
        moves = c.op_type in TOKEN_MOVES or c.op_type == "Add" and any(i not in producers for i in c.input)
        if moves and _normalised_later(model, after, consumers, producers, depth - 1, seen):
            return True
    return False


def _float_reach(nodes, start_op: str, producers, consumers, forward: bool) -> set[str]:
    """Names of nodes reached from `start_op` nodes through float ops (not crossing Q or DQ)."""
    seen: set[str] = set()
    stack = [n for n in nodes if n.op_type == start_op]
    while stack:
        n = stack.pop()
        nxt = (
            [c for o in n.output for c in consumers.get(o, [])]
            if forward
            else [producers[i] for i in n.input if i in producers]
        )
        for m in nxt:
            if m.op_type in ("QuantizeLinear", "DequantizeLinear") or m.name in seen:
                continue
            seen.add(m.name)
            stack.append(m)
    return seen


def parity_sqnr(sess: ort.InferenceSession, inputs: tuple, reference) -> float:
    from core.engine.analysis import flat_outputs, sqnr_db

    outs = [np.asarray(o) for o in run(sess, inputs)]
    outs = [o for o in outs if o.dtype.kind == "f"] or outs  # as analysis.output_leaves picks them
    got = torch.cat([torch.from_numpy(o).float().flatten() for o in outs])
    return round(sqnr_db(flat_outputs(reference), got), 3)


def file_size(path: Path) -> int:
    return Path(path).stat().st_size
