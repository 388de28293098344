"""The PT2E flow end to end: load -> capture -> prepare -> calibrate/fine-tune -> convert -> analyse -> export.

`quantize` is the one code path behind `qdq quantize`, the worker process and therefore the window.
It reports through a `Progress` and stops when that raises `Cancelled`.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch._ops import HigherOrderOperator
from torch.fx import GraphModule
from torchao.quantization.pt2e import move_exported_model_to_eval
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

from core.engine import (
    analysis,
    calibration,
    candidates,
    graph_extract,
    graph_passes,
    onnx_export,
    qat,
    report_html,
)
from core.engine.capture import Captured, batch_dynamic_shapes, capture
from core.engine.devices import exact_float32, resolve_device
from core.engine.loading import LoadedModel, load_model
from core.engine.quantizers import (
    SCHEMES,
    QuantizerOptions,
    build_quantizer,
    cats_share_ranges,
    convert,
    matches_keep_float,
    module_path,
    non_float32_layers,
    zero_pads_keep_input_range,
)
from core.errors import UserError
from core.fsutil import remove_partials, save_atomic, write_atomic
from core.graphdoc import dump_graphs
from core.jobs.spec import QuantizeOptions
from core.progress import Progress

SCHEMA = 1
ANALYSIS_SAMPLES = 32
NON_FINITE_HINT = (
    "(a log, square root or division of zero or a negative number?); fix the model or leave those samples out"
)
MIN_HELD_OUT = 4  # samples per half before candidates are judged on held-out ones
STAGES = ("load", "capture", "prepare", "calibrate", "convert", "analyse", "export", "report")
# share of the progress bar per stage; calibration and export dominate wall time
WEIGHTS = (0.03, 0.07, 0.03, 0.42, 0.05, 0.12, 0.25, 0.03)
ARTIFACTS = {
    "int8_onnx": "model.int8.onnx",
    "int8_pt2": "model.int8.pt2",
    "float_onnx": "model.float.onnx",
    "graph": "graph.json",
    "tensors": "tensors.npz",
    "html": "report.html",
}


class Stages:
    """Named stages, each owning a slice of the progress bar and timed for the report."""

    def __init__(self, progress: Progress, qat_epochs: int, stages=STAGES, weights=WEIGHTS):
        self.progress = progress
        self.stages = tuple(stages)
        total = sum(weights)
        self.bounds = np.cumsum((0.0, *(w / total for w in weights))).tolist()
        self.names = list(stages)
        if qat_epochs:
            self.names[3] = "fine-tune"
        self.timings: dict[str, float] = {}
        self._t = time.monotonic()
        self._current: str | None = None

    def enter(self, i: int) -> Progress:
        self._close()
        self._current = self.stages[i]
        self.progress.stage(self.names[i], i, len(self.stages))
        sub = self.progress.sub(self.bounds[i], self.bounds[i + 1])
        sub(0.0, f"{self.names[i]}…")
        return sub

    def _close(self) -> None:
        now = time.monotonic()
        if self._current:
            self.timings[f"{self._current}_s"] = round(now - self._t, 3)
        self._t = now

    def record(self, name: str, seconds: float) -> None:
        """A part of the current stage timed on its own (it is also in that stage's total)."""
        self.timings[f"{name}_s"] = round(seconds, 3)

    def finish(self) -> dict[str, float]:
        self._close()
        self._current = None
        return self.timings


@dataclass
class Calibrated:
    """Everything up to a calibrated (or fine-tuned) prepared model."""

    loaded: LoadedModel
    cap: Captured
    specs: list
    prepared: GraphModule
    calib: calibration.CalibrationData
    device: torch.device
    batch_size: int
    seconds: float
    qat_info: dict | None
    warnings: list[str] = field(default_factory=list)
    half: GraphModule | None = None  # calibrated on the first half of the samples only (see candidates)


def prepare_and_calibrate(opts: QuantizeOptions, stages: Stages) -> Calibrated:
    """Stages 0-3: load, capture, prepare, calibrate or fine-tune."""
    torch.manual_seed(0)
    warnings: list[str] = []
    p = stages.enter(0)
    loaded = load_model(opts.model, opts.trust_code)
    device = resolve_device(opts.device)

    p = stages.enter(1)
    cap = capture(loaded)
    graph_passes.views_as_reshapes(cap.graph_module)  # the float model runs on the device too (QAT teacher)
    warnings += cap.warnings
    specs = calibration.input_specs(cap.example_inputs, loaded.input_names)
    if (
        opts.export_onnx
        and (complex_node := onnx_export.first_complex_value(cap.graph_module)) is not None
        and (why := onnx_export.float_export_failure(cap, [s.name for s in specs])) is not None
    ):
        raise UserError(
            "this model computes with complex numbers (torch.fft or torch.complex, first in "
            f"{module_path(complex_node) or complex_node.name}), which torch's ONNX exporter cannot write "
            f"here ({why}). Quantize it without ONNX export for an int8 .pt2 ({onnx_export.NO_ONNX}), or "
            "move the FFT out of the model"
        )
    float_model = cap.graph_module
    batch_size = cap.fixed_batch or opts.batch_size

    p = stages.enter(2)
    qopts = QuantizerOptions(
        preset=opts.preset,
        observer=opts.observer,
        per_channel=opts.per_channel,
        keep_float=opts.keep_float,
        qat=opts.qat_epochs > 0,
    )
    graph = copy.deepcopy(cap.graph_module)
    standalone_bn = graph_passes.prepare_graph(
        graph, own_annotator=opts.preset in SCHEMES, qat=bool(opts.qat_epochs)
    )
    if standalone_bn:
        p.log(f"{standalone_bn} batch-norm(s) that follow no conv became depthwise 1x1 convs (exact)")
    if wide := non_float32_layers(graph):
        warnings.append(
            f"{len(wide)} layer(s) compute in {wide[0].meta['val'].dtype} and stay in float (first: "
            f"{module_path(wide[0]) or wide[0].name}); int8 starts from float32: export the model after "
            "model.float() to quantize them"
        )
    if flow := sorted(
        {str(n.target) for n in graph.graph.nodes if isinstance(n.target, HigherOrderOperator)}
    ):
        warnings.append(
            f"the layers inside the model's {', '.join('torch.' + f for f in flow)} regions stay float: "
            "quantizers do not look "
            "inside control flow (torch.cond on a fixed flag can become a plain if before export)"
        )
    quantizer = build_quantizer(qopts, graph)
    prepare = prepare_qat_pt2e if opts.qat_epochs else prepare_pt2e
    try:
        prepared = prepare(graph, quantizer)
    except Exception as e:
        raise UserError(
            f"the {opts.preset} quantizer could not prepare this model: {str(e).splitlines()[0][:240]}"
        ) from e
    p(1.0, "observers inserted")

    p = stages.enter(3)
    calib = calibration.load_calibration(opts.calib, specs, opts.samples, opts.normalize)
    if calib.synthetic:
        warnings.append(
            "calibrated on SYNTHETIC random data: activation ranges may be far from real inputs and accuracy "
            "may be poor; give real samples with --calib"
        )
    if calib.skipped:
        warnings.append(f"{len(calib.skipped)} calibration file(s) could not be read and were skipped")
    warnings.extend(calibration.value_warnings(calib, specs))
    t_cal = time.monotonic()
    qat_info = None
    half = None
    prepared.to(device)
    try:
        with exact_float32(device):
            if opts.qat_epochs:
                labelled = (
                    calibration.load_labelled_folder(opts.labels, specs, opts.normalize)
                    if opts.labels
                    else None
                )
                qat_info = qat.fine_tune(
                    prepared, float_model, calib, labelled, opts.qat_epochs, batch_size, device, p
                )
                move_exported_model_to_eval(prepared)
            elif (
                opts.observer is None
                and not cap.fixed_batch
                and len(calib) >= MIN_HELD_OUT * 2
                and candidates.has_histograms(prepared)
            ):
                # candidates are judged on samples they were not calibrated on: snapshot halfway
                mid = _halfway(calib)
                _calibrate(prepared, calib, batch_size, device, p, stop=mid)
                half = copy.deepcopy(prepared).to("cpu")
                _calibrate(prepared, calib, batch_size, device, p, start=mid)
            else:
                _calibrate(prepared, calib, batch_size, device, p)
        _check_ranges_finite(prepared)
        if opts.preset in SCHEMES:
            for model in (prepared, half):
                if model is not None:
                    zero_pads_keep_input_range(model)
                    cats_share_ranges(model)
    finally:
        prepared.to("cpu")
        float_model.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return Calibrated(
        loaded,
        cap,
        specs,
        prepared,
        calib,
        device,
        batch_size,
        time.monotonic() - t_cal,
        qat_info,
        warnings,
        half,
    )


def quantize(opts: QuantizeOptions, progress: Progress | None = None, run_id: int | None = None) -> dict:
    progress = progress or Progress()
    stages = Stages(progress, opts.qat_epochs)
    out = Path(opts.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    cal = prepare_and_calibrate(opts, stages)
    loaded, cap, specs, prepared, calib, device = (
        cal.loaded,
        cal.cap,
        cal.specs,
        cal.prepared,
        cal.calib,
        cal.device,
    )
    float_model, warnings = cap.graph_module, cal.warnings

    p = stages.enter(4)
    sample = calib.take(min(ANALYSIS_SAMPLES, len(calib)))
    if cap.fixed_batch:
        sample = calib.take(cap.fixed_batch)
    choice = None
    if opts.observer is None and candidates.has_histograms(prepared):
        half = None
        if cal.half is not None:
            mid = _halfway(calib)
            n = min(ANALYSIS_SAMPLES, mid)
            half = (cal.half, calib.take(n), calib.part(mid, mid + n).inputs)
        t_choice = time.monotonic()
        prepared, converted, choice = candidates.choose(prepared, float_model, sample, cap.fixed_batch, half)
        stages.record("candidates", time.monotonic() - t_choice)
        p.log(choice.describe())
    float_ref = copy.deepcopy(prepared)
    if opts.qat_epochs:
        from torchao.quantization.pt2e import disable_fake_quant

        float_ref.apply(disable_fake_quant)
    reference_copy = copy.deepcopy(prepared) if opts.reference_representation else None
    if choice is None:
        converted = convert(prepared)
    p(1.0, "converted")

    p = stages.enter(5)
    res = analysis.analyse(
        converted,
        float_ref,
        float_model,
        sample,
        lambda n: matches_keep_float(n, opts.keep_float),
        chunk=cap.fixed_batch or analysis.ANALYSIS_CHUNK,
    )
    p(0.8, "per-layer statistics done")
    if not any(layer["quantized"] for layer in res.layers):
        warnings.append(_nothing_quantized(opts))
    graphs = {
        "float": graph_extract.to_graphdoc(float_model, "float", quantized_graph=False),
        "quantized": graph_extract.to_graphdoc(converted, "quantized", quantized_graph=True),
    }
    metrics: dict = {
        "output_sqnr_db": res.output_sqnr_db,
        "top1_agreement": analysis.top1_agreement(res.float_outputs, res.quantized_outputs),
    }
    if len(each := analysis.each_output_sqnr(res.float_outputs, res.quantized_outputs)) > 1:
        metrics["outputs_sqnr_db"] = each

    p = stages.enter(6)
    artifacts = dict(ARTIFACTS)
    dynamic = cap.fixed_batch is None
    # copies: torch.export.save stores the whole storage of a view, the calibration set's here
    ex = tuple(t[: cap.fixed_batch or 2].clone() for t in sample)
    unfused: list[dict] | None = None  # null: no ONNX file, nothing diagnosed
    _save_int8_pt2(out / ARTIFACTS["int8_pt2"], converted, reference_copy, ex, dynamic, warnings)
    p(0.15, "saved model.int8.pt2")
    if opts.export_onnx:
        names = [s.name for s in specs]
        save_atomic(
            out / ARTIFACTS["float_onnx"],
            lambda t: onnx_export.export_onnx(float_model, ex, t, dynamic, names),
        )
        p(0.35, "exported model.float.onnx")
        save_atomic(
            out / ARTIFACTS["int8_onnx"],
            lambda t: onnx_export.export_onnx(
                converted,
                ex,
                t,
                dynamic,
                names,
                space_to_depth_stems=opts.preset == "onnxruntime",
                integer_pads=opts.preset == "onnxruntime",
            ),
        )
        p(0.6, "exported model.int8.onnx")
        metrics.update(_validate_onnx(out, converted, res, sample, opts, p))
        unfused, metrics["ort_op_counts"] = onnx_export.diagnose_unfused(
            out / ARTIFACTS["int8_onnx"], out, opts.keep_float
        )
        metrics["unfused_ops"] = len(unfused)
        if (metrics.get("speedup") or 1.0) < SLOWER_THAN_FLOAT:
            warnings.append(_slower_than_float(metrics, float_model))
        if metrics["onnx_parity_sqnr_db"] < PARITY_FLOOR_DB:
            warnings.append(_low_parity(metrics, unfused))
        if opts.labels:
            metrics.update(_accuracy(opts, specs, float_model, out))
    else:
        for k in ("int8_onnx", "float_onnx"):
            artifacts.pop(k)
    p(1.0, "export checked")

    p = stages.enter(7)
    report = {
        "schema": SCHEMA,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "path": loaded.path,
            "sha256": loaded.sha256,
            "format": loaded.format,
            "params": analysis.parameter_count(float_model),
            "inputs": [
                {
                    "name": s.name,
                    "shape": [cap.fixed_batch or "N", *s.shape],
                    "dtype": str(s.dtype).replace("torch.", ""),
                }
                for s in specs
            ],
            "fixed_batch": cap.fixed_batch,
        },
        "preset": opts.preset,
        "options": opts.to_dict(),
        "device": str(device),
        "calibration": {
            "source": calib.source,
            "samples": len(calib),
            "batch_size": cal.batch_size,
            "seconds": round(cal.seconds, 3),
            "synthetic": calib.synthetic,
            "skipped": len(calib.skipped),
            "skipped_files": calib.skipped[:50],
            "candidates": None
            if choice is None
            else {
                "chosen": choice.chosen,
                "ranges": choice.ranges,
                "bias_corrected": choice.bias_corrected,
                "output_sqnr_db": choice.output_sqnr_db,
                "samples": choice.samples,
                "held_out": choice.held_out,
            },
        },
        "qat": cal.qat_info,
        "artifacts": artifacts,
        "metrics": metrics,
        "layers": res.layers,
        "unfused": unfused,
        "timings": {},
        "warnings": warnings,
    }
    save_atomic(out / ARTIFACTS["tensors"], lambda tmp: _save_npz(tmp, res.tensors))
    write_atomic(out / ARTIFACTS["graph"], dump_graphs(graphs))
    report["timings"] = stages.finish()
    write_atomic(out / ARTIFACTS["html"], report_html.render(report, res.tensors))
    write_atomic(out / "report.json", json.dumps(report, indent=1, default=_json_default))
    progress(1.0, "done")
    return report


def _nothing_quantized(opts: QuantizeOptions) -> str:
    why = (
        "every layer it has is kept in float (--keep-float)"
        if opts.keep_float
        else f"the {opts.preset} preset found no layer it runs in int8 (convolutions, linears, matmuls)"
    )
    return f"nothing in this model was quantized: {why}; the int8 files compute what the float model does"


def _halfway(calib) -> int:
    """Where calibration is snapshotted for the candidates; the rest of the samples judge them."""
    return len(calib) // 2


def _calibrate(
    prepared, calib, batch_size: int, device, p: Progress, start: int = 0, stop: int | None = None
) -> None:
    total = len(calib)
    done = start
    with torch.no_grad():
        for batch in calib.part(start, total if stop is None else stop).batches(batch_size):
            n = int(batch[0].shape[0])
            try:
                prepared(*(t.to(device) for t in batch))
            except RuntimeError as e:
                if "not finite" not in str(e):
                    raise
                # a histogram observer met inf or NaN: the model made them from finite inputs
                raise UserError(
                    f"the model computes NaN or infinite values on calibration samples {done + 1}-{done + n} "
                    + NON_FINITE_HINT
                ) from None
            done += n
            p(done / total, f"calibrated {done}/{total} samples")


def _check_ranges_finite(prepared: GraphModule) -> None:
    """A min/max observer keeps NaN or an infinite bound and convert later fails on an assertion; an
    observer calibration never reached keeps (+inf, -inf), which convert handles, so it is not one."""
    for module in prepared.modules():
        lo, hi = getattr(module, "min_val", None), getattr(module, "max_val", None)
        if not (isinstance(lo, torch.Tensor) and isinstance(hi, torch.Tensor)):
            continue
        if lo.isnan().any() or hi.isnan().any() or (lo == -torch.inf).any() or (hi == torch.inf).any():
            raise UserError(
                "the model computes NaN or infinite values on the calibration data " + NON_FINITE_HINT
            )


def _save_pt2(module, example_inputs, dynamic: bool, path: Path) -> None:
    dyn = batch_dynamic_shapes(example_inputs) if dynamic else None
    ep = torch.export.export(_used_attributes_only(module), tuple(example_inputs), dynamic_shapes=dyn)
    # Serialise in memory: torch's zip writer aborts the whole process when the disk fills up mid-write,
    # while a plain Python write raises an OSError that becomes a clear message.
    buffer = io.BytesIO()
    torch.export.save(ep, buffer)
    path.write_bytes(buffer.getvalue())


def _used_attributes_only(module):
    """convert_pt2e folds each weight into an int8 constant but leaves the float parameter on the
    module, and torch.export keeps every parameter: the int8 .pt2 carried all float weights, unused,
    and was larger than the float model. A GraphModule built from the graph copies only what it reads."""
    if not isinstance(module, GraphModule):
        return module
    return GraphModule(module, copy.deepcopy(module.graph), module.__class__.__name__)


def _save_int8_pt2(path: Path, converted, reference, ex, dynamic: bool, warnings: list[str]) -> None:
    """The reference representation replaces Q/DQ by integer arithmetic whose shapes torch.export cannot
    always keep symbolic; fall back to a fixed batch, then to the Q/DQ program, and say so."""
    if reference is not None:
        reference = convert(reference, reference=True)
        for dyn in (True, False) if dynamic else (False,):
            try:
                save_atomic(path, lambda tmp, d=dyn: _save_pt2(reference, ex, d, tmp))
                if dynamic and not dyn:
                    warnings.append(
                        f"the reference-representation .pt2 has a fixed batch of {ex[0].shape[0]}"
                    )
                return
            except Exception:
                continue
        warnings.append(
            "the reference representation could not be exported; model.int8.pt2 holds Q/DQ ops instead"
        )
    save_atomic(path, lambda tmp: _save_pt2(converted, ex, dynamic, tmp))


def _save_npz(path: Path, tensors: dict) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **tensors)


