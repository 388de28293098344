"""How long the layered layout takes on ResNet-shaped quantized graphs (the window needs < 1 s at 2,000).

Run: python -m tests.bench.bench_graph_layout
"""

from __future__ import annotations

import statistics
import time

from core.graph_layout import compute_layout
from tests.app.review_fixtures import synthetic_graph

SIZES = (200, 2000, 5000)


def median_seconds(doc, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        compute_layout(doc)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    for size in SIZES:
        doc = synthetic_graph(size)
        seconds = median_seconds(doc)
        print(f"{len(doc.nodes):>6} nodes {len(doc.edges):>6} edges: median {seconds * 1000:8.1f} ms (5 runs)")


if __name__ == "__main__":
    main()
