"""The tile heatmap drawn over a photo in a QGraphicsScene, and the job that computes it off the GUI thread.

Integration, simplest (a toggle + opacity slider widget that owns the item; photo item at image scale):

    self.heat = HeatmapControls(photo_item)     # a QWidget: add it to the side panel or a toolbar
    self.heat.show_tiles(tiles, threshold, (width, height), workspace.tile_labels(image_id))  # per photo; [] = none
    self.heat.tile_label_requested.connect(...)  # (x, y, w, h, label): label "crack", "no_crack" or None
    if not self.heat.label_hovered_tile("crack"): ...label the whole image...   # in the C / N shortcuts

or the item alone: `item = HeatmapItem(tiles, threshold, (width, height), parent=photo_item)`, `item.setVisible`,
`item.set_heat_opacity(0..1)` (or `opacity_slider(item)`), `item.set_tile_labels(rows)`, signal
`item.tile_label_requested(x, y, w, h, label)`. Tiles are (x, y, w, h, p_crack) in image pixels, as
`Workspace.tile_results(hash, model_key)` returns them; a photo item showing a downscaled pixmap needs
`item.setScale(pixmap_width / image_width)`.

Hovering shows the tile grid, the tile under the cursor with its probability (label and tooltip). C / N label
that tile crack / no crack, Delete clears it (when the item has keyboard focus: it takes it on hover), and
so does the context menu. A viewer whose own C / N shortcuts fire first (QShortcut does) asks
`label_hovered_tile(label)` from them and labels the whole image when it returns False.
Colours come from `crackdesk.core.overlay`, the same scale as the CLI's PNGs.
"""

from __future__ import annotations


import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QCheckBox, QGraphicsItem, QGraphicsObject, QHBoxLayout, QMenu, QSlider, QWidget

from ..core.datasets import CRACK, NO_CRACK
from ..core.overlay import MAX_GRID_TILES, heat_layer, tile_colour
from ..core.tiling import tiles_from_rows

LAYER_MAX_SIDE = 1024  # the colour layer's resolution; drawn scaled, nearest-neighbour (crisp tile edges)
KEY_LABELS = {Qt.Key_C: CRACK, Qt.Key_N: NO_CRACK, Qt.Key_Delete: None, Qt.Key_Backspace: None}
LABEL_PENS = {CRACK: QColor(230, 30, 30), NO_CRACK: QColor(40, 200, 80)}