def _validate_onnx(out: Path, converted, res, sample, opts, p: Progress) -> dict:
    int8_path, float_path = out / ARTIFACTS["int8_onnx"], out / ARTIFACTS["float_onnx"]
    metrics: dict = {"onnx_checker": onnx_export.check(int8_path)}
    s_int8 = onnx_export.session(int8_path)
    s_float = onnx_export.session(float_path)
    metrics["onnx_parity_sqnr_db"] = onnx_export.parity_sqnr(s_int8, sample, res.quantized_outputs)
    metrics["onnx_output_sqnr_db"] = onnx_export.parity_sqnr(s_int8, sample, res.float_outputs)
    p(0.7, "parity checked; timing float vs int8")
    lat = onnx_export.latency_ms({"float": s_float, "int8": s_int8}, sample)
    metrics["latency_float_ms"] = round(lat["float"], 3)
    metrics["latency_int8_ms"] = round(lat["int8"], 3)
    metrics["speedup"] = round(lat["float"] / lat["int8"], 3) if lat["int8"] > 0 else None
    metrics["size_float_bytes"] = onnx_export.file_size(float_path)
    metrics["size_int8_bytes"] = onnx_export.file_size(int8_path)
    return metrics


# Below this float/int8 latency ratio the int8 file is reported as slower (timing noise stays above it).
SLOWER_THAN_FLOAT = 0.95


