"""Engine overhead: `qdq quantize` against a bare script doing export + prepare + calibrate + convert.

Both run on the same model and calibration data in this process, interleaved, 3 rounds, medians. The
engine's own candidate choice (it converts and scores up to five models, its final conversion among
them), analysis and export are reported separately (a bare script does none of them).
Run: python -m tests.bench.bench_engine
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import core.engine  # noqa: F401  (quiet logging)
from core.engine.capture import batch_dynamic_shapes
from core.engine.pipeline import quantize
from core.engine.quantizers import QuantizerOptions, build_quantizer
from core.jobs.spec import QuantizeOptions
from tests import models

SHAPE = (3, 128, 128)
SAMPLES, BATCH, ROUNDS = 64, 8, 3


def bare(model_path: Path, calib: np.ndarray) -> float:
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    t0 = time.perf_counter()
    ep = torch.export.load(str(model_path))
    ex = (torch.from_numpy(calib[:2]),)
    gm = torch.export.export(ep.module(), ex, dynamic_shapes=batch_dynamic_shapes(ex)).module()
    prepared = prepare_pt2e(gm, build_quantizer(QuantizerOptions(preset="onnxruntime"), gm))
    with torch.no_grad():
        for i in range(0, len(calib), BATCH):
            prepared(torch.from_numpy(calib[i : i + BATCH]))
    convert_pt2e(prepared)
    return time.perf_counter() - t0


def ours(model_path: Path, npy: Path, out: Path, export: bool) -> tuple[float, dict]:
    t0 = time.perf_counter()
    report = quantize(
        QuantizeOptions(
            model=str(model_path),
            out_dir=str(out),
            calib=str(npy),
            samples=SAMPLES,
            batch_size=BATCH,
            export_onnx=export,
        )
    )
    return time.perf_counter() - t0, report["timings"]


def main() -> dict:
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = models.randomize_bn(models.ResNet18(num_classes=1000))
        models.save_pt2(model, SHAPE, d / "model.pt2")
        calib = np.random.default_rng(0).standard_normal((SAMPLES, *SHAPE)).astype(np.float32)
        np.save(d / "calib.npy", calib)
        bare_t, core_t, full_t, stages = [], [], [], []
        for r in range(ROUNDS):
            bare_t.append(bare(d / "model.pt2", calib))
            _, timings = ours(d / "model.pt2", d / "calib.npy", d / f"a{r}", export=False)
            # the candidate choice converts and scores several models: extra work, reported apart
            core_t.append(
                sum(timings[k] for k in ("load_s", "capture_s", "prepare_s", "calibrate_s", "convert_s"))
                - timings.get("candidates_s", 0.0)
            )
            total, timings = ours(d / "model.pt2", d / "calib.npy", d / f"b{r}", export=True)
            full_t.append(total)
            stages.append(timings)
    med = statistics.median
    result = {
        "bare_s": med(bare_t),
        "engine_core_s": med(core_t),
        "ratio": med(core_t) / med(bare_t),
        "full_s": med(full_t),
        "candidates_s": med(t.get("candidates_s", 0.0) for t in stages),
        "analyse_s": med(t["analyse_s"] for t in stages),
        "export_s": med(t["export_s"] for t in stages),
    }
    print(
        f"ResNet-18 shape {SHAPE}, {SAMPLES} samples, batch {BATCH}; medians of {ROUNDS} interleaved rounds"
    )
    print(f"  bare export+prepare+calibrate+convert  {result['bare_s']:7.2f} s")
    print(
        f"  qdq engine, same stages                {result['engine_core_s']:7.2f} s   ratio {result['ratio']:.2f}x (target <= 1.5x)"
    )
    print(f"  qdq engine, whole run incl. report     {result['full_s']:7.2f} s")
    print(f"    of which candidate choice            {result['candidates_s']:7.2f} s")
    print(f"    of which analysis                    {result['analyse_s']:7.2f} s")
    print(f"    of which ONNX export + validation    {result['export_s']:7.2f} s")
    return result


if __name__ == "__main__":
    main()
