"""How long the layered layout takes (the window needs < 1 s for 2,000 nodes); median of 5 runs.

Two shapes: the quantized ResNet-like graphs the app shows, and a wide random DAG as a worst case for
crossing reduction. Run: python -m tests.bench.bench_graph_layout
"""

from __future__ import annotations

import statistics
import time

from core.graph_layout import compute_layout
from tests.app.review_fixtures import random_dag, synthetic_graph

SIZES = (200, 2000, 5000)
SHAPES = (("resnet-shaped, quantized", synthetic_graph), ("random DAG", random_dag))


def median_seconds(doc, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        compute_layout(doc)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    for shape, make in SHAPES:
        for size in SIZES:
            doc = make(size)
            ms = median_seconds(doc) * 1000
            print(f"{shape:>24}: {len(doc.nodes):>5} nodes {len(doc.edges):>5} edges, median {ms:7.1f} ms")


if __name__ == "__main__":
    main()