def _slower_than_float(metrics: dict, float_model: GraphModule) -> str:
    """Why int8 can lose on speed, said where the user will look (a deployment team expects a gain)."""
    why = "some int8 kernels are slower than their float versions on this CPU"
    if any(n.target is torch.ops.aten.conv3d.default for n in float_model.graph.nodes):
        why = "ONNX Runtime's int8 kernel for 3-D convolutions is slower than its float one"
    smaller = metrics["size_float_bytes"] / max(metrics["size_int8_bytes"], 1)
    if smaller < 1.5:  # tiny models: scales and zero points outweigh the weights saved
        advice = "on a model this small, Q/DQ overhead outweighs the int8 gain; keep it in float"
    else:
        advice = (
            f"it is still {smaller:.1f}x smaller; keep the slowest layers in float if latency matters more"
        )
    return (
        f"the int8 ONNX ran at {metrics['speedup']:.2f}x the speed of the float model on ONNX Runtime "
        f"CPU ({metrics['latency_int8_ms']:.2f} vs {metrics['latency_float_ms']:.2f} ms): {why}; {advice}."
    )


PARITY_FLOOR_DB = 35.0
NORM_OPS = ("InstanceNormalization", "LayerNormalization", "GroupNormalization")


def _low_parity(metrics: dict, unfused: list[dict]) -> str:
    """Why the ONNX file and the int8 torch model can drift apart (a style-transfer net read 32 dB)."""
    norms = sorted({u["op"] for u in unfused if u["op"] in NORM_OPS})
    where = (
        f"{' and '.join(norms)} between int8 layers, which run in float, amplify those one-step differences"
        if norms
        else "over many layers those one-step differences add up"
    )
    return (
        f"the int8 ONNX agrees with the int8 torch model to {metrics['onnx_parity_sqnr_db']:.1f} dB only: "
        f"ONNX Runtime's integer kernels and torch round a value that sits on a quantization step "
        f"differently, and {where}. The file itself reads {metrics['onnx_output_sqnr_db']:.1f} dB against "
        f"the float model (the int8 torch model {metrics['output_sqnr_db']:.1f} dB)."
    )


def _accuracy(opts, specs, float_model, out: Path) -> dict:
    xs, ys, classes = calibration.load_labelled_folder(opts.labels, specs, opts.normalize)
    sess = onnx_export.session(out / ARTIFACTS["int8_onnx"])
    correct_f = correct_q = 0
    with torch.no_grad():
        for i in range(0, len(xs), 64):
            x, y = xs[i : i + 64], ys[i : i + 64]
            correct_f += int((float_model(x).argmax(1) == y).sum())
            q = torch.from_numpy(onnx_export.run(sess, (x,))[0])
            correct_q += int((q.argmax(1) == y).sum())
    n = len(xs)
    return {
        "accuracy_float": round(correct_f / n, 4),
        "accuracy_int8": round(correct_q / n, 4),
        "accuracy_samples": n,
    }


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)
