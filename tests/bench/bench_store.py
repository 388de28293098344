"""How fast the history is: listing 10,000 runs (target < 100 ms) and the cost of recording one run.

python -m tests.bench.bench_store
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select

from core.store import Run, open_store

RUNS = 10_000
LIST_REPEATS = 7
WRITES = 50
LIST_TARGET_MS = 100.0
LAYERS = [
    {
        "name": f"layer{i}.conv",
        "op": "conv2d",
        "module": f"layer{i}",
        "quantized": True,
        "weight_scale": {"min": 0.001, "max": 0.02},
        "act_scale": 0.05,
        "act_zero_point": 128,
        "act_min": -6.0,
        "act_max": 6.5,
        "sqnr_db": 30.0 + i / 10,
    }
    for i in range(20)
]
METRICS = {
    "output_sqnr_db": 31.5,
    "onnx_parity_sqnr_db": 52.0,
    "size_float_bytes": 46_800_000,
    "size_int8_bytes": 11_800_000,
    "latency_float_ms": 19.0,
    "latency_int8_ms": 5.5,
}


def _fill(store, count: int) -> None:
    """Bulk-insert `count` finished runs that look like real ones (setup, not what is measured)."""
    seed = store.create_run("models/resnet18.pt2", "onnxruntime", {"samples": 64}, "cpu", None, os.getpid())
    with store.engine.connect() as conn:
        project_id, model_id = conn.execute(select(Run.project_id, Run.model_id).where(Run.id == seed)).one()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [
        {
            "project_id": project_id,
            "model_id": model_id,
            "model_path": f"models/model{i % 50}.pt2",
            "preset": "onnxruntime",
            "options": {"samples": 64, "batch_size": 8, "device": "auto"},
            "device": "cpu",
            "status": "succeeded" if i % 10 else "failed",
            "started_at": start + timedelta(minutes=i),
            "finished_at": start + timedelta(minutes=i, seconds=40),
            "out_dir": f"runs/{i}",
            "metrics": METRICS,
            "error": None if i % 10 else "calibration data has the wrong shape",
            "worker_pid": 4242,
        }
        for i in range(count - 1)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(Run), rows)


def _timings_ms(fn, repeats: int) -> tuple[float, float]:
    """(median, best): the best shows the cost when a shared machine is busy with other work."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "bench.sqlite") as store:
        _fill(store, RUNS)
        assert len(store.list_runs()) == RUNS  # also warms the pool and the statement cache

        def record_run():
            run_id = store.create_run(
                "models/resnet18.pt2", "onnxruntime", {"samples": 64}, "cpu", "runs/x", os.getpid()
            )
            store.finish_run(run_id, "succeeded", metrics=METRICS, layers=LAYERS)

        timings = {
            f"list_runs() over {RUNS:,} runs": _timings_ms(store.list_runs, LIST_REPEATS),
            "list_runs(limit=100)": _timings_ms(lambda: store.list_runs(limit=100), LIST_REPEATS),
            "create_run + finish_run, 20 layers": _timings_ms(record_run, WRITES),
            "get_run, 20 layers": _timings_ms(lambda: store.get_run(RUNS + 1), WRITES),
        }

    print(f"{'history store':<38} {'median':>10} {'best':>10}  target")
    for i, (name, (median, best)) in enumerate(timings.items()):
        target = f"< {LIST_TARGET_MS:.0f} ms" if i == 0 else ""
        print(f"{name:<38} {median:>7.2f} ms {best:>7.2f} ms  {target}")
    list_median, _ = next(iter(timings.values()))
    print(f"list target: {'ok' if list_median < LIST_TARGET_MS else 'SLOWER THAN TARGET'}")
    return {name: median for name, (median, _) in timings.items()}


if __name__ == "__main__":
    main()
