"""A zoomable, pannable view of a run's float and quantized graphs, speaking in node ids.

Layout runs on a thread pool (big graphs take a noticeable fraction of a second); the view shows
"Laying out…" meanwhile and drops results that a newer load made stale. Switching graphs keeps the
place: the layer in the middle of the view (or the selected one) stays in the middle.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, QPoint, QPointF, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QLabel, QWidget

from app.review.graph_items import GraphScene, NodeItem, layer_nodes
from app.review.style import ACCENT
from core.graph_layout import Layout, compute_layout
from core.graphdoc import GraphDoc, GraphNode

MIN_SCALE, MAX_SCALE = 0.02, 3.0
READABLE_SCALE = 0.75  # the zoom a first look opens at when fitting would make labels unreadable


class _LayoutSignals(QObject):
    done = Signal(int, str, object, str)  # generation, graph key, Layout or None, error


class _LayoutTask(QRunnable):
    def __init__(self, generation: int, key: str, doc: GraphDoc):
        super().__init__()
        self.generation, self.key, self.doc = generation, key, doc
        self.signals = _LayoutSignals()

    def run(self) -> None:
        try:
            layout, error = compute_layout(self.doc), ""
        except Exception as exc:  # a malformed graph must not take the window down
            layout, error = None, f"{type(exc).__name__}: {exc}"
        self.signals.done.emit(self.generation, self.key, layout, error)


class Minimap(QWidget):
    """The whole graph in miniature with the visible area framed; click or drag to move there."""

    HEIGHT, MAX_WIDTH, MIN_WIDTH = 200, 170, 56

    def __init__(self, view: GraphView):
        super().__init__(view)
        self.view = view
        self.pixmap = QPixmap()
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        self.hide()

    def refresh(self) -> None:
        scene = self.view.scene()
        rect = scene.sceneRect()
        if not isinstance(scene, GraphScene) or rect.isEmpty():
            self.hide()
            return
        width = int(min(max(self.HEIGHT * rect.width() / rect.height(), self.MIN_WIDTH), self.MAX_WIDTH))
        height = (
            int(min(self.HEIGHT, width * rect.height() / rect.width()))
            if width == self.MAX_WIDTH
            else self.HEIGHT
        )
        self.setFixedSize(width, max(height, 40))
        self.pixmap = QPixmap(self.size())
        self.pixmap.fill(self.view.backgroundBrush().color())
        painter = QPainter(self.pixmap)
        scene.render(painter, QRectF(self.pixmap.rect()), rect, Qt.AspectRatioMode.IgnoreAspectRatio)
        painter.end()
        self.view.place_overlays()
        self.show()
        self.update()

    def _to_scene(self, pos: QPointF) -> QPointF:
        rect = self.view.scene().sceneRect()
        return QPointF(
            rect.left() + pos.x() / self.width() * rect.width(),
            rect.top() + pos.y() / self.height() * rect.height(),
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self.pixmap)
        rect = self.view.scene().sceneRect()
        seen = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        sx, sy = self.width() / rect.width(), self.height() / rect.height()
        frame = QRectF(
            (seen.left() - rect.left()) * sx,
            (seen.top() - rect.top()) * sy,
            seen.width() * sx,
            seen.height() * sy,
        )
        painter.setPen(QPen(QColor(ACCENT), 2))
        painter.setBrush(QColor(9, 105, 218, 40))
        painter.drawRect(frame.intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1)))
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.view.centerOn(self._to_scene(event.position()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.view.centerOn(self._to_scene(event.position()))


class GraphView(QGraphicsView):
    nodeSelected = Signal(str)
    layoutFinished = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlags(
            QGraphicsView.OptimizationFlag.DontSavePainterState
            | QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing
        )
        self.setBackgroundBrush(self.palette().color(QPalette.ColorRole.Base))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._blank = QGraphicsScene(self)
        self.setScene(self._blank)
        self.docs: dict[str, GraphDoc] = {}
        self.scenes: dict[str, GraphScene] = {}
        self.mode: str | None = None
        self._sqnr: dict[str, float] = {}
        self._heat = False
        self._generation = 0
        self._tasks: dict[tuple[int, str], _LayoutTask] = {}  # kept alive until they report
        self._selected: GraphNode | None = None
        self._centre_when_ready = False
        self._anchor: tuple[GraphNode | None, float] | None = None
        self._press: QPoint | None = None
        self._search: tuple[str, int] = ("", -1)
        self._on_show = None  # geometry-dependent work deferred until the view is first shown
        self.message = QLabel(self, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.message.setStyleSheet(
            "QLabel { background: palette(window); border: 1px solid palette(mid); border-radius: 8px;"
            " padding: 14px 20px; font-size: 11pt; }"
        )
        self.message.hide()
        self.minimap = Minimap(self)

    # loading -------------------------------------------------------------------------------------

    def set_graphs(
        self, graphs: dict[str, GraphDoc], sqnr: dict[str, float], prefer: str = "quantized"
    ) -> None:
        """Show these graphs (laid out in the background) with `sqnr` (layer -> dB) for the heat overlay."""
        self._generation += 1
        self.docs = {k: g for k, g in graphs.items() if g.nodes}
        self.scenes = {}
        self._sqnr = dict(sqnr)
        self._selected = None
        self._anchor = None
        self._on_show = None
        self._search = ("", -1)
        self.setScene(self._blank)
        self.minimap.hide()
        self.mode = prefer if prefer in self.docs else next(iter(self.docs), None)
        if self.mode is None:
            self.show_message("This run has no graph to draw.")
            return
        for key in sorted(self.docs, key=lambda k: k != self.mode):
            task = _LayoutTask(self._generation, key, self.docs[key])
            task.signals.done.connect(self._on_layout)
            self._tasks[(self._generation, key)] = task
            QThreadPool.globalInstance().start(task)
        self._show_busy()

    def clear(self, message: str = "") -> None:
        self.set_graphs({}, {})
        if message:
            self.show_message(message)
        else:
            self.message.hide()

    def is_ready(self) -> bool:
        return self.mode in self.scenes

    def node_count(self) -> int:
        return len(self.docs[self.mode].nodes) if self.mode else 0

    def current_scene(self) -> GraphScene | None:
        return self.scenes.get(self.mode) if self.mode else None

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()
        self.place_overlays()

    def _show_busy(self) -> None:
        self.show_message(f"Laying out {self.node_count():,} nodes…")

    def _on_layout(self, generation: int, key: str, layout: Layout | None, error: str) -> None:
        self._tasks.pop((generation, key), None)
        if generation != self._generation or key not in self.docs:
            return
        if layout is None:
            if key == self.mode:
                self.show_message(f"The {key} graph could not be laid out ({error}).")
            return
        text = self.palette().color(QPalette.ColorRole.Text)
        edge = QColor(text.red(), text.green(), text.blue(), 120)
        scene = GraphScene(self.docs[key], layout, self._sqnr, edge)
        scene.set_heat(self._heat)
        self.scenes[key] = scene
        if key == self.mode:
            self._show_current()
        self.layoutFinished.emit(key)

    def _show_current(self) -> None:
        scene = self.scenes[self.mode]
        self.setScene(scene)
        self.message.hide()
        anchor, self._anchor = self._anchor, None
        target = scene.counterpart(self._selected) if self._selected else None
        scene.select(target)
        if anchor:
            place = scene.counterpart(anchor[0]) if anchor[0] else None
            self._zoom_to(anchor[1])
            if place:
                self.centerOn(scene.nodes[place])
            else:
                self.centerOn(scene.sceneRect().center())
        elif target and self._centre_when_ready:
            self._zoom_to(max(self.transform().m11(), READABLE_SCALE))
            self._centre(scene.nodes[target])
        else:
            self.first_look()
        self._centre_when_ready = False
        self.minimap.refresh()

    # navigation ----------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """Switch between the float and quantized graph, keeping the same layer in the middle."""
        if mode == self.mode or mode not in self.docs:
            return
        scene = self.current_scene()
        if scene is not None:
            self._anchor = (self._place(scene), self.transform().m11())
        self.mode = mode
        if mode in self.scenes:
            self._show_current()
        else:
            self.setScene(self._blank)
            self.minimap.hide()
            self._show_busy()

    def _place(self, scene: GraphScene) -> GraphNode | None:
        """The node that marks where the user is: the selected one if visible, else the most central."""
        seen = self.mapToScene(self.viewport().rect()).boundingRect()
        if scene.selected and seen.contains(scene.nodes[scene.selected].pos()):
            return scene.nodes[scene.selected].node
        centre = seen.center()
        items = [i for i in self.items(self.viewport().rect()) if isinstance(i, NodeItem)]
        named = [i for i in items if i.node.layer or i.node.module] or items
        if not named:
            return None
        return min(named, key=lambda i: (i.pos() - centre).manhattanLength()).node

    def _centre(self, item: NodeItem) -> None:
        """Centre on an item now, or when first shown (a hidden view's viewport size is meaningless)."""
        if self.isVisible():
            self.centerOn(item)
        else:
            self._on_show = lambda: self.centerOn(item)

    def first_look(self) -> None:
        """Fit the graph when that keeps labels readable; otherwise open at the inputs, readable."""
        scene = self.current_scene()
        if scene is None:
            return
        if not self.isVisible():
            self._on_show = self.first_look
            return
        rect = scene.itemsBoundingRect()
        view = self.viewport().rect()
        fit = min(view.width() / max(rect.width(), 1.0), view.height() / max(rect.height(), 1.0))
        if fit >= READABLE_SCALE:
            self._zoom_to(min(fit, 1.0))
            self.centerOn(rect.center())
            return
        self._zoom_to(READABLE_SCALE)
        top = min(scene.nodes.values(), key=lambda i: (i.pos().y(), i.pos().x()))
        half_height = view.height() / 2 / READABLE_SCALE
        self.centerOn(QPointF(top.pos().x(), top.pos().y() - 40 + half_height))

    def fit(self) -> None:
        scene = self.current_scene()
        if scene is not None:
            self.fitInView(scene.itemsBoundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self._zoom_to(self.transform().m11())

    def zoom_by(self, factor: float) -> None:
        self._zoom_to(self.transform().m11() * factor)

    def _zoom_to(self, scale: float) -> None:
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        current = self.transform().m11()
        if current > 0 and not math.isclose(scale, current):
            self.scale(scale / current, scale / current)
        self.minimap.update()

    # selection -----------------------------------------------------------------------------------

    def selected_id(self) -> str | None:
        scene = self.current_scene()
        return scene.selected if scene else None

    def select_node(self, node_id: str | None, centre: bool = True, emit: bool = False) -> bool:
        doc = self.docs.get(self.mode) if self.mode else None
        node = doc.node(node_id) if doc and node_id else None
        self._selected = node
        scene = self.current_scene()
        if scene is None:
            self._centre_when_ready = centre
            return node is not None
        scene.select(node.id if node else None)
        if node and centre:
            if self.transform().m11() < 0.35:
                self._zoom_to(READABLE_SCALE)
            self._centre(scene.nodes[node.id])
        if node and emit:
            self.nodeSelected.emit(node.id)
        return node is not None

    def select_layer(self, layer: str, centre: bool = True) -> str | None:
        """Select the node standing for `layer`; return its id (None when this graph lacks the layer)."""
        doc = self.docs.get(self.mode) if self.mode else None
        node_id = layer_nodes(doc).get(layer) if doc else None
        return node_id if node_id and self.select_node(node_id, centre=centre) else None

    def find(self, text: str) -> str | None:
        """Select the next node whose name, layer or module contains `text` (exact names first)."""
        doc = self.docs.get(self.mode) if self.mode else None
        needle = text.strip().lower()
        if not doc or not needle:
            return None
        exact = [
            n.id for n in doc.nodes if needle in (n.id.lower(), n.label.lower(), (n.layer or "").lower())
        ]
        partial = [
            n.id
            for n in doc.nodes
            if n.id not in exact
            and any(needle in s.lower() for s in (n.id, n.label, n.layer or "", n.module))
        ]
        matches = exact + partial
        if not matches:
            return None
        last, index = self._search
        index = (index + 1) % len(matches) if last == needle else 0
        self._search = (needle, index)
        self.select_node(matches[index], centre=True, emit=True)
        return matches[index]

    def set_heat(self, on: bool) -> None:
        self._heat = on
        for scene in self.scenes.values():
            scene.set_heat(on)
        self.minimap.refresh()

    # events --------------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.0015 ** event.angleDelta().y())
            event.accept()
        else:
            super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_F:
            self.fit()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key.Key_0:
            self._zoom_to(1.0)
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        pos = event.position().toPoint()
        if self._press is not None and (pos - self._press).manhattanLength() < 5:
            hit = next((i for i in self.items(pos) if isinstance(i, NodeItem)), None)
            if hit is not None:
                self.select_node(hit.node.id, centre=False, emit=True)
        self._press = None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        action, self._on_show = self._on_show, None
        if action is not None:
            action()
            self.minimap.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.place_overlays()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.minimap.update()

    def place_overlays(self) -> None:
        area = self.viewport().geometry()
        self.minimap.move(
            area.right() - self.minimap.width() - 10, area.bottom() - self.minimap.height() - 10
        )
        width = min(460, area.width() - 40)
        self.message.setFixedWidth(max(width, 120))
        self.message.adjustSize()
        self.message.move(
            area.center().x() - self.message.width() // 2, area.center().y() - self.message.height() // 2
        )
