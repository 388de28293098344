"""Our int8 ONNX against onnxruntime's own quantize_static and the float model.

Same calibration data for both quantizers; onnxruntime's path runs its pre-processing first and uses
QDQ, per-channel, U8S8 (its recommended CPU setting). Latencies are medians of runs interleaved in one
process with 2 intra-op threads, in blocks of runs per model (see `_time`). SQNR is against the float
ONNX output on held-out inputs.
Run: python -m tests.bench.onnx_vs_ort [--quick] [--extra] [--only NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

import numpy as np

import core.engine  # noqa: F401  (quiet torch/torchao logging)
from core.engine import onnx_export
from core.engine.analysis import sqnr_db
from core.engine.pipeline import quantize
from core.jobs.spec import QuantizeOptions
from tests import models

# name, constructor, input shape without batch, timing batch, calibration samples
CASES = (
    ("ResNet-18 shape", lambda: models.ResNet18(num_classes=1000), (3, 224, 224), 1, 32),
    ("MobileNet-V2 shape", lambda: models.MobileNetV2(num_classes=1000), (3, 224, 224), 1, 32),
    ("conv1d audio", models.Conv1dAudio, (40, 101), 64, 256),
    ("transformer encoder block", lambda: models.EncoderBlock(d=256, heads=8, ff=1024), (64, 256), 1, 64),
)


def _ort_quantize(float_path: Path, calib: np.ndarray, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out / "float.pre.onnx"
    with contextlib.chdir(out):  # it leaves sym_shape_infer_temp.onnx in the working directory
        try:
            quant_pre_process(str(float_path), str(pre))
        except Exception:  # its symbolic shape inference gives up on some Resize graphs; ONNX's own works
            quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
    sess = onnx_export.session(pre)
    name = sess.get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i : i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    q = out / "ort.int8.onnx"
    quantize_static(
        str(pre),
        str(q),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return q


def _time(sessions: dict, x: np.ndarray, rounds: int) -> dict[str, float]:
    """The engine's own timing (blocks per model, shuffled order), with ratios paired within a round
    so a noisy stretch of the machine slows both sides alike."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    blocks = onnx_export.latency_blocks(
        sessions, feeds, budget_s=0, block=10, min_rounds=max(3, rounds // 10)
    )
    out = {k: statistics.median(v) for k, v in blocks.items()}
    out["ours/ort"] = statistics.median(o / r for o, r in zip(blocks["ours"], blocks["ort"]))
    out["float/ours"] = statistics.median(f / o for f, o in zip(blocks["float"], blocks["ours"]))
    return out


def bench_case(
    name, ctor, shape, batch, samples, work: Path, rounds: int, observer: str | None = None
) -> dict:
    import torch

    torch.manual_seed(0)
    model = models.randomize_bn(ctor())
    pt2 = work / "model.pt2"
    models.save_pt2(model, shape, pt2)
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((samples, *shape)).astype(np.float32)
    np.save(work / "calib.npy", calib)
    ours = quantize(
        QuantizeOptions(
            model=str(pt2),
            out_dir=str(work / "ours"),
            calib=str(work / "calib.npy"),
            samples=samples,
            observer=observer,
        )
    )
    float_path = work / "ours" / "model.float.onnx"
    ort_path = _ort_quantize(float_path, calib, work)
    sessions = {
        "float": onnx_export.session(float_path),
        "ort": onnx_export.session(ort_path),
        "ours": onnx_export.session(work / "ours" / "model.int8.onnx"),
    }
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    lat = _time(sessions, x, rounds)
    held_out = rng.standard_normal((8, *shape)).astype(np.float32)
    ref = sessions["float"].run(None, {sessions["float"].get_inputs()[0].name: held_out})[0]

    def sq(key):
        s = sessions[key]
        got = s.run(None, {s.get_inputs()[0].name: held_out})[0]
        return sqnr_db(torch.from_numpy(ref), torch.from_numpy(got))

    return {
        "model": name,
        "batch": batch,
        "float_ms": lat["float"],
        "ort_ms": lat["ort"],
        "ours_ms": lat["ours"],
        "ours_vs_ort": lat["ours/ort"],
        "speedup_vs_float": lat["float/ours"],
        "sqnr_ort": sq("ort"),
        "sqnr_ours": sq("ours"),
        "unfused": len(ours["unfused"]),
    }


def table(rows: list[dict]) -> str:
    head = "| model | batch | float ms | ORT quantize_static ms | ours ms | ours / ORT | speed-up vs float | SQNR ORT dB | SQNR ours dB | ops left in float |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['float_ms']:.2f} | {r['ort_ms']:.2f} | {r['ours_ms']:.2f} | "
            f"{r['ours_vs_ort']:.2f}x | {r['speedup_vs_float']:.2f}x | {r['sqnr_ort']:.1f} | {r['sqnr_ours']:.1f} | {r['unfused']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer timing rounds")
    ap.add_argument(
        "--observer", choices=("minmax", "histogram", "moving-average"), help="our activation observer"
    )
    ap.add_argument("--only", help="run only the models whose name contains this text")
    ap.add_argument("--extra", action="store_true", help="also the architectures in extra_models.py")
    args = ap.parse_args(argv)
    rounds = 60 if args.quick else 150
    rows = []
    cases = list(CASES)
    if args.extra:
        from tests.bench.extra_models import CASES as EXTRA

        cases += [(name, *case) for name, case in EXTRA.items()]
    for case in cases:
        if args.only and args.only.lower() not in case[0].lower():
            continue
        with tempfile.TemporaryDirectory() as d:
            rows.append(bench_case(*case, Path(d), rounds, args.observer))
            print(f"  done: {case[0]}", flush=True)
    out = table(rows)
    print(out)
    return out


if __name__ == "__main__":
    main()
