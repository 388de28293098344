"""Scene items for one laid-out graph: nodes draw less when zoomed out so thousands pan smoothly."""

from __future__ import annotations

from functools import cache
from itertools import pairwise

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QStyleOptionGraphicsItem

from app.review.quant import fmt_db
from app.review.style import ACCENT, NO_HEAT, heat_color, kind_style, node_kind
from core.graph_layout import Layout
from core.graphdoc import GraphDoc, GraphNode

NODE_W, NODE_H = 170.0, 44.0
TEXT_LOD = 0.45  # below this zoom a label would be a few pixels high: draw only the box
SHAPE_LOD = 0.2  # below this, a plain rectangle is indistinguishable from a rounded one


@cache
def _fonts() -> tuple[QFont, QFont]:
    """Title and subtitle fonts, made once (and only after the application exists)."""
    title, sub = QFont(), QFont()
    title.setPointSizeF(9.5)
    title.setBold(True)
    sub.setPointSizeF(8.0)
    return title, sub


class NodeItem(QGraphicsItem):
    def __init__(self, node: GraphNode, x: float, y: float, sqnr_db: float | None):
        super().__init__()
        self.node = node
        self.sqnr_db = sqnr_db
        self.fill, self.border, self.text_color = kind_style(node_kind(node))
        self.heat: QColor | None = None
        self.selected = False
        self._rect = QRectF(-NODE_W / 2, -NODE_H / 2, NODE_W, NODE_H)
        self.setPos(x, y)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        pad = 16.0
        title_font, sub_font = _fonts()
        self._title = QFontMetricsF(title_font).elidedText(
            node.label, Qt.TextElideMode.ElideMiddle, NODE_W - pad
        )
        sub = node.op if sqnr_db is None else f"{node.op} · {fmt_db(sqnr_db)} dB"
        self._sub = QFontMetricsF(sub_font).elidedText(sub, Qt.TextElideMode.ElideRight, NODE_W - pad)
        tip = [f"<b>{node.label}</b>", f"op: {node.op}", f"kind: {node_kind(node).replace('_', ' ')}"]
        if node.layer:
            tip.append(f"layer: {node.layer}")
        if sqnr_db is not None:
            tip.append(f"SQNR: {fmt_db(sqnr_db)} dB")
        self.setToolTip("<br>".join(tip))

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-3, -3, 3, 3)

    def fill_color(self) -> QColor:
        return self.heat if self.heat is not None else self.fill

    def set_heat(self, on: bool) -> None:
        self.heat = (
            None if not on else heat_color(self.sqnr_db) if self.sqnr_db is not None else QColor(NO_HEAT)
        )
        self.update()

    def set_selected(self, on: bool) -> None:
        self.selected = on
        self.setZValue(2 if on else 1)
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        fill = self.fill_color()
        if lod < SHAPE_LOD:
            painter.fillRect(self._rect, QColor(ACCENT) if self.selected else fill)
            return
        pen = QPen(QColor(ACCENT), 3) if self.selected else QPen(self.border, 1.2)
        pen.setCosmetic(self.selected)
        painter.setPen(pen)
        painter.setBrush(fill)
        painter.drawRoundedRect(self._rect, 7, 7)
        if lod < TEXT_LOD:
            return
        text_color = QColor("#1f2328") if self.heat is not None else self.text_color
        title_font, sub_font = _fonts()
        painter.setPen(text_color)
        painter.setFont(title_font)
        top = self._rect.adjusted(8, 3, -8, -NODE_H / 2)
        painter.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, self._title)
        painter.setFont(sub_font)
        bottom = self._rect.adjusted(8, NODE_H / 2 + 1, -8, -3)
        painter.drawText(bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, self._sub)


def edge_path(points: list[QPointF]) -> QPainterPath:
    """A smooth vertical curve through the points, ending in a small arrowhead."""
    path = QPainterPath(points[0])
    for a, b in pairwise(points):
        mid = (a.y() + b.y()) / 2
        path.cubicTo(QPointF(a.x(), mid), QPointF(b.x(), mid), b)
    tip = points[-1]
    path.moveTo(tip.x() - 4.5, tip.y() - 7)
    path.lineTo(tip)
    path.lineTo(tip.x() + 4.5, tip.y() - 7)
    return path


def layer_nodes(doc: GraphDoc) -> dict[str, str]:
    """Layer name -> the node standing for it: its first compute node when Q/DQ nodes share the name."""
    out: dict[str, str] = {}
    for node in doc.nodes:
        if node.layer:
            out.setdefault(node.layer, node.id)
    for node in reversed(doc.nodes):
        if node.layer and node.kind in ("compute", "kept_float"):
            out[node.layer] = node.id
    return out


class GraphScene(QGraphicsScene):
    """All items of one GraphDoc, indexed by node id and layer name for selection and the heat overlay."""

    def __init__(self, doc: GraphDoc, layout: Layout, sqnr: dict[str, float], edge_color: QColor):
        super().__init__()
        self.doc = doc
        self.nodes: dict[str, NodeItem] = {}
        self.by_layer = layer_nodes(doc)
        self.by_module: dict[str, str] = {}
        self.edges_of: dict[str, list[QGraphicsPathItem]] = {}
        self._pen = QPen(edge_color, 1.3)
        self._pen.setCosmetic(True)
        self._hot_pen = QPen(QColor(ACCENT), 2.6)
        self._hot_pen.setCosmetic(True)
        self._hot: list[QGraphicsPathItem] = []
        self.selected: str | None = None
        for node in doc.nodes:
            if node.id not in layout.positions or node.id in self.nodes:
                continue
            item = NodeItem(node, *layout.positions[node.id], sqnr.get(node.layer) if node.layer else None)
            item.setZValue(1)
            self.addItem(item)
            self.nodes[node.id] = item
            if node.module:
                self.by_module.setdefault(node.module, node.id)
        half = NODE_H / 2
        for e in doc.edges:
            if e.src not in self.nodes or e.dst not in self.nodes or e.src == e.dst:
                continue
            (x0, y0), (x1, y1) = layout.positions[e.src], layout.positions[e.dst]
            down = y1 > y0
            points = [QPointF(x0, y0 + (half if down else -half))]
            points += [QPointF(x, y) for x, y in layout.routes.get((e.src, e.dst), [])]
            points.append(QPointF(x1, y1 - (half if down else -half)))
            item = self.addPath(edge_path(points), self._pen)
            item.setZValue(0)
            self.edges_of.setdefault(e.src, []).append(item)
            self.edges_of.setdefault(e.dst, []).append(item)
        margin = 60.0
        self.setSceneRect(QRectF(-margin, -margin, layout.width + 2 * margin, layout.height + 2 * margin))
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)

    def select(self, node_id: str | None) -> None:
        if self.selected in self.nodes:
            self.nodes[self.selected].set_selected(False)
        for edge in self._hot:
            edge.setPen(self._pen)
            edge.setZValue(0)
        self._hot = []
        self.selected = node_id if node_id in self.nodes else None
        if self.selected:
            self.nodes[self.selected].set_selected(True)
            self._hot = self.edges_of.get(self.selected, [])
            for edge in self._hot:
                edge.setPen(self._hot_pen)
                edge.setZValue(0.5)

    def set_heat(self, on: bool) -> None:
        for item in self.nodes.values():
            item.set_heat(on)

    def counterpart(self, node: GraphNode) -> str | None:
        """The node standing for the same layer or module in this graph (for switching graphs)."""
        if node.layer and node.layer in self.by_layer:
            return self.by_layer[node.layer]
        if node.id in self.nodes:
            return node.id
        return self.by_module.get(node.module) if node.module else None
