"""Graph capture with a symbolic batch dimension, and plain-words explanations when capture fails.

Export with batch 1 specialises the batch to 1 and calibration with any other batch then fails a guard,
so capture always uses example inputs of batch >= 2 and `torch.export.Dim` on dimension 0.
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e import move_exported_model_to_eval

from core.engine.loading import LoadedModel, program_module
from core.errors import UserError


@dataclass
class Captured:
    graph_module: GraphModule
    example_inputs: tuple  # batch >= 2 unless the program fixed its batch
    fixed_batch: int | None  # set when the model only accepts one batch size
    warnings: list[str]


def _batch2(inputs: tuple) -> tuple:
    out = []
    for t in inputs:
        if t.dim() == 0:
            raise UserError("a scalar model input has no batch dimension; give inputs shaped (batch, ...)")
        out.append(t if t.shape[0] >= 2 else torch.cat([t, t], dim=0))
    return tuple(out)


def batch_dynamic_shapes(inputs: tuple):
    """Dimension 0 of every input symbolic; its range is whatever the model allows."""
    return tuple({0: torch.export.Dim.DYNAMIC} for _ in inputs)


def _has_symbolic_batch(ep: torch.export.ExportedProgram) -> bool:
    user = {s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and val.dim() and not isinstance(val.shape[0], int):
                return True
    return False


def _batch_sized_groups(ep: torch.export.ExportedProgram) -> bool:
    """A conv whose group count follows the batch (CondConv's per-sample kernels run as one grouped
    conv): torch's ONNX exporter cannot write a symbolic group count, so such a model takes a fixed
    batch."""
    return any(
        n.op == "call_function"
        and "conv" in str(n.target)
        and len(n.args) > 6
        and isinstance(n.args[6], Node)
        for n in ep.graph.nodes
    )


def _export(module, inputs, dynamic_shapes=None):
    """torch.export without the partial graph it prints to stderr on failure; we explain instead."""
    with contextlib.redirect_stderr(io.StringIO()):
        return torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes)


def capture(loaded: LoadedModel) -> Captured:
    cap = _capture(loaded)
    _upcast_half_precision(cap)
    if _training_ops(cap.graph_module):
        # a program exported without model.eval(): dropout would make every output random and BatchNorm
        # would normalise each batch by its own statistics, so neither float nor int8 outputs mean anything
        move_exported_model_to_eval(cap.graph_module)
        if _training_ops(cap.graph_module):
            raise UserError(
                "the model was exported in training mode (dropout or BatchNorm in training behaviour) "
                "and could not be switched to inference: export it again after calling model.eval()"
            )
        cap.warnings.append(
            "the model was exported in training mode (dropout active, BatchNorm normalising by batch "
            "statistics); it was switched to inference behaviour. Export after model.eval() to skip this"
        )
    return cap


HALF = (torch.float16, torch.bfloat16)


def _upcast_half_precision(cap: Captured) -> None:
    """A model kept wholly in float16 or bfloat16 is quantized from a float32 copy.

    int8 Q/DQ ops take float32 only, so its layers would all stay float (and ONNX has no bfloat16
    Conv: the file was invalid). Half values convert to float32 exactly, so the copy computes what
    the model computes, only with fewer rounding errors. Models that mix precisions are left as
    they are: their half layers stay float, with a warning."""
    gm = cap.graph_module
    tensors = [*gm.parameters(), *gm.buffers(), *cap.example_inputs]
    floats = {t.dtype for t in tensors if t.is_floating_point()}
    if not floats or not floats <= set(HALF):
        return
    gm.float()
    inputs = tuple(t.float() if t.is_floating_point() else t for t in cap.example_inputs)
    dynamic = None if cap.fixed_batch else batch_dynamic_shapes(inputs)
    cap.graph_module = program_module(_export(gm, inputs, dynamic))
    cap.example_inputs = inputs
    names = " and ".join(str(d).replace("torch.", "") for d in sorted(floats, key=str))
    cap.warnings.append(
        f"the model computes in {names}; it was quantized from a float32 copy (half values convert "
        "exactly), so the float and int8 files take float32 inputs"
    )


# aten op -> index of its `train`/`training` argument
_TRAINING_ARG = {
    torch.ops.aten.dropout.default: 2,
    torch.ops.aten.feature_dropout.default: 2,
    torch.ops.aten.alpha_dropout.default: 2,
    torch.ops.aten.batch_norm.default: 5,
    torch.ops.aten.native_batch_norm.default: 5,
    torch.ops.aten._native_batch_norm_legit.default: 5,
}


def _training_ops(gm: GraphModule) -> list[str]:
    return [
        n.name
        for n in gm.graph.nodes
        if n.op == "call_function"
        and n.target in _TRAINING_ARG
        and len(n.args) > _TRAINING_ARG[n.target]
        and n.args[_TRAINING_ARG[n.target]] is True
    ]


def _capture(loaded: LoadedModel) -> Captured:
    warnings: list[str] = []
    ep = loaded.exported
    if ep is not None and _has_symbolic_batch(ep) and not _batch_sized_groups(ep):
        return Captured(program_module(ep), _batch2(loaded.example_inputs), None, warnings)

    module = loaded.module
    inputs = _batch2(loaded.example_inputs)
    try:
        ep = _export(module, inputs, batch_dynamic_shapes(inputs))
        if not _has_symbolic_batch(ep):
            raise ValueError("the exported graph specialised the batch dimension")
        if _batch_sized_groups(ep):
            raise ValueError("a conv's group count follows the batch size (per-sample kernels)")
        return Captured(program_module(ep), inputs, None, warnings)
    except Exception as dyn_error:
        # copies: the failed dynamic export marked the batch of the tensors it saw as dynamic, and a
        # program saved at batch 2 or more then failed again on them ("Constraints violated")
        fixed = tuple(t.clone() for t in loaded.example_inputs)
        try:
            gm = program_module(_export(module, tuple(fixed)))
        except Exception as e:
            raise UserError(explain_capture_error(e, loaded.source_file)) from e
        batch = int(fixed[0].shape[0])
        why = (
            "the .pt2 program was exported without a dynamic batch dimension; export it with "
            "dynamic_shapes={0: torch.export.Dim('batch')} per input to accept any batch"
            if loaded.exported is not None and not _has_symbolic_batch(loaded.exported)
            else f"its graph fixes the batch: {_first_line(dyn_error)[:160]}"
        )
        warnings.append(
            f"the model only accepts batch size {batch} ({why}); calibration runs {batch} sample(s) at a time"
        )
        return Captured(gm, tuple(fixed), batch, warnings)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def explain_capture_error(e: BaseException, source_file: str | None) -> str:
    """Say which line or op stopped capture and what to do about it."""
    text = str(e)
    where = _user_frame(e, source_file)
    loc = f" at {where}" if where else ""
    if re.search(r"data.dependent|GuardOnDataDependent|Could not guard on data-dependent", text, re.I):
        return (
            f"cannot capture the model: a branch or shape depends on tensor values{loc}; replace the Python "
            "`if` on a tensor with torch.where or torch.cond, or compute it outside forward()"
        )
    m = re.search(r"(aten::\w+|[\w.]+::\w+)", text)
    if re.search(r"Unsupported|not supported|no fake impl|Could not run", text, re.I):
        op = f" ({m.group(1)})" if m else ""
        return (
            f"cannot capture the model: an operation is not supported by torch.export{op}{loc}; replace it "
            "with standard torch ops, or keep that part outside the model"
        )
    return f"cannot capture the model with torch.export{loc}: {_first_line(e)[:300]}"


def _user_frame(e: BaseException, source_file: str | None) -> str | None:
    frames = traceback.extract_tb(e.__traceback__)
    if source_file:
        mine = [f for f in frames if Path(f.filename) == Path(source_file)]
        if mine:
            f = mine[-1]
            return f"{Path(f.filename).name}:{f.lineno} ({(f.line or '').strip()})"
    m = re.search(r'File "([^"]+)", line (\d+)', str(e))
    if m and "site-packages" not in m.group(1):
        return f"{Path(m.group(1)).name}:{m.group(2)}"
    return None
