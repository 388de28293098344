"""Sensitivity ranks a deliberately hard layer first, and Auto keeps exactly that layer in float."""

from __future__ import annotations

import pytest
import torch

from core.jobs.spec import QuantizeOptions
from tests.models import build, save_pt2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hard_model(tmp_path_factory):
    model, shape = build("resnet18")
    with torch.no_grad():
        blk = model.layer2[0]
        # input channel 0 of conv2 is dead (always 0), and its weights are huge: they set every output
        # channel's int8 scale while contributing nothing, so the useful weights round to almost nothing
        blk.conv1.weight[0] = 0
        blk.bn1.weight[0] = 0
        blk.bn1.bias[0] = -1.0
        blk.conv2.weight[:, 0] = 50.0
    path = tmp_path_factory.mktemp("hard") / "hard.pt2"
    save_pt2(model, shape, path)
    return path


def test_hard_layer_ranks_first_and_auto_keeps_it(hard_model):
    from core.engine.sensitivity import sensitivity

    events = []
    from core.progress import Progress

    res = sensitivity(
        QuantizeOptions(model=str(hard_model), out_dir="", samples=32), 38.0, Progress(events.append)
    )
    assert res["ranking"][0]["layer"] == "layer2.0.conv2"
    assert res["ranking"][0]["sqnr_db"] < res["ranking"][1]["sqnr_db"] - 5
    assert res["auto_keep_float"] == ["layer2.0.conv2"]
    assert res["reached"] and res["auto_sqnr_db"] > res["baseline_sqnr_db"] + 5
    assert any(e["type"] == "stage" and e["name"] == "rank" for e in events)


def test_keeping_the_hard_layer_in_float_raises_real_sqnr(hard_model, tmp_path):
    from core.engine.pipeline import quantize

    base = quantize(
        QuantizeOptions(model=str(hard_model), out_dir=str(tmp_path / "a"), samples=32, export_onnx=False)
    )
    fixed = quantize(
        QuantizeOptions(
            model=str(hard_model),
            out_dir=str(tmp_path / "b"),
            samples=32,
            export_onnx=False,
            keep_float=("layer2.0.conv2",),
        )
    )
    layer = {layer["name"]: layer for layer in fixed["layers"]}["layer2.0.conv2"]
    assert layer["quantized"] is False
    assert fixed["metrics"]["output_sqnr_db"] > base["metrics"]["output_sqnr_db"] + 5
