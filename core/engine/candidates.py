"""Candidate quantizations of one calibrated model, kept by what they do to the model's output.

A histogram observer clips each activation where its own L2 error is least; on some models the clipped
tails matter downstream and plain min/max ranges give the better output (SqueezeNet shape: 46.5 vs
46.9 dB). A histogram observer also tracks the true min/max, so one calibration pass yields both.
Histogram ranges are kept where they win sample by sample (`_clearly_better`), min/max ranges, which
onnxruntime's quantizer uses, otherwise. The kept ranges then get a third try with bias correction: each conv/linear bias absorbs the mean
per-channel error its output shows on the samples (DarkNet shape: 39.3 -> 40.1 dB), and is kept only
if the output SQNR rises by BIAS_MARGIN_DB (on MobileNet-V2 it falls 0.1 dB and is dropped) and the
samples agree (`_clearly_better`). Given enough samples the choice is made on a half of them the
candidates were not calibrated on (see `choose`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e import (
    HistogramObserver,
    MinMaxObserver,
    ObserverBase,
)

from core.engine.analysis import ANALYSIS_CHUNK, flat_outputs, output_leaves, record, sqnr_db
from core.engine.quantizers import CONV_OPS, LINEAR_OPS, convert, replace_observers

EVAL_CHUNK = 8
BIAS = "+bias-correction"
# a smaller gain is within what a few held-out samples can tell apart: a pooling model kept a
# correction for +0.08 dB there and lost 1.2 dB on new inputs (DarkNet gains 0.8 dB)
BIAS_MARGIN_DB = 0.2


@dataclass(frozen=True)
class Choice:
    ranges: str  # "histogram" or "minmax"
    bias_corrected: bool
    output_sqnr_db: dict[str, float]  # candidate -> output SQNR on the evaluation samples
    samples: int
    held_out: bool = False  # evaluated on samples the candidates were not calibrated on

    @property
    def chosen(self) -> str:
        return self.ranges + (BIAS if self.bias_corrected else "")

    def describe(self) -> str:
        def words(key: str) -> str:
            ranges = key.removesuffix(BIAS)
            return {"histogram": "histogram ranges", "minmax": "min/max ranges"}[ranges] + (
                " + bias correction" if key.endswith(BIAS) else ""
            )

        s = self.output_sqnr_db
        others = ", ".join(f"{words(k)} {v:.1f} dB" for k, v in s.items() if k != self.chosen)
        return (
            f"compared {len(s)} ways to quantize "
            + (
                f"(calibrated on half the samples, scored on {self.samples} of the other half)"
                if self.held_out
                else f"on {self.samples} calibration samples"
            )
            + ": kept "
            f"{words(self.chosen)} ({s[self.chosen]:.1f} dB output SQNR; {others})"
        )


def has_histograms(prepared: GraphModule) -> bool:
    return any(isinstance(m, HistogramObserver) for m in prepared.modules())


def minmax_variant(prepared: GraphModule) -> GraphModule:
    """A copy whose histogram observers report the min/max they saw instead of a clipped range."""
    variant = copy.deepcopy(prepared)
    swapped: dict[int, MinMaxObserver] = {}
    for mod in variant._modules.values():
        if isinstance(mod, HistogramObserver) and id(mod) not in swapped:
            mm = MinMaxObserver(
                dtype=mod.dtype,
                qscheme=mod.qscheme,
                quant_min=mod.quant_min,
                quant_max=mod.quant_max,
                eps=float(mod.eps),
            )
            mm.min_val, mm.max_val = mod.min_val.clone(), mod.max_val.clone()
            swapped[id(mod)] = mm
    replace_observers(variant, swapped)
    return variant


def bias_tensor(gm: GraphModule, node: Node) -> torch.Tensor | None:
    """The float bias parameter behind a conv/linear's bias input (past its observer), if any."""
    b = node.args[2] if len(node.args) > 2 else None
    while (
        isinstance(b, Node) and b.op == "call_module" and isinstance(gm.get_submodule(b.target), ObserverBase)
    ):
        b = b.args[0]
    if not isinstance(b, Node) or b.op != "get_attr":
        return None
    obj = gm
    for part in b.target.split("."):
        obj = getattr(obj, part)
    return obj if isinstance(obj, torch.Tensor) else None


def bias_corrected(
    prepared: GraphModule, converted: GraphModule, inputs: tuple, chunk: int
) -> GraphModule | None:
    """A copy of `prepared` whose biases absorb the mean per-channel output error of `converted`.

    Each channel's mean is shrunk by how well the samples pin it down (`shrunk_mean`): a conv's error
    averaged over its pixels is stable and kept nearly whole; a classifier's Linear sees one value per
    sample, and on 8 samples its full correction fitted their noise.
    """
    weighted = [
        n.name for n in prepared.graph.nodes if n.op == "call_function" and n.target in CONV_OPS | LINEAR_OPS
    ]
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for i in range(0, inputs[0].shape[0], chunk):
        part = tuple(t[i : i + chunk] for t in inputs)
        ref, _ = record(prepared, set(weighted), part)
        got, _ = record(converted, set(weighted), part)
        for name in weighted:
            if name in ref and name in got and ref[name].shape == got[name].shape and ref[name].dim() > 1:
                err = (got[name] - ref[name]).double()
                axis = 1 if err.dim() > 2 else err.dim() - 1  # channels: NC... for convs, last for linear
                spread = [d for d in range(1, err.dim()) if d != axis]
                per_sample = err.mean(spread) if spread else err  # mean([]) would average everything
                sums[name] = sums.get(name, 0) + per_sample.sum(0)
                squares[name] = squares.get(name, 0) + (per_sample**2).sum(0)
                counts[name] = counts.get(name, 0) + err.shape[0]
    fixed = copy.deepcopy(prepared)
    done: set[int] = set()
    for node in fixed.graph.nodes:
        if node.name not in sums or counts[node.name] < 2:
            continue
        bias = bias_tensor(fixed, node)
        if bias is None or id(bias) in done or bias.shape != sums[node.name].shape:
            continue  # no bias to move, or one shared by two calls of a module
        with torch.no_grad():
            bias -= shrunk_mean(sums[node.name], squares[node.name], counts[node.name]).to(bias.dtype)
        done.add(id(bias))
    return fixed if done else None


