"""Export time of an unrolled recurrent cell, A/B: onnxscript's SlicesSplit rule left out (ours) or kept.

That rule's matcher indexes the whole graph for every Slice it tries, so the cost grows with the square
of the steps. Both exports take the same int8 model (its model.int8.pt2) and must write the same ops.
Run: python -m tests.bench.bench_export
"""

from __future__ import annotations

import collections
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import torch
from torch import nn

import core.engine  # noqa: F401  (quiet torch/torchao logging)
from core.engine import onnx_export
from core.engine.pipeline import quantize
from core.jobs.spec import QuantizeOptions
from tests import models

STEPS = (16, 64)
WIDTH = 32


class UnrolledCell(nn.Module):
    """A simple recurrent unit (SRU) written as a Python loop over time, as its reference code does."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        self.gates = nn.Linear(width, 3 * width)
        self.v = nn.Parameter(0.1 * torch.randn(2, width))
        self.fc = nn.Linear(width, 4)

    def forward(self, x):  # [B, T, width]
        u = self.gates(x).unflatten(-1, (3, -1))
        c = torch.zeros_like(x[:, 0])
        for t in range(x.shape[1]):
            f = torch.sigmoid(u[:, t, 1] + self.v[0] * c)
            r = torch.sigmoid(u[:, t, 2] + self.v[1] * c)
            c = f * c + (1 - f) * u[:, t, 0]
            h = r * torch.tanh(c) + (1 - r) * x[:, t]
        return self.fc(h)


def _export(int8, example, path: Path, keep_rule: bool) -> float:
    baseline = mock.patch.object(onnx_export, "_without_slice_split_rule", contextlib.nullcontext)
    start = time.perf_counter()
    with baseline if keep_rule else contextlib.nullcontext():
        onnx_export.export_onnx(int8, example, path, True, ["x"])
    return time.perf_counter() - start


def bench_case(steps: int, work: Path, repeats: int = 3) -> str:
    torch.manual_seed(0)
    shape = (steps, WIDTH)
    models.save_pt2(UnrolledCell(), shape, work / "model.pt2")
    np.save(work / "calib.npy", np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32))
    opts = QuantizeOptions(
        model=str(work / "model.pt2"),
        out_dir=str(work / "run"),
        calib=str(work / "calib.npy"),
        export_onnx=False,
    )
    quantize(opts)
    int8 = torch.export.load(str(work / "run" / "model.int8.pt2")).module()
    example = (torch.randn(2, *shape),)
    seconds, ops = collections.defaultdict(list), {}
    for _ in range(repeats):  # alternating, so both see the same machine
        for label, keep in (("kept", True), ("ours", False)):
            seconds[label].append(_export(int8, example, work / f"{label}.onnx", keep))
            ops[label] = collections.Counter(
                n.op_type for n in onnx.load(str(work / f"{label}.onnx")).graph.node
            )
    kept, ours = (statistics.median(seconds[k]) for k in ("kept", "ours"))
    return (
        f"{steps:3d} steps, {sum(ops['ours'].values()):5d} nodes: rule kept {kept:6.1f} s, left out {ours:6.1f} s, "
        f"ratio {ours / kept:.2f}   same ops: {ops['ours'] == ops['kept']}"
    )


def main() -> None:
    print("int8 export of an unrolled SRU cell; medians of 3 exports each way, alternating")
    for steps in STEPS:
        with tempfile.TemporaryDirectory() as d:
            print(bench_case(steps, Path(d)), flush=True)


if __name__ == "__main__":
    main()