class HeatmapItem(QGraphicsObject):
    """Coloured P(crack) tiles over a photo; emits `tile_label_requested(x, y, w, h, label)`."""

    tile_label_requested = Signal(int, int, int, int, object)

    def __init__(self, tiles, threshold: float, image_size: tuple[int, int] | None = None, parent=None):
        super().__init__(parent)
        self._rect = QRectF()  # asked for as soon as the item has a parent
        self.setAcceptHoverEvents(True)
        self.setFlag(QGraphicsItem.ItemIsFocusable, True)
        self.setZValue(10)
        self._heat_opacity = 0.55
        self._hover: int | None = None
        self._labels: dict[tuple[int, int, int, int], str] = {}
        self._legend = _Legend(self)
        self._tag = _TileTag(self)
        self.set_tiles(tiles, threshold, image_size)

    # -- the integration API -------------------------------------------------------------------
    def set_tiles(self, tiles, threshold: float, image_size: tuple[int, int] | None = None) -> None:
        tiles = [tuple(t) for t in tiles]
        if not tiles:
            raise ValueError("a heatmap needs at least one tile")
        self.prepareGeometryChange()
        self.tiles = tiles
        self.threshold = float(threshold)
        self._boxes = np.array([t[:4] for t in tiles], dtype=np.int64)
        self._probs = np.array([t[4] for t in tiles], dtype=np.float64)
        width = image_size[0] if image_size else int((self._boxes[:, 0] + self._boxes[:, 2]).max())
        height = image_size[1] if image_size else int((self._boxes[:, 1] + self._boxes[:, 3]).max())
        self._rect = QRectF(0, 0, width, height)
        heatmap = tiles_from_rows(tiles, width, height, self.threshold)
        scale = min(1.0, LAYER_MAX_SIDE / max(width, height))
        layer = heat_layer(heatmap, (max(1, round(width * scale)), max(1, round(height * scale))), opacity=1.0)
        self._layer_bytes = layer.tobytes()  # QImage does not own the buffer: keep it alive
        self._layer = QImage(self._layer_bytes, layer.width, layer.height, layer.width * 4, QImage.Format_RGBA8888)
        self._legend.threshold = self.threshold
        self._set_hover(None)
        self.update()

    def set_heat_opacity(self, opacity: float) -> None:
        """Opacity of the colours only (the legend and grid stay readable)."""
        self._heat_opacity = min(1.0, max(0.0, float(opacity)))
        self.update()

    def heat_opacity(self) -> float:
        return self._heat_opacity

    def set_tile_labels(self, labels) -> None:
        """Show the human tile labels: [(x, y, w, h, label)] as from `Workspace.tile_labels(image_id)`."""
        self._labels = {tuple(map(int, row[:4])): row[4] for row in labels}
        self.update()

    def tile_at(self, pos: QPointF) -> int | None:
        """Index of the tile under `pos` (item coordinates): of the windows covering it, the nearest centre."""
        x, y = pos.x(), pos.y()
        b = self._boxes
        inside = (b[:, 0] <= x) & (x < b[:, 0] + b[:, 2]) & (b[:, 1] <= y) & (y < b[:, 1] + b[:, 3])
        if not inside.any():
            return None
        d = (b[:, 0] + b[:, 2] / 2 - x) ** 2 + (b[:, 1] + b[:, 3] / 2 - y) ** 2
        return int(np.where(inside, d, np.inf).argmin())

    def hovered_tile(self) -> tuple[int, int, int, int, float] | None:
        return self.tiles[self._hover] if self._hover is not None else None

    def label_hovered_tile(self, label: str | None) -> bool:
        """Ask to label the tile under the cursor; False when the cursor is on no tile."""
        if self._hover is None or not self.isVisible():
            return False
        x, y, w, h, _ = self.tiles[self._hover]
        self.tile_label_requested.emit(int(x), int(y), int(w), int(h), label)
        return True

    def context_menu(self, index: int) -> QMenu:
        """The menu for one tile (built separately from showing it, so it can be tested)."""
        x, y, w, h, p = self.tiles[index]
        menu = QMenu()
        menu.addSection(f"Tile {x},{y}  P(crack) {p:.2f}")
        for text, label in (("Label tile crack\tC", CRACK), ("Label tile no crack\tN", NO_CRACK),
                            ("Clear tile label\tDel", None)):
            action = menu.addAction(text)
            action.setData(label)
            action.triggered.connect(lambda _=False, lab=label: self.tile_label_requested.emit(x, y, w, h, lab))
        return menu

    # -- QGraphicsItem -------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.save()
        painter.setOpacity(self._heat_opacity)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, False)
        painter.drawImage(self._rect, self._layer)
        painter.setOpacity(1.0)
        for (x, y, w, h), label in self._labels.items():
            pen = QPen(LABEL_PENS.get(label, QColor("white")), 3, Qt.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(QRectF(x + 1, y + 1, w - 2, h - 2))
        if self._hover is not None:
            grid = QPen(QColor(255, 255, 255, 110), 1)
            grid.setCosmetic(True)
            painter.setPen(grid)
            painter.setBrush(Qt.NoBrush)
            if len(self._boxes) <= MAX_GRID_TILES:  # a finer grid would hide the photo (and be slow)
                for x, y, w, h in self._boxes:
                    painter.drawRect(QRectF(float(x), float(y), float(w), float(h)))
            x, y, w, h = map(float, self._boxes[self._hover])
            focus = QPen(QColor(0, 200, 255), 2)
            focus.setCosmetic(True)
            painter.setPen(focus)
            painter.drawRect(QRectF(x, y, w, h))
        painter.restore()

    def hoverEnterEvent(self, event) -> None:
        self.setFocus(Qt.MouseFocusReason)
        self._set_hover(self.tile_at(event.pos()))

    def hoverMoveEvent(self, event) -> None:
        index = self.tile_at(event.pos())
        if index != self._hover:
            self._set_hover(index)

    def hoverLeaveEvent(self, event) -> None:
        self._set_hover(None)

    def keyPressEvent(self, event) -> None:
        if event.key() in KEY_LABELS and self.label_hovered_tile(KEY_LABELS[event.key()]):
            event.accept()
        else:
            event.ignore()

    def contextMenuEvent(self, event) -> None:
        index = self.tile_at(event.pos())
        if index is None:
            event.ignore()
            return
        self._menu = self.context_menu(index)  # kept: the menu must outlive this call while it is shown
        self._menu.popup(event.screenPos())

    def _set_hover(self, index: int | None) -> None:
        self._hover = index
        if index is None:
            self.setToolTip("")
            self._tag.setVisible(False)
        else:
            x, y, w, h, p = self.tiles[index]
            human = self._labels.get((int(x), int(y), int(w), int(h)))
            verdict = "crack" if p >= self.threshold else "no crack"
            self.setToolTip(f"P(crack) {p:.3f} ({verdict})\ntile {x},{y} {w}x{h} px"
                            + (f"\nlabelled {human.replace('_', ' ')}" if human else "")
                            + "\nC / N: label this tile crack / no crack")
            self._tag.set_text(f"{p:.2f}")
            self._tag.setPos(x, y)
            self._tag.setVisible(True)
        self.update()


class _TileTag(QGraphicsItem):
    """The hovered tile's probability, at its top-left corner, the same size at any zoom."""

    def __init__(self, parent):
        super().__init__(parent)
        self.setFlag(QGraphicsItem.ItemIgnoresTransformations, True)
        self.setAcceptedMouseButtons(Qt.NoButton)
        self.setVisible(False)
        self.text = ""

    def set_text(self, text: str) -> None:
        self.text = text
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, 44, 18)

    def paint(self, painter, option, widget=None) -> None:
        painter.fillRect(self.boundingRect(), QColor(0, 0, 0, 170))
        painter.setPen(QColor("white"))
        painter.drawText(self.boundingRect(), Qt.AlignCenter, self.text)


