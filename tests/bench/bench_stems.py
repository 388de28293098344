"""The space-to-depth stem rewrite, A/B: the same int8 model exported with and without it.

Both files come from one quantized model (its model.int8.pt2), so the only difference is the rewrite;
outputs must be identical, and latency is timed interleaved in one process (medians of paired ratios).
Run: python -m tests.bench.bench_stems
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

import core.engine  # noqa: F401  (quiet torch/torchao logging)
from core.engine import onnx_export
from core.engine.pipeline import quantize
from core.jobs.spec import QuantizeOptions
from tests import models

CASES = (
    ("ResNet-18 shape (7x7 stem)", lambda: models.ResNet18(num_classes=1000)),
    ("MobileNet-V2 shape (3x3 stem)", lambda: models.MobileNetV2(num_classes=1000)),
)
SHAPE = (3, 224, 224)


def bench_case(name, ctor, work: Path, repeats: int = 3) -> str:
    import torch

    torch.manual_seed(0)
    models.save_pt2(models.randomize_bn(ctor()), SHAPE, work / "model.pt2")
    np.save(work / "calib.npy", np.random.default_rng(0).standard_normal((16, *SHAPE)).astype(np.float32))
    quantize(
        QuantizeOptions(
            model=str(work / "model.pt2"),
            out_dir=str(work / "run"),
            calib=str(work / "calib.npy"),
            samples=16,
            export_onnx=False,
        )
    )
    int8 = torch.export.load(str(work / "run" / "model.int8.pt2")).module()
    example = (torch.randn(2, *SHAPE),)
    paths = {}
    for label, s2d in (("plain", False), ("s2d", True)):
        paths[label] = work / f"{label}.onnx"
        onnx_export.export_onnx(int8, example, paths[label], True, ["x"], space_to_depth_stems=s2d)
    sessions = {k: onnx_export.session(p) for k, p in paths.items()}
    x = np.random.default_rng(1).standard_normal((4, *SHAPE)).astype(np.float32)
    outs = [s.run(None, {"x": x})[0] for s in sessions.values()]
    identical = np.array_equal(*outs)
    feeds = {k: {"x": x[:1]} for k in sessions}
    ratios = []
    for _ in range(repeats):
        blocks = onnx_export.latency_blocks(sessions, feeds, budget_s=0, block=10, min_rounds=15)
        ratios.append(statistics.median(b / a for a, b in zip(blocks["plain"], blocks["s2d"])))
    return f"{name:32s} s2d / plain latency {' '.join(f'{r:.3f}' for r in ratios)}   outputs identical: {identical}"


def main() -> None:
    print("batch 1, 2 intra-op threads; three timing runs each, a median of 15 paired 10-run blocks each")
    for name, ctor in CASES:
        with tempfile.TemporaryDirectory() as d:
            print(bench_case(name, ctor, Path(d)), flush=True)


if __name__ == "__main__":
    main()
