"""Calibration and fine-tuning on a chosen GPU (skipped without CUDA).

Observers and QAT run on the GPU; convert, analysis and export run on the CPU, so the int8 result must
match a CPU run of the same job: same ops in onnxruntime's graph, same scales, same SQNR within a bound.
"""

from __future__ import annotations

import pytest

from core.jobs.spec import QuantizeOptions
from tests.conftest import DEMO
from tests.core.test_worker import calibrating, quantize_spec, slow_calibration, worker  # noqa: F401

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
GPU = "cuda:0"


def _quantize(device: str, out, **kw) -> dict:
    from core.engine.pipeline import quantize

    return quantize(QuantizeOptions(out_dir=str(out / device.replace(":", "")), device=device, **kw))


def _assert_gpu_memory_returned():
    import torch

    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() < 64 * 2**20


def test_devices_list_the_gpu_and_auto_picks_it():
    import torch

    from core.engine.devices import list_devices, resolve_device

    devices = {d["id"]: d for d in list_devices()}
    assert devices[GPU]["kind"] == "cuda" and devices[GPU]["memory_bytes"] > 2**30
    assert devices[GPU]["name"] == torch.cuda.get_device_name(0)
    assert resolve_device("auto") == torch.device(GPU) == resolve_device("cuda")


def test_calibration_on_cuda_matches_cpu(tmp_path):
    common = dict(model=str(DEMO / "model.pt2"), calib=str(DEMO / "calib"), samples=64, observer="minmax")
    gpu = _quantize(GPU, tmp_path, **common)
    cpu = _quantize("cpu", tmp_path, **common)
    assert gpu["device"] == GPU and cpu["device"] == "cpu"
    assert abs(gpu["metrics"]["output_sqnr_db"] - cpu["metrics"]["output_sqnr_db"]) < 1.0
    scales = [
        (a["act_scale"], b["act_scale"]) for a, b in zip(gpu["layers"], cpu["layers"]) if a["act_scale"]
    ]
    assert scales and all(abs(a - b) <= 1e-3 * max(abs(b), 1e-9) for a, b in scales)
    assert gpu["metrics"]["onnx_parity_sqnr_db"] >= 35
    _assert_gpu_memory_returned()


@pytest.mark.parametrize("name", ["resnet18", "conv1d", "torch_encoder", "se_silu", "upsample_concat"])
def test_zoo_model_calibrates_on_cuda_like_on_cpu(name, zoo_pt2, tmp_path):
    """The default (histogram) observer, graph passes and candidate choice, with the observers on the GPU."""
    common = dict(model=str(zoo_pt2(name)), samples=32)
    gpu = _quantize(GPU, tmp_path, **common)
    cpu = _quantize("cpu", tmp_path, **common)
    assert gpu["device"] == GPU
    assert gpu["metrics"]["ort_op_counts"] == cpu["metrics"]["ort_op_counts"]
    assert gpu["metrics"]["unfused_ops"] == cpu["metrics"]["unfused_ops"]
    choices = gpu["calibration"]["candidates"], cpu["calibration"]["candidates"]
    assert abs(gpu["metrics"]["output_sqnr_db"] - cpu["metrics"]["output_sqnr_db"]) < 1.0, choices
    assert gpu["metrics"]["onnx_parity_sqnr_db"] >= 35
    _assert_gpu_memory_returned()


def test_qat_fine_tunes_on_cuda(zoo_pt2, tmp_path):
    report = _quantize(GPU, tmp_path, model=str(zoo_pt2("conv_bn_relu")), samples=16, qat_epochs=2)
    assert report["device"] == GPU
    assert report["qat"]["epochs"] == 2 and len(report["qat"]["losses"]) == 2
    assert report["metrics"]["output_sqnr_db"] >= 25
    assert report["metrics"]["ort_op_counts"].get("QLinearConv") == 2
    _assert_gpu_memory_returned()


def test_worker_job_on_the_gpu_is_recorded_and_cancels(worker, tmp_path, db, slow_calibration):  # noqa: F811
    from core.jobs.spec import JobSpec
    from core.store import open_store

    worker.submit(quantize_spec(str(DEMO / "model.pt2"), tmp_path / "run", db, samples=16, device=GPU))
    res = worker.wait_for(lambda e: e["type"] in ("result", "error"), 300)
    assert res["type"] == "result", res
    with open_store(db) as store:
        assert store.get_run(res["data"]["run_id"])["device"] == GPU

    model, calib = slow_calibration
    spec = quantize_spec(model, tmp_path / "cancel", db, calib=calib, samples=256, batch_size=1, device=GPU)
    worker.submit(spec)
    worker.wait_for(calibrating, 120)
    worker.send({"op": "cancel", "job_id": spec.id})
    res = worker.wait_for(lambda e: e["type"] in ("result", "error", "cancelled"), 10)
    assert res["type"] == "cancelled", res
    worker.submit(JobSpec("devices", {}, id="after"))
    res = worker.wait_for(lambda e: e["job_id"] == "after" and e["type"] == "result", 60)
    assert GPU in [d["id"] for d in res["data"]["devices"]]