class _Legend(QGraphicsItem):
    """The colour scale, top-left of the photo, the same size at any zoom; the threshold is marked."""

    WIDTH, HEIGHT = 150, 34

    def __init__(self, parent):
        super().__init__(parent)
        self.setFlag(QGraphicsItem.ItemIgnoresTransformations, True)
        self.setAcceptedMouseButtons(Qt.NoButton)
        self.threshold = 0.5

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.WIDTH, self.HEIGHT)

    def paint(self, painter, option, widget=None) -> None:
        painter.fillRect(self.boundingRect(), QColor(0, 0, 0, 160))
        bar = QRectF(8, 6, self.WIDTH - 16, 10)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for t in np.linspace(0.0, 1.0, 6):
            r, g, b, a = tile_colour(float(t))
            gradient.setColorAt(float(t), QColor(r, g, b, max(a, 60)))
        painter.fillRect(bar, QBrush(gradient))
        tx = bar.left() + self.threshold * bar.width()
        painter.setPen(QPen(QColor("white"), 2))
        painter.drawLine(QPointF(tx, bar.top() - 3), QPointF(tx, bar.bottom() + 3))
        font = QFont(painter.font())
        font.setPointSizeF(7.5)
        painter.setFont(font)
        painter.drawText(QRectF(8, 18, self.WIDTH - 16, 14), Qt.AlignLeft | Qt.AlignVCenter, "P(crack) 0")
        painter.drawText(QRectF(8, 18, self.WIDTH - 16, 14), Qt.AlignRight | Qt.AlignVCenter, "1")


class HeatmapControls(QWidget):
    """The viewer's side of it in one widget: a "Crack heatmap" toggle and an opacity slider, and the item's
    life cycle over a photo item (replaced per photo, removed when a photo has no tiles). The toggle and
    opacity persist across photos. Re-emits the item's `tile_label_requested`."""

    tile_label_requested = Signal(int, int, int, int, object)

    def __init__(self, photo_item: QGraphicsItem, parent=None):
        super().__init__(parent)
        self.photo_item = photo_item
        self.item: HeatmapItem | None = None
        self.toggle = QCheckBox("Crack heatmap (H)")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Tile P(crack) over the photo; hover a tile, then C / N labels it")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(55)
        self.slider.setToolTip("Heatmap opacity")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.slider, 1)
        self.toggle.toggled.connect(lambda on: self.item is not None and self.item.setVisible(on))
        self.slider.valueChanged.connect(lambda v: self.item is not None and self.item.set_heat_opacity(v / 100))
        self.setEnabled(False)

    def show_tiles(self, tiles, threshold: float, image_size: tuple[int, int] | None = None, tile_labels=()) -> None:
        """Tiles of the photo now shown (image pixels; `image_size` = the photo's size), or none: no heatmap."""
        if self.item is not None:
            self.item.setParentItem(None)
            if self.item.scene() is not None:
                self.item.scene().removeItem(self.item)
            self.item.deleteLater()
            self.item = None
        self.setEnabled(bool(tiles))
        if not tiles:
            return
        self.item = HeatmapItem(tiles, threshold, image_size, parent=self.photo_item)
        self.item.set_heat_opacity(self.slider.value() / 100)
        self.item.setVisible(self.toggle.isChecked())
        self.item.set_tile_labels(tile_labels)
        self.item.tile_label_requested.connect(self.tile_label_requested)

    def label_hovered_tile(self, label: str | None) -> bool:
        """For the viewer's C / N / Delete shortcuts: True when a hovered tile took the label."""
        return self.item is not None and self.item.label_hovered_tile(label)


def opacity_slider(item: HeatmapItem, parent=None) -> QSlider:
    """A horizontal 0..100 % slider bound to the item's heat opacity, for the viewer's toolbar."""
    slider = QSlider(Qt.Horizontal, parent)
    slider.setRange(0, 100)
    slider.setValue(round(item.heat_opacity() * 100))
    slider.setToolTip("Heatmap opacity")
    slider.valueChanged.connect(lambda v: item.set_heat_opacity(v / 100))
    return slider


__all__ = ["HeatmapItem", "HeatmapControls", "opacity_slider"]
