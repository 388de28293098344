"""Pick the activation ranges by what they do to the model's output, not to each tensor alone.

A histogram observer clips each activation where its own L2 error is least; on some models the clipped
tails matter downstream and plain min/max ranges give the better output (SqueezeNet shape: 46.5 vs
46.9 dB). A histogram observer also tracks the true min/max, so one calibration pass yields both
candidates: each is converted and run on the same calibration samples, and the higher output SQNR wins.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch.fx import GraphModule
from torchao.quantization.pt2e import DerivedObserverOrFakeQuantize, HistogramObserver, MinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

from core.engine.analysis import flat_outputs, sqnr_db

EVAL_CHUNK = 8


@dataclass(frozen=True)
class RangeChoice:
    chosen: str  # "histogram" or "minmax"
    output_sqnr_db: dict[str, float]  # candidate -> output SQNR on the evaluation samples
    samples: int

    def describe(self) -> str:
        other = next(k for k in self.output_sqnr_db if k != self.chosen)
        s = self.output_sqnr_db
        return (
            f"activation ranges: {self.chosen} ({s[self.chosen]:.1f} dB output SQNR) kept over "
            f"{other} ({s[other]:.1f} dB) on {self.samples} calibration samples"
        )


def has_histograms(prepared: GraphModule) -> bool:
    return any(isinstance(m, HistogramObserver) for m in prepared.modules())


def minmax_variant(prepared: GraphModule) -> GraphModule:
    """A copy whose histogram observers report the min/max they saw instead of a clipped range."""
    variant = copy.deepcopy(prepared)
    swapped: dict[int, MinMaxObserver] = {}
    # shared ranges are one observer under several names; named_children() would yield it only once
    for name, mod in list(variant._modules.items()):
        if not isinstance(mod, HistogramObserver):
            continue
        if id(mod) not in swapped:
            mm = MinMaxObserver(
                dtype=mod.dtype,
                qscheme=mod.qscheme,
                quant_min=mod.quant_min,
                quant_max=mod.quant_max,
                eps=float(mod.eps),
            )
            mm.min_val, mm.max_val = mod.min_val.clone(), mod.max_val.clone()
            swapped[id(mod)] = mm
        setattr(variant, name, swapped[id(mod)])
    # derived int32-bias observers hold the activation observer itself: point them at the replacement,
    # or the bias scale stops matching input scale x weight scale and ONNX Runtime's kernels misread it
    for mod in variant.modules():
        if isinstance(mod, DerivedObserverOrFakeQuantize):
            mod.obs_or_fqs = [swapped.get(id(o), o) for o in mod.obs_or_fqs]
    return variant


def _outputs(model, inputs: tuple, chunk: int) -> torch.Tensor:
    n = inputs[0].shape[0]
    with torch.no_grad():
        return torch.cat(
            [flat_outputs(model(*(t[i : i + chunk] for t in inputs))) for i in range(0, n, chunk)]
        )


def choose(
    prepared: GraphModule, float_model: GraphModule, inputs: tuple, chunk: int = EVAL_CHUNK
) -> tuple[GraphModule, GraphModule, RangeChoice]:
    """(chosen prepared model, its converted copy, the choice); `prepared` itself is left unconverted."""
    reference = _outputs(float_model, inputs, chunk)
    candidates = {"histogram": prepared, "minmax": minmax_variant(prepared)}
    converted, scores = {}, {}
    for name, model in candidates.items():
        converted[name] = convert_pt2e(copy.deepcopy(model), fold_quantize=True)
        scores[name] = sqnr_db(reference, _outputs(converted[name], inputs, chunk))
    best = max(scores, key=lambda k: (scores[k], k == "histogram"))
    return candidates[best], converted[best], RangeChoice(best, scores, int(inputs[0].shape[0]))