def shrunk_mean(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
    """Per-channel means of n per-sample values (given their sums and sums of squares), each shrunk
    towards 0 by tau^2 / (tau^2 + se^2): se^2 its own squared standard error, tau^2 how far the true
    means spread over the channels (the mean square of the means less that of the se^2)."""
    mean = total / n
    se2 = (squares - n * mean**2).clamp(min=0) / (n - 1) / n
    tau2 = (mean.pow(2).mean() - se2.mean()).clamp(min=0)
    return mean * tau2 / (tau2 + se2).clamp(min=1e-30)


def _outputs(model, inputs: tuple, chunk: int) -> list[torch.Tensor]:
    """The model's outputs chunk by chunk, a row per sample (one row per chunk where an output has no
    batch axis)."""
    rows = []
    with torch.no_grad():
        for i in range(0, inputs[0].shape[0], chunk):
            part = tuple(t[i : i + chunk] for t in inputs)
            out = model(*part)
            b = part[0].shape[0]
            leaves = output_leaves(out)
            if leaves and all(t.dim() and t.shape[0] == b for t in leaves):
                rows.append(torch.cat([t.detach().float().reshape(b, -1) for t in leaves], 1))
            else:
                rows.append(flat_outputs(out).reshape(1, -1))
    return rows


def _clearly_better(errors: torch.Tensor, than: torch.Tensor) -> bool:
    """Lower squared error sample by sample, by more than twice the standard error of the mean gain:
    a classifier's 10 logits on 8 held-out samples scored a bias correction +0.7 dB that lost 0.8 dB on
    64 new inputs."""
    gain = (than - errors).double()
    return gain.numel() > 1 and bool(gain.mean() > 2 * gain.std() / gain.numel() ** 0.5)


def choose(
    prepared: GraphModule,
    float_model: GraphModule,
    inputs: tuple,
    fixed_batch: int | None = None,
    half: tuple[GraphModule, tuple, tuple] | None = None,
) -> tuple[GraphModule, GraphModule, Choice]:
    """(chosen prepared model, its converted copy, the choice); `prepared` itself is left unconverted.

    `half` is (the model calibrated on the first half of the samples, some of that half, some of the
    other half). Then the choice is judged on samples its ranges and bias correction never saw, and
    applied to `prepared`: judged on their own samples, histogram ranges and bias correction fit those
    very samples, and with 8 calibration samples they won by up to 0.7 dB there and lost 1-3 dB on
    new inputs. A fixed-batch model runs in its own batch size; others in small chunks, which bound the
    memory of recording every conv output for the bias correction.
    """
    chunk = fixed_batch or EVAL_CHUNK
    bc_chunk = fixed_batch or ANALYSIS_CHUNK
    judged, fit, scored = half or (prepared, inputs, inputs)
    reference = _outputs(float_model, scored, chunk)
    flat_reference = torch.cat([r.flatten() for r in reference])
    errors: dict[str, torch.Tensor] = {}

    def score(name: str, model):
        converted[name] = convert(copy.deepcopy(model))
        got = _outputs(converted[name], scored, chunk)
        errors[name] = torch.cat([(g - r).pow(2).sum(1) for g, r in zip(got, reference)])
        scores[name] = sqnr_db(flat_reference, torch.cat([g.flatten() for g in got]))

    candidates = {"histogram": judged, "minmax": minmax_variant(judged)}
    converted, scores = {}, {}
    for name, model in candidates.items():
        score(name, model)
    # histogram ranges fit the samples they saw; min/max ranges, which onnxruntime's quantizer uses,
    # unless the held-out samples clearly say otherwise (a dilated depthwise net: histogram +0.16 dB
    # on 8 of them, -0.8 dB on 64 new inputs)
    clear = scores["histogram"] > scores["minmax"] and _clearly_better(errors["histogram"], errors["minmax"])
    ranges = "histogram" if clear else "minmax"
    corrected = False
    fixed = bias_corrected(candidates[ranges], converted[ranges], fit, bc_chunk)
    if fixed is not None:
        score(ranges + BIAS, fixed)
        corrected = scores[ranges + BIAS] > scores[ranges] + BIAS_MARGIN_DB and _clearly_better(
            errors[ranges + BIAS], errors[ranges]
        )
    choice = Choice(ranges, corrected, scores, int(scored[0].shape[0]), held_out=half is not None)
    if half is None:
        key = choice.chosen
        return (fixed if corrected else candidates[ranges]), converted[key], choice
    final = prepared if ranges == "histogram" else minmax_variant(prepared)
    final_converted = convert(copy.deepcopy(final))
    if corrected and (fixed := bias_corrected(final, final_converted, inputs, bc_chunk)) is not None:
        final, final_converted = fixed, convert(copy.deepcopy(fixed))
    return final, final_converted, choice
