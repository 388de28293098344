"""`make bench`: every benchmark, one after another (never part of `make test`)."""

from __future__ import annotations

from tests.bench import bench_engine, bench_export, bench_graph_layout, bench_stems, bench_store, onnx_vs_ort

if __name__ == "__main__":
    for name, bench in (
        ("engine overhead", bench_engine.main),
        ("ONNX: ours vs onnxruntime quantize_static", lambda: onnx_vs_ort.main(["--extra"])),
        ("ONNX: space-to-depth stems, A/B", bench_stems.main),
        ("ONNX export time of an unrolled cell, A/B", bench_export.main),
        ("project history store", bench_store.main),
        ("graph layout", bench_graph_layout.main),
    ):
        print(f"\n=== {name}")
        bench()
