"""The layered layout: edges point down, nodes never overlap, cycles and odd input do not break it."""

from __future__ import annotations

from itertools import pairwise

from core.graph_layout import compute_layout, layered_layout
from core.graphdoc import GraphDoc, GraphEdge, GraphNode
from tests.app.review_fixtures import random_dag

NODE_W = 170.0


def doc_of(edges: list[tuple[str, str]], extra=()) -> GraphDoc:
    ids = dict.fromkeys([*extra, *(x for e in edges for x in e)])
    return GraphDoc(
        "g", [GraphNode(id=i, label=i, op="op") for i in ids], [GraphEdge(a, b) for a, b in edges]
    )


def test_every_edge_of_a_300_node_dag_points_down():
    doc = random_dag(300)
    pos = layered_layout(doc)
    assert set(pos) == {n.id for n in doc.nodes}
    assert all(pos[e.dst][1] > pos[e.src][1] for e in doc.edges)


def test_nodes_in_a_row_do_not_overlap():
    pos = layered_layout(random_dag(300, seed=3), node_width=NODE_W, h_gap=20.0)
    rows: dict[float, list[float]] = {}
    for x, y in pos.values():
        rows.setdefault(y, []).append(x)
    for xs in rows.values():
        xs.sort()
        assert all(b - a >= NODE_W + 20.0 - 1e-6 for a, b in pairwise(xs))


def test_long_edges_get_bend_points_between_their_ends():
    layout = compute_layout(doc_of([("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]))
    bends = layout.routes[("a", "d")]
    ys = [layout.positions["a"][1], *(y for _, y in bends), layout.positions["d"][1]]
    assert len(bends) == 2 and ys == sorted(ys)


def test_a_chain_is_one_straight_column():
    pos = layered_layout(doc_of([("a", "b"), ("b", "c"), ("c", "d")]))
    assert len({x for x, _ in pos.values()}) == 1


def test_sources_sit_just_above_their_consumer():
    pos = layered_layout(doc_of([("x", "a"), ("a", "b"), ("b", "c"), ("w", "c")]))
    assert pos["w"][1] == pos["b"][1]


def test_a_cycle_is_laid_out_without_hanging():
    pos = layered_layout(doc_of([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]))
    assert len(pos) == 4 and len({p for p in pos.values()}) == 4


def test_empty_graph_and_unknown_edge_ends():
    assert compute_layout(GraphDoc("e", [], [])).positions == {}
    doc = GraphDoc(
        "g", [GraphNode(id="a", label="a", op="op")], [GraphEdge("a", "ghost"), GraphEdge("a", "a")]
    )
    assert list(layered_layout(doc)) == ["a"]


def test_layout_is_deterministic():
    doc = random_dag(120, seed=5)
    assert layered_layout(doc) == layered_layout(doc)
