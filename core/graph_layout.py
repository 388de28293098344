"""Layered top-down layout of a GraphDoc (Sugiyama style) in pure Python.

It lives outside the app so the window can run it on a worker thread, tests can check it without a
display, and the benchmark can time it alone. Steps: reverse back edges (graphs should be DAGs, a cycle
must not hang the viewer), longest-path layering, dummy nodes on long edges so they bend around nodes,
barycentric crossing reduction (keeping the best sweep), then x positions that sit each node under its
neighbours without overlaps (weighted isotonic regression per layer, which is exact and linear).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise

from core.graphdoc import GraphDoc

Point = tuple[float, float]


@dataclass(frozen=True)
class Layout:
    """Node centres, the bend points of edges that cross several layers, and the drawing's extent."""

    positions: dict[str, Point]
    routes: dict[tuple[str, str], list[Point]]
    width: float
    height: float


def layered_layout(doc: GraphDoc, **options) -> dict[str, Point]:
    """Node id -> (x, y) centre; y grows downward along the edges."""
    return compute_layout(doc, **options).positions


def compute_layout(
    doc: GraphDoc,
    *,
    node_width: float = 170.0,
    node_height: float = 44.0,
    h_gap: float = 26.0,
    v_gap: float = 52.0,
    sweeps: int = 4,
    dummy_width: float = 14.0,
) -> Layout:
    ids = list(dict.fromkeys(n.id for n in doc.nodes))
    if not ids:
        return Layout({}, {}, 0.0, 0.0)
    index = {nid: i for i, nid in enumerate(ids)}
    n = len(ids)
    pairs = {(index[e.src], index[e.dst]) for e in doc.edges if e.src in index and e.dst in index}
    edges = _break_cycles(n, sorted((u, v) for u, v in pairs if u != v))
    layer = _layers(n, edges)
    graph = _ProperGraph(n, layer, edges)
    order = _reduce_crossings(graph, sweeps)
    widths = [dummy_width if graph.is_dummy(v) else node_width for v in range(graph.size)]
    xs = _x_positions(graph, order, widths, h_gap)

    left = min(xs[v] - widths[v] / 2 for v in range(graph.size))
    row = node_height + v_gap

    def point(v: int) -> Point:
        return (xs[v] - left, graph.layer[v] * row + node_height / 2)

    positions = {ids[v]: point(v) for v in range(n)}
    routes = {}
    for (u, v), chain in graph.chains.items():
        src, dst, bends = ids[u], ids[v], [point(d) for d in chain]
        if (u, v) not in pairs:  # an edge reversed to break a cycle: report it as drawn, src -> dst
            src, dst, bends = dst, src, bends[::-1]
        routes[(src, dst)] = bends
    width = max(xs[v] + widths[v] / 2 for v in range(graph.size)) - left
    height = (max(graph.layer) + 1) * row - v_gap
    return Layout(positions, routes, width, height)


