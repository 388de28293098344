"""Candidate quantizations kept by output SQNR: each candidate must be what it claims to be."""

from __future__ import annotations

import copy

import pytest
import torch
from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from core.engine import candidates, graph_passes
from core.engine.analysis import record, sqnr_db
from core.engine.quantizers import QuantizerOptions, build_quantizer
from tests import models


def _prepared(observer: str, x: torch.Tensor, name: str = "residual_add"):
    model, _ = models.build(name)
    ep = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch", max=64)},))
    gm = ep.module()
    graph_passes.prepare_graph(gm, own_annotator=True)
    prepared = prepare_pt2e(gm, build_quantizer(QuantizerOptions("onnxruntime", observer=observer), gm))
    with torch.no_grad():
        for i in range(0, len(x), 8):
            prepared(x[i : i + 8])
    return ep.module(), prepared


def _qparams(converted) -> list[tuple[float, int]]:
    """(scale, zero point) of every activation quantize op, in graph order."""
    out = []
    for n in converted.graph.nodes:
        if (
            n.op == "call_function"
            and "quantize_per_tensor" in str(n.target)
            and "dequantize" not in str(n.target)
        ):
            out.append((float(n.args[1]), int(n.args[2])))
    return out


def _bias_scales_match(converted) -> bool:
    """Every int32 bias is dequantized with input scale x weight scale (what ONNX Runtime assumes)."""
    checked = 0
    for n in converted.graph.nodes:
        if n.op != "call_function" or n.target is not torch.ops.aten.conv2d.default or len(n.args) < 3:
            continue
        x_dq, w_dq, b_dq = n.args[:3]
        x_scale = float(x_dq.args[1])
        w_scale = getattr(converted, w_dq.args[1].target)
        b_scale = getattr(converted, b_dq.args[1].target)
        assert torch.allclose(b_scale.float(), (x_scale * w_scale).float(), rtol=1e-5), n.name
        checked += 1
    return checked > 0


# concat and max-pool share one observer among several edges (one module under several names)
@pytest.mark.parametrize(("name", "shape"), [("residual_add", (8, 16, 16)), ("concat", (3, 16, 16))])
def test_minmax_variant_equals_a_minmax_calibration(name, shape):
    x = torch.randn(32, *shape) * 3
    _, hist = _prepared("histogram", x, name)
    _, mm = _prepared("minmax", x, name)
    variant = candidates.minmax_variant(hist)
    assert any(isinstance(m, HistogramObserver) for m in hist.modules())  # the original is untouched
    assert not any(isinstance(m, HistogramObserver) for m in variant.modules())
    assert any(isinstance(m, MinMaxObserver) for m in variant.modules())
    got = _qparams(convert_pt2e(copy.deepcopy(variant), fold_quantize=True))
    want = _qparams(convert_pt2e(copy.deepcopy(mm), fold_quantize=True))
    assert len(got) == len(want) > 0
    for (s1, z1), (s2, z2) in zip(got, want):
        assert abs(s1 - s2) <= 1e-6 * s2 and z1 == z2
    # the histogram's clipped ranges really differ, or the choice would be between two equal models
    assert _qparams(convert_pt2e(copy.deepcopy(hist), fold_quantize=True)) != want


def _check_rule(choice) -> None:
    """The better ranges win; bias correction only by more than the margin."""
    s = choice.output_sqnr_db
    assert s[choice.ranges] == max(s["histogram"], s["minmax"])
    corrected = s.get(choice.ranges + candidates.BIAS)
    assert choice.bias_corrected == (
        corrected is not None and corrected > s[choice.ranges] + candidates.BIAS_MARGIN_DB
    )


def test_choice_keeps_the_better_candidate_with_consistent_bias_scales():
    x = torch.randn(32, 8, 16, 16)
    x[0, 0, 0, 0] = 40.0  # one outlier: the histogram clips it, min/max keeps it
    float_model, prepared = _prepared("histogram", x)
    chosen, converted, choice = candidates.choose(prepared, float_model, (x,))
    ranges = {"histogram", "minmax"}
    assert ranges <= set(choice.output_sqnr_db) <= ranges | {f"{choice.ranges}{candidates.BIAS}"}
    assert choice.samples == 32
    _check_rule(choice)
    # the converted model returned is the chosen one, and it reproduces the reported SQNR
    with torch.no_grad():
        measured = sqnr_db(float_model(x), converted(x))
    assert abs(measured - choice.output_sqnr_db[choice.chosen]) < 0.01
    assert _bias_scales_match(converted)
    assert (chosen is prepared) == (choice.chosen == "histogram")
    assert f"kept {'min/max' if choice.ranges == 'minmax' else 'histogram'} ranges" in choice.describe()
    assert f"({choice.output_sqnr_db[choice.chosen]:.1f} dB output SQNR" in choice.describe()


