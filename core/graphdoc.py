"""A plain, JSON-serialisable description of a graph for viewers (no torch, no Qt).

`graph.json` in a run directory holds {"float": GraphDoc, "quantized": GraphDoc}. Node kinds drive the
colours in the window: input, output, compute, quantize, dequantize, kept_float, constant, other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NODE_KINDS = ("input", "output", "compute", "quantize", "dequantize", "kept_float", "constant", "other")


@dataclass(frozen=True)
class GraphNode:
    id: str
    label: str
    op: str
    kind: str = "other"
    module: str = ""
    layer: str | None = None  # report layer name when this node is a reported layer
    shape: list[int | str] | None = None
    dtype: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphEdge:
    src: str
    dst: str


@dataclass(frozen=True)
class GraphDoc:
    name: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": [asdict(n) for n in self.nodes],
            "edges": [asdict(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphDoc:
        return cls(
            name=d.get("name", ""),
            nodes=[GraphNode(**n) for n in d.get("nodes", [])],
            edges=[GraphEdge(**e) for e in d.get("edges", [])],
        )

    def node(self, node_id: str) -> GraphNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)


def load_graphs(path: str | Path) -> dict[str, GraphDoc]:
    """Read a run's graph.json into {"float": GraphDoc, "quantized": GraphDoc}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: GraphDoc.from_dict(v) for k, v in data.items()}


def dump_graphs(graphs: dict[str, GraphDoc]) -> str:
    return json.dumps({k: g.to_dict() for k, g in graphs.items()})