def _break_cycles(n: int, edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Reverse the edges that close a cycle (found by an iterative depth-first search)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        succ[u].append(v)
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    back = set()
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            u, it = stack[-1]
            for v in it:
                if state[v] == 1:
                    back.add((u, v))
                elif state[v] == 0:
                    state[v] = 1
                    stack.append((v, iter(succ[v])))
                    break
            else:
                state[u] = 2
                stack.pop()
    if not back:
        return edges
    return sorted({(v, u) if (u, v) in back else (u, v) for u, v in edges})


def _layers(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Longest-path layering, then nodes slide down towards their consumers where that shortens edges.

    Without the second step every weight, with its dequantize, would sit in the top row with a long
    edge down to where it is used. Sliding a node down lengthens its in-edges and shortens its
    out-edges, so it pays when it has at least as many out-edges; sinks-first order lets chains follow.
    """
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
    layer = [0] * n
    ready = [v for v in range(n) if indeg[v] == 0]
    remaining = list(indeg)
    order = []
    while ready:
        u = ready.pop()
        order.append(u)
        for v in succ[u]:
            layer[v] = max(layer[v], layer[u] + 1)
            remaining[v] -= 1
            if remaining[v] == 0:
                ready.append(v)
    for v in reversed(order):
        if succ[v] and len(succ[v]) >= indeg[v]:
            layer[v] = min(layer[s] for s in succ[v]) - 1
    return layer


class _ProperGraph:
    """The layered graph with dummy nodes, so every kept edge joins adjacent layers.

    Dummies are capped (shortest edges first) so a node feeding hundreds of distant layers cannot
    blow the graph up; edges over the cap are drawn straight and left out of the ordering.
    """

    def __init__(self, n: int, layer: list[int], edges: list[tuple[int, int]]):
        self.real = n
        self.layer = list(layer)
        self.up: list[list[int]] = [[] for _ in range(n)]
        self.down: list[list[int]] = [[] for _ in range(n)]
        self.chains: dict[tuple[int, int], list[int]] = {}
        budget = 4 * n + 1000
        for u, v in sorted(edges, key=lambda e: layer[e[1]] - layer[e[0]]):
            span = layer[v] - layer[u]
            if span > 1 and span - 1 > budget:
                self.chains[(u, v)] = []
                continue
            chain = [self._add_dummy(layer[u] + k) for k in range(1, span)]
            budget -= len(chain)
            path = [u, *chain, v]
            for a, b in pairwise(path):
                self.down[a].append(b)
                self.up[b].append(a)
            if chain:
                self.chains[(u, v)] = chain

    @property
    def size(self) -> int:
        return len(self.layer)

    def is_dummy(self, v: int) -> bool:
        return v >= self.real

    def _add_dummy(self, layer: int) -> int:
        self.layer.append(layer)
        self.up.append([])
        self.down.append([])
        return len(self.layer) - 1


def _initial_order(g: _ProperGraph) -> list[list[int]]:
    """Depth-first order from the sources, so a node's descendants start next to it."""
    rows: list[list[int]] = [[] for _ in range(max(g.layer) + 1)]
    seen = [False] * g.size
    for root in range(g.size):
        if seen[root] or g.up[root]:
            continue
        stack = [root]
        while stack:
            v = stack.pop()
            if seen[v]:
                continue
            seen[v] = True
            rows[g.layer[v]].append(v)
            stack.extend(reversed(g.down[v]))
    return rows


def _reduce_crossings(g: _ProperGraph, sweeps: int) -> list[list[int]]:
    rows = _initial_order(g)
    best, best_cross = [list(r) for r in rows], _crossings(g, rows)
    pos = [0] * g.size
    for r in rows:
        for i, v in enumerate(r):
            pos[v] = i
    for sweep in range(2 * sweeps):
        downward = sweep % 2 == 0
        span = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        for li in span:
            neigh = g.up if downward else g.down

            def bary(v: int, neigh=neigh) -> tuple[float, int]:
                ns = neigh[v]
                return (sum(pos[u] for u in ns) / len(ns) if ns else pos[v], pos[v])

            rows[li].sort(key=bary)
            for i, v in enumerate(rows[li]):
                pos[v] = i
        cross = _crossings(g, rows)
        if cross < best_cross:
            best, best_cross = [list(r) for r in rows], cross
        if best_cross == 0:
            break
    return best


def _crossings(g: _ProperGraph, rows: list[list[int]]) -> int:
    """Edge crossings between adjacent layers, counted as inversions (O(E log V) per layer pair)."""
    pos = {}
    for r in rows:
        for i, v in enumerate(r):
            pos[v] = i
    total = 0
    for r in rows[:-1]:
        targets = [pos[w] for v in r for w in sorted(g.down[v], key=pos.__getitem__)]
        seen: list[int] = []
        for t in targets:
            k = bisect_left(seen, t + 1)
            total += len(seen) - k
            seen.insert(k, t)
    return total


def _x_positions(g: _ProperGraph, rows: list[list[int]], widths: list[float], gap: float) -> list[float]:
    """Alternate passes pulling each node to the mean x of its neighbours above, below, then both."""
    xs = [0.0] * g.size
    for r in rows:
        x = 0.0
        for v in r:
            xs[v] = x + widths[v] / 2
            x += widths[v] + gap
        shift = x / 2
        for v in r:
            xs[v] -= shift
    both = [a + b for a, b in zip(g.up, g.down, strict=True)]
    for neigh in (g.up, g.down, g.up, g.down, both, both):
        for r in rows:
            desired = [sum(xs[u] for u in neigh[v]) / len(neigh[v]) if neigh[v] else xs[v] for v in r]
            weights = [4.0 if g.is_dummy(v) else 1.0 for v in r]
            seps = [(widths[a] + widths[b]) / 2 + gap for a, b in pairwise(r)]
            for v, x in zip(r, _spread(desired, weights, seps), strict=True):
                xs[v] = x
    return xs


def _spread(desired: list[float], weights: list[float], seps: list[float]) -> list[float]:
    """Closest positions (weighted least squares) to `desired` that keep order and the separations.

    With offsets c_i = sum of the separations before i, x_i = y_i + c_i and the constraints become
    y non-decreasing: pool-adjacent-violators solves that exactly in linear time.
    """
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    blocks: list[list[float]] = []  # [weight, weighted sum, count]
    for d, w, c in zip(desired, weights, offsets, strict=True):
        blocks.append([w, w * (d - c), 1])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            w2, s2, n2 = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += s2
            blocks[-1][2] += n2
    out = []
    for w, s, count in blocks:
        out.extend([s / w] * int(count))
    return [y + c for y, c in zip(out, offsets, strict=True)]
