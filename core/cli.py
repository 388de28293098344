"""The `qdq` command: quantize, inspect, presets, runs.

Exit codes: 0 ok, 2 input the user can fix (one line on stderr), 130 cancelled, 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from pathlib import Path

from core.errors import Cancelled, UserError
from core.presets import DEFAULT_PRESET, OBSERVERS, PRESETS, preset_ids

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_CANCELLED = 0, 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qdq",
        description="Quantize PyTorch models to int8 (PT2E) and export a deployment-grade ONNX file.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="quantize a model and write a run directory")
    q.add_argument("model", help=".pt2 ExportedProgram or .py recipe (build_model(), example_inputs())")
    q.add_argument("--out", required=True, help="run directory to write")
    q.add_argument("--preset", default=DEFAULT_PRESET, help=f"one of: {', '.join(preset_ids())}")
    q.add_argument("--calib", help="image folder, .npy (N, *input shape) or .npz (one array per input)")
    q.add_argument("--samples", type=int, default=64, help="calibration samples to use (default 64)")
    q.add_argument("--batch-size", type=int, default=8)
    q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (observers run there)")
    q.add_argument("--qat-epochs", type=int, default=0, help="fine-tune N epochs (quantization-aware)")
    q.add_argument("--labels", help="labelled image folder (one subfolder per class) for accuracy / QAT")
    q.add_argument(
        "--keep-float", action="append", default=[], metavar="PATTERN", help="layers to keep in float"
    )
    q.add_argument(
        "--observer",
        choices=OBSERVERS,
        help="activation observer (default: the preset's; where that is histogram, plain min/max ranges are "
        "tried too and the better output SQNR kept)",
    )
    q.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weights")
    q.add_argument(
        "--reference-representation", action="store_true", help="integer reference ops in the .pt2"
    )
    q.add_argument(
        "--normalize", default="imagenet", help="imagenet, none, or 'm1,m2,m3/s1,s2,s3' for images"
    )
    q.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and its checks")
    q.add_argument("--trust-code", action="store_true", help="allow running a .py recipe's code")
    q.add_argument("--db", help="project history database (default: the user data folder)")
    q.add_argument("--json-progress", action="store_true", help="print events as JSON lines on stdout")

    i = sub.add_parser("inspect", help="inputs, ops, parameters, and whether the model exports")
    i.add_argument("model")
    i.add_argument("--trust-code", action="store_true")
    i.add_argument("--json", action="store_true")

    pr = sub.add_parser("presets", help="explain every preset")
    pr.add_argument("--json", action="store_true")

    r = sub.add_parser("runs", help="list the project history")
    r.add_argument("--db")
    r.add_argument("--model", help="only runs of models whose path contains this text")
    r.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit becomes an error we explain
    try:
        return {"quantize": _quantize, "inspect": _inspect, "presets": _presets, "runs": _runs}[args.command](
            args
        )
    except (KeyboardInterrupt, Cancelled):
        print("qdq: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except UserError as e:
        print(f"qdq: error: {e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_USER
    except Exception as e:
        from core.jobs.execute import user_message

        msg = user_message(e)
        if msg:
            print(f"qdq: error: {msg}", file=sys.stderr)
            return EXIT_USER
        if args.debug:
            traceback.print_exc()
        print(f"qdq: internal error: {type(e).__name__}: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_BUG


def _quantize(args) -> int:
    from core.jobs.execute import run_quantize
    from core.jobs.spec import Event, QuantizeOptions

    opts = QuantizeOptions(
        model=args.model,
        out_dir=args.out,
        preset=args.preset,
        calib=args.calib,
        samples=args.samples,
        batch_size=args.batch_size,
        device=args.device,
        qat_epochs=args.qat_epochs,
        labels=args.labels,
        keep_float=tuple(args.keep_float),
        observer=args.observer,
        per_channel=not args.per_tensor,
        reference_representation=args.reference_representation,
        trust_code=args.trust_code,
        normalize=args.normalize,
        export_onnx=not args.no_onnx,
        db=args.db,
    )
    if args.json_progress:

        def emit(event: dict) -> None:
            event = dict(event)
            kind = event.pop("type")
            print(Event(kind, "cli", event).to_json(), flush=True)

        try:
            result = run_quantize(opts, emit)
        except UserError as e:
            print(
                Event("error", "cli", {"message": str(e), "details": "", "user_error": True}).to_json(),
                flush=True,
            )
            raise
        print(Event("result", "cli", result).to_json(), flush=True)
        return EXIT_OK

    printer = _ConsolePrinter()
    try:
        result = run_quantize(opts, printer)
    finally:
        printer.done()
    _summary(result)
    return EXIT_OK


class _ConsolePrinter:
    """One progress line that rewrites itself on a terminal, erased at the end so an error stays the
    only line; scripts (stderr not a terminal) get no progress chatter, --json-progress is for them."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.stage = ""
        self.last = 0.0

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "stage":
            self.stage = event["name"]
        elif kind == "progress" and self.tty:
            now = time.monotonic()
            if now - self.last < 0.1 and event["fraction"] < 1:
                return
            self.last = now
            eta = f", about {event['eta_s']:.0f} s left" if event.get("eta_s") else ""
            line = f"[{event['fraction'] * 100:5.1f}%] {self.stage}: {event['message']}{eta}"
            print(f"\r\033[K{line[:120]}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _summary(result: dict) -> None:
    r = result["report"]
    m = r["metrics"]

    def f(key, unit=""):
        v = m.get(key)
        return "n/a" if v is None else f"{v:.4g}{unit}" if isinstance(v, float) else f"{v}{unit}"

    print(f"run {result['run_id']}: {result['out_dir']}")
    print(f"  output SQNR vs float  {f('output_sqnr_db', ' dB')}")
    if each := m.get("outputs_sqnr_db"):
        print("    each output         " + ", ".join(f"{k} {v:.4g} dB" for k, v in each.items()))
    if "int8_onnx" in r["artifacts"]:
        print(f"  ONNX parity           {f('onnx_parity_sqnr_db', ' dB')}")
        print(f"  size float -> int8    {f('size_float_bytes')} -> {f('size_int8_bytes')} bytes")
        print(
            f"  latency float -> int8 {f('latency_float_ms', ' ms')} -> {f('latency_int8_ms', ' ms')} ({f('speedup', 'x')})"
        )
    else:  # parity, sizes and latencies are measured on the ONNX files
        pt2 = Path(result["out_dir"]) / r["artifacts"]["int8_pt2"]
        print(f"  int8 program          {pt2.name}, {pt2.stat().st_size:,} bytes (no ONNX file: --no-onnx)")
    if m.get("accuracy_float") is not None:
        print(f"  accuracy float / int8 {f('accuracy_float')} / {f('accuracy_int8')}")
    for w in r["warnings"]:
        print(f"  warning: {w}")


def _inspect(args) -> int:
    from core.engine.inspect import inspect_model

    info = inspect_model(args.model, args.trust_code)
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    print(f"{info['path']} ({info['format']}, {info['params']:,} parameters)")
    for i in info["inputs"]:
        print(f"  input {i['name']}: {tuple(i['shape'])} {i['dtype']}")
    print(f"  exports: {'yes' if info['exportable'] else 'no'}{' - ' + info['why'] if info['why'] else ''}")
    for op, n in list(info["ops"].items())[:15]:
        print(f"  {n:5d} {op}")
    return EXIT_OK


def _presets(args) -> int:
    if args.json:
        print(json.dumps([p.as_dict() for p in PRESETS], indent=1))
        return EXIT_OK
    for p in PRESETS:
        default = " (default)" if p.id == DEFAULT_PRESET else ""
        print(f"{p.id}{default} - {p.title}")
        print(f"  for:          {p.hardware}")
        print(f"  what changes: {p.changes}")
        print(f"  choose when:  {p.choose_when}\n")
    return EXIT_OK


def _runs(args) -> int:
    from core.store import open_store

    store = open_store(args.db)
    try:
        store.mark_interrupted()
        runs = store.list_runs(model_filter=args.model)
    finally:
        store.close()
    if args.json:
        print(json.dumps(runs, indent=1, default=str))
        return EXIT_OK
    for r in runs:
        sq = (r.get("metrics") or {}).get("output_sqnr_db")
        started = (r["started_at"] or "")[:19].replace("T", " ")
        print(
            f"{r['id']:5d} {r['status']:<11} {r['preset']:<20} {started:<19} {sq if sq is not None else '':>8} {r['model_path']}"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
