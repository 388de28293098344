"""Which layers cost the most accuracy when quantized, and the smallest keep-in-float set for a target.

One calibration, then simulation: the prepared model's observers act as identity except the ones we
switch on, which fake-quantize with their calibrated parameters. For each layer we measure the output
SQNR with only that layer quantized, and the gain from keeping only that layer in float; the ranking
orders by that gain, and Auto keeps layers in float in that order until the target is reached.
That costs one forward pass per evaluation instead of one calibration per layer.
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Interpreter, Node
from torchao.quantization.pt2e import UniformQuantizationObserverBase

from core.engine.analysis import flat_outputs, is_compute, layer_names, sqnr_db
from core.engine.pipeline import Stages, prepare_and_calibrate
from core.jobs.spec import QuantizeOptions
from core.progress import Progress

MAX_AUTO_STEPS = 32
SAMPLES = 32


def _is_observer(gm: GraphModule, node) -> bool:
    return (
        isinstance(node, Node)
        and node.op == "call_module"
        and isinstance(gm.get_submodule(node.target), UniformQuantizationObserverBase)
    )


def layer_observers(gm: GraphModule) -> dict[str, set[str]]:
    """layer name -> observer module names on its inputs, weight and output (through a fused ReLU)."""
    names = layer_names(gm)
    out: dict[str, set[str]] = {}
    for node in gm.graph.nodes:
        if node.name not in names or not is_compute(node):
            continue
        obs = {a.target for a in node.args if _is_observer(gm, a)}
        frontier = [node]
        for _ in range(2):  # the op's own output, or the output of the ReLU fused into it
            nxt = []
            for n in frontier:
                for u in n.users:
                    if _is_observer(gm, u):
                        obs.add(u.target)
                    elif u.op == "call_function" and not is_compute(u) and len(n.users) == 1:
                        nxt.append(u)
            frontier = nxt
        if obs:
            out[names[node.name]] = obs
    return out


class _Simulator(Interpreter):
    def __init__(self, gm: GraphModule):
        super().__init__(gm)
        self.active: set[str] = set()
        self.qparams: dict[str, tuple] = {}

    def _params(self, target: str, obs):
        if target not in self.qparams:
            scale, zp = obs.calculate_qparams()
            self.qparams[target] = (scale.float(), zp.int())
        return self.qparams[target]

    def call_module(self, target, args, kwargs):
        obs = self.fetch_attr(target)
        if not isinstance(obs, UniformQuantizationObserverBase):
            return super().call_module(target, args, kwargs)
        x = args[0]
        if target not in self.active:
            return x
        scale, zp = self._params(target, obs)
        qmin, qmax = int(obs.quant_min), int(obs.quant_max)
        if scale.numel() > 1:
            return torch.fake_quantize_per_channel_affine(x, scale, zp, int(obs.ch_axis), qmin, qmax)
        return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), qmin, qmax)

    def output_sqnr(self, inputs, reference: torch.Tensor, active: set[str]) -> float:
        self.active = active
        with torch.no_grad():
            out = self.run(*inputs)
        return round(sqnr_db(reference, flat_outputs(out)), 3)


def sensitivity(opts: QuantizeOptions, target_sqnr_db: float, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    stages = Stages(
        progress,
        opts.qat_epochs,
        stages=(*("load", "capture", "prepare", "calibrate"), "rank"),
        weights=(0.05, 0.1, 0.05, 0.4, 0.4),
    )
    cal = prepare_and_calibrate(opts, stages)
    p = stages.enter(4)
    gm = cal.prepared
    inputs = cal.calib.take(min(SAMPLES, len(cal.calib)))
    sim = _Simulator(gm)
    reference = flat_outputs(sim.run(*inputs))  # nothing active: the float (BN-folded) model
    per_layer = layer_observers(gm)
    everything = set().union(*per_layer.values()) if per_layer else set()
    baseline = sim.output_sqnr(inputs, reference, everything)
    ranking = []
    for i, (layer, obs) in enumerate(per_layer.items()):
        alone = sim.output_sqnr(inputs, reference, obs)
        without = sim.output_sqnr(inputs, reference, everything - obs)
        ranking.append({"layer": layer, "sqnr_db": alone, "gain_db": round(without - baseline, 3)})
        p(0.7 * (i + 1) / len(per_layer), f"ranked {i + 1}/{len(per_layer)} layers")
    # most output SQNR won back by keeping the layer in float first; ties go to the worse layer alone
    ranking.sort(key=lambda r: (-r["gain_db"], r["sqnr_db"]))

    kept: list[str] = []
    current = baseline
    for step, entry in enumerate(ranking[:MAX_AUTO_STEPS]):
        if current >= target_sqnr_db:
            break
        kept.append(entry["layer"])
        off = set().union(*(per_layer[k] for k in kept))
        current = sim.output_sqnr(inputs, reference, everything - off)
        p(0.7 + 0.3 * (step + 1) / min(len(ranking), MAX_AUTO_STEPS), f"trying {len(kept)} layer(s) in float")
    stages.finish()
    return {
        "baseline_sqnr_db": baseline,
        "target_sqnr_db": target_sqnr_db,
        "ranking": ranking,
        "auto_keep_float": kept,
        "auto_sqnr_db": current,
        "reached": current >= target_sqnr_db,
        "warnings": cal.warnings,
    }
