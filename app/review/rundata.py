"""Read a run directory for the review views, tolerating missing or damaged files.

A run may lack tensors.npz (analysis skipped), graph.json (an old engine) or be no run folder at all;
each gap becomes a sentence in `problems` and the views show what is there instead of failing.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.graphdoc import GraphDoc, load_graphs


@dataclass
class RunData:
    out_dir: Path
    report: dict = field(default_factory=dict)
    graphs: dict[str, GraphDoc] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    has_tensors: bool = False

    def __post_init__(self):
        self._layers = {layer.get("name"): layer for layer in self.layers}

    @property
    def layers(self) -> list[dict]:
        return list(self.report.get("layers") or [])

    @property
    def label(self) -> str:
        """How people refer to the run: 'run 7', or the folder name for a run outside the history."""
        run_id = self.report.get("run_id")
        return f"run {run_id}" if run_id is not None else f"the run in '{self.out_dir.name}'"

    def layer(self, name: str | None) -> dict | None:
        return self._layers.get(name)

    def channel_ranges(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        lo, hi = self.tensors.get(f"w_min::{name}"), self.tensors.get(f"w_max::{name}")
        return None if lo is None or hi is None else (lo, hi)

    def weight_range(self, name: str) -> tuple[float, float] | None:
        ranges = self.channel_ranges(name)
        if ranges is None or not ranges[0].size:
            return None
        return float(ranges[0].min()), float(ranges[1].max())

    def histogram(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        counts, edges = self.tensors.get(f"act_hist::{name}"), self.tensors.get(f"act_edges::{name}")
        if counts is None or edges is None or len(edges) != len(counts) + 1:
            return None
        return counts, edges

    def outputs(self) -> tuple[np.ndarray, np.ndarray] | None:
        a, b = self.tensors.get("out_float"), self.tensors.get("out_int8")
        if a is None or b is None:
            return None
        n = min(len(a), len(b))
        return a[:n].ravel(), b[:n].ravel()


def _artifact(report: dict, key: str, default: str) -> str:
    return (report.get("artifacts") or {}).get(key) or default


def load_run_data(out_dir: str | Path) -> RunData:
    folder = Path(out_dir)
    problems: list[str] = []
    report: dict = {}
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"There is no report.json in {folder}: it is not a finished run folder.")
    except (OSError, ValueError) as exc:
        problems.append(f"report.json could not be read ({exc}).")
    if not isinstance(report, dict):
        problems.append("report.json does not hold a report.")
        report = {}

    graphs: dict[str, GraphDoc] = {}
    graph_file = folder / _artifact(report, "graph", "graph.json")
    try:
        graphs = load_graphs(graph_file)
    except FileNotFoundError:
        problems.append("This run has no graph.json, so the graph cannot be drawn.")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        problems.append(f"graph.json could not be read ({exc}).")

    tensors: dict[str, np.ndarray] = {}
    tensor_file = folder / _artifact(report, "tensors", "tensors.npz")
    has_tensors = False
    try:
        with np.load(tensor_file, allow_pickle=False) as npz:
            tensors = {key: np.asarray(npz[key]) for key in npz.files}
        has_tensors = True
    except FileNotFoundError:
        problems.append(
            "This run has no tensors.npz (analysis was skipped), so histograms, weight ranges and "
            "the output scatter are not available."
        )
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        problems.append(f"tensors.npz could not be read ({exc}).")
    return RunData(folder, report, graphs, tensors, problems, has_tensors)


def sqnr_deltas(current: RunData, previous: RunData) -> dict[str, float | None]:
    """Per-layer SQNR change (current minus previous); None where either run has no SQNR."""
    out: dict[str, float | None] = {}
    for layer in current.layers:
        before = previous.layer(layer.get("name"))
        now, then = layer.get("sqnr_db"), (before or {}).get("sqnr_db")
        out[layer.get("name")] = None if now is None or then is None else now - then
    return out