def _mean_channel_error(prepared, converted, x, name) -> torch.Tensor:
    ref, _ = record(prepared, {name}, (x,))
    got, _ = record(converted, {name}, (x,))
    return (got[name] - ref[name]).mean((0, 2, 3)).abs()


def test_bias_correction_removes_the_mean_output_error():
    # inputs off zero: each conv channel's weight rounding error, times their mean, shifts every
    # sample's output alike (a systematic error, which the correction keeps whole)
    x = torch.randn(32, 8, 16, 16) + 2
    _, prepared = _prepared("minmax", x)
    converted = convert_pt2e(copy.deepcopy(prepared), fold_quantize=True)
    fixed = candidates.bias_corrected(prepared, converted, (x,), chunk=4)
    assert fixed is not None and fixed is not prepared
    fixed_converted = convert_pt2e(copy.deepcopy(fixed), fold_quantize=True)
    first = next(n.name for n in prepared.graph.nodes if n.target is torch.ops.aten.conv2d.default)
    before = _mean_channel_error(prepared, converted, x, first)
    after = _mean_channel_error(prepared, fixed_converted, x, first)
    # the first conv sees the same quantized input in both: only its corrected bias differs
    assert after.max() < 0.2 * before.max(), (before, after)
    assert _bias_scales_match(fixed_converted)
    # the original keeps its biases; the copy's moved
    node = next(n for n in prepared.graph.nodes if n.name == first)
    fixed_node = next(n for n in fixed.graph.nodes if n.name == first)
    assert not torch.equal(candidates.bias_tensor(prepared, node), candidates.bias_tensor(fixed, fixed_node))
    kept = candidates.bias_tensor(prepared, node).clone()
    candidates.bias_corrected(prepared, converted, (x,), chunk=4)
    assert torch.equal(candidates.bias_tensor(prepared, node), kept)


def test_bias_correction_shrinks_what_the_samples_do_not_pin_down():
    # per-sample mean errors of three channels over four samples: always 1 (no spread: kept whole),
    # +-1 (mean 0, se^2 1/3), and 2, 0, 2, 0 (mean 1, se^2 1/3); the means spread by tau^2 = 2/3 - 2/9
    values = torch.tensor(
        [[1.0, 1.0, 2.0], [1.0, -1.0, 0.0], [1.0, 1.0, 2.0], [1.0, -1.0, 0.0]], dtype=torch.float64
    )
    got = candidates.shrunk_mean(values.sum(0), (values**2).sum(0), 4)
    tau2 = 4 / 9
    assert torch.allclose(got, torch.tensor([1.0, 0.0, tau2 / (tau2 + 1 / 3)], dtype=torch.float64)), got
    # means no wider spread than their own noise: nothing is corrected
    noise = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64) + 0.1
    assert not candidates.shrunk_mean(noise.sum(0), (noise**2).sum(0), 4).any()


def test_a_correction_must_win_sample_by_sample():
    plain = torch.tensor([4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    assert candidates._clearly_better(plain - torch.tensor([1.0, 1.2, 0.9, 1.1, 1.0, 0.8]), plain)
    # the same total gain from two samples out of six: the other four got worse
    assert not candidates._clearly_better(plain - torch.tensor([4.0, 3.0, -0.5, -0.5, 0.0, 0.0]), plain)


def test_choice_on_held_out_samples_is_applied_to_the_fully_calibrated_model():
    # judged on their own samples, histogram ranges and bias correction fit those very samples; the
    # choice is made on a half the candidates never saw and then applied to the model that saw all
    x = torch.randn(32, 8, 16, 16)
    x[20, 0, 0, 0] = 40.0  # an outlier only the second half holds
    float_model, half = _prepared("histogram", x[:16])
    _, full = _prepared("histogram", x)
    chosen, converted, choice = candidates.choose(
        full, float_model, (x[:16],), half=(half, (x[:8],), (x[16:24],))
    )
    assert choice.held_out and choice.samples == 8 and "scored on 8 of the other half" in choice.describe()
    _check_rule(choice)
    if not choice.bias_corrected:
        expected = full if choice.ranges == "histogram" else candidates.minmax_variant(full)
        assert _qparams(converted) == _qparams(convert_pt2e(copy.deepcopy(expected), fold_quantize=True))
        assert (chosen is full) == (choice.ranges == "histogram")
    # ranges come from all 32 samples, not from the half the choice was judged with
    assert _qparams(converted) != _qparams(convert_pt2e(copy.deepcopy(half), fold_quantize=True))
    assert _bias_scales_match(converted)
