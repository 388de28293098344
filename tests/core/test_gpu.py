"""Calibration on a chosen GPU (skipped without CUDA): observers run there, convert/export on the CPU."""

from __future__ import annotations

import pytest

from core.jobs.spec import QuantizeOptions
from tests.conftest import DEMO

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_calibration_on_cuda_matches_cpu(tmp_path):
    import torch

    from core.engine.pipeline import quantize

    common = dict(model=str(DEMO / "model.pt2"), calib=str(DEMO / "calib"), samples=64, observer="minmax")
    gpu = quantize(QuantizeOptions(out_dir=str(tmp_path / "gpu"), device="cuda:0", **common))
    cpu = quantize(QuantizeOptions(out_dir=str(tmp_path / "cpu"), device="cpu", **common))
    assert gpu["device"] == "cuda:0"
    assert abs(gpu["metrics"]["output_sqnr_db"] - cpu["metrics"]["output_sqnr_db"]) < 1.0
    scales = [
        (a["act_scale"], b["act_scale"]) for a, b in zip(gpu["layers"], cpu["layers"]) if a["act_scale"]
    ]
    assert all(abs(a - b) <= 1e-3 * max(abs(b), 1e-9) for a, b in scales)
    assert gpu["metrics"]["onnx_parity_sqnr_db"] >= 35
    assert torch.cuda.memory_allocated() < 64 * 2**20  # the job returned its GPU memory
