"""The viewer: one image large (zoom with the wheel or +/-, pan by dragging, F to fit), and beside it the
model's probability and the label history. The image is decoded off the GUI thread (camera photos can
take a few hundred milliseconds). Labelling keys work here too and go through the main window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThreadPool, Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (QDialog, QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHBoxLayout,
                               QLabel, QListWidget, QListWidgetItem, QProgressBar, QVBoxLayout, QWidget)

from ..core.errors import ImageError
from ..core.images import load_rgb
from ..core.wording import printable
from . import theme
from .heatmap_item import HeatmapControls
from .jobs import run_in_pool
from .screen_fit import fit_to_screen


def decode_for_viewer(path: Path) -> tuple[QImage | None, str]:
    """The whole picture as a QImage (made off the GUI thread: QImage, unlike QPixmap, may be), or the reason."""
    try:
        picture = load_rgb(path)
    except ImageError as e:
        return None, e.reason
    image = QImage(picture.tobytes(), picture.width, picture.height, picture.width * 3, QImage.Format_RGB888)
    return image.copy(), ""


def photo_meta_text(meta) -> str:
    if meta is None:
        return "not read yet (the photo is being indexed)"
    lines = [f"taken {meta.captured.replace('T', ' ')}" if meta.captured else "no capture time",
             f"GPS {meta.lat:.6f}, {meta.lon:.6f}" + (f", {meta.alt:.0f} m" if meta.alt is not None else "")
             if meta.has_gps else "no GPS position"]
    if meta.camera:
        lines.append(meta.camera)
    if meta.width and meta.height:
        lines.append(f"{meta.width} x {meta.height} px")
    return "\n".join(lines)


class ImageView(QGraphicsView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setRenderHints(QPainter.Antialiasing | QPainter.SmoothPixmapTransform)
        self.setBackgroundBrush(theme.BASE)
        self.setFrameShape(QFrame.NoFrame)
        self.fitting = True

    def set_pixmap(self, pixmap: QPixmap) -> None:
        self.item.setPixmap(pixmap)
        self.scene().setSceneRect(self.item.boundingRect())
        self.fit()

    def fit(self) -> None:
        self.fitting = True
        self.fitInView(self.item, Qt.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.fitting = False
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitting:
            self.fit()


class ViewerDialog(QDialog):
    navigate = Signal(int)  # +1 / -1
    label_requested = Signal(object)  # "crack", "no_crack", None, or "accept"
    tile_label_requested = Signal(int, int, int, int, object)  # x, y, w, h, "crack" / "no_crack" / None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Viewer")
        fit_to_screen(self, 1100, 720)
        self.view = ImageView()
        self.heat = HeatmapControls(self.view.item)  # child of the photo item: image pixel coordinates
        self.heat.tile_label_requested.connect(self.tile_label_requested)
        self.request = 0
        side = QWidget()
        side.setFixedWidth(290)
        form = QVBoxLayout(side)
        self.name = QLabel()
        self.name.setWordWrap(True)
        font = self.name.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() + 2)
        self.name.setFont(font)
        self.folder = QLabel()
        self.folder.setProperty("muted", True)
        self.folder.setWordWrap(True)
        self.label = QLabel()
        self.prediction = QLabel()
        self.prediction.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.photo = QLabel()  # capture time, GPS and camera, from the workspace (read when the photo was hashed)
        self.photo.setWordWrap(True)
        self.photo.setTextInteractionFlags(Qt.TextSelectableByMouse)  # coordinates get copied into other tools
        self.history = QListWidget()
        self.history.setFocusPolicy(Qt.NoFocus)
        self.history.setWordWrap(True)
        self.history.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        hint = QLabel("C crack · N no crack · Space accept · ←/→ move · F fit · H heatmap · Esc close\n"
                      "Over a heatmap tile, C / N / Delete label that tile")
        hint.setProperty("muted", True)
        hint.setWordWrap(True)
        for title, widget in (("", self.name), ("", self.folder), ("HUMAN LABEL", self.label),
                              ("MODEL", self.prediction), ("", self.bar), ("PHOTO", self.photo), ("HEATMAP", self.heat),
                              ("LABEL HISTORY", self.history)):
            if title:
                heading = QLabel(title)
                heading.setProperty("muted", True)
                form.addSpacing(8)
                form.addWidget(heading)
            form.addWidget(widget)
        form.addWidget(hint)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 10, 10)
        layout.addWidget(self.view, 1)
        layout.addWidget(side)
        # C / N / Delete label the hovered heatmap tile first (a shortcut fires before the item sees the key).
        keys = {"C": lambda: self._label("crack"), "N": lambda: self._label("no_crack"),
                "Space": lambda: self.label_requested.emit("accept"),
                "Backspace": lambda: self._label(None), "Delete": lambda: self._label(None),
                "H": self.heat.toggle.toggle,
                "Right": lambda: self.navigate.emit(1), "Left": lambda: self.navigate.emit(-1),
                "+": lambda: self.view.zoom(1.25), "=": lambda: self.view.zoom(1.25), "-": lambda: self.view.zoom(0.8),
                "F": self.view.fit}
        for key, slot in keys.items():
            QShortcut(QKeySequence(key), self, slot)

    def _label(self, label) -> None:
        if not self.heat.label_hovered_tile(label):
            self.label_requested.emit(label)

    def show_heatmap(self, tiles, threshold: float, tile_labels=()) -> None:
        """Tile probabilities (x, y, w, h, p) of the photo shown, in image pixels; [] hides the heatmap. The
        prediction panel then says why the photo got its verdict (e.g. one isolated tile is not enough)."""
        self.heat.show_tiles(tiles, threshold, None, tile_labels)
        if tiles and "tiles: " not in self.prediction.text():
            from ..core.tiling import heatmap_of_rows

            verdict = heatmap_of_rows(tiles, threshold).photo
            self.prediction.setText(self.prediction.text() + f"<br><small>{len(tiles)} tiles: {verdict.reason}</small>")

    def show_image(self, path: Path, relpath: str, label: str | None, p: float | None, threshold: float,
                   model_name: str, history: list[dict], band: float = 0.15) -> None:
        if relpath != getattr(self, "_relpath", None):
            self._relpath = relpath
            self.request += 1
            number, path = self.request, Path(path)
            run_in_pool(QThreadPool.globalInstance(), lambda: decode_for_viewer(path),
                        lambda result: self._loaded(number, *result))
        parts = printable(relpath).rsplit("/", 1)
        self.name.setText(parts[-1])
        self.folder.setText(parts[0] + "/" if len(parts) > 1 else "")
        color = theme.LABEL_COLORS[label]
        self.label.setText(f"<span style='color:{color.name()}; font-weight:600'>{theme.LABEL_NAMES[label]}</span>"
                           + ("" if label else " (not reviewed)"))
        if p is None:
            self.prediction.setText(f"{model_name}: not classified yet")
            self.bar.setValue(0)
        else:
            predicted = "crack" if p >= threshold else "no_crack"
            from .gallery_delegate import prob_color

            c = prob_color(p, threshold, band)
            self.prediction.setText(f"{model_name}<br><span style='font-size:20pt; color:{c.name()}'>{p:.3f}</span>"
                                    f" P(crack)<br>predicts <b>{theme.LABEL_NAMES[predicted]}</b> "
                                    f"at threshold {threshold:.2f}")
            self.bar.setValue(int(p * 1000))
            self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {c.name()}; }}")
        self.history.clear()
        if not history:
            self.history.addItem("No changes yet")
        for h in reversed(history):
            item = QListWidgetItem(f"{theme.LABEL_NAMES[h['old']]} → {theme.LABEL_NAMES[h['new']]}\n"
                                   f"{h['at'].replace('T', ' ').rstrip('Z')} UTC · {h['source']}")
            item.setForeground(theme.LABEL_COLORS[h["new"]])
            self.history.addItem(item)

    def show_meta(self, meta) -> None:
        """What the photo says of itself (a PhotoMeta), or None while it has not been read (not hashed yet)."""
        self.photo.setText(photo_meta_text(meta))

    def _loaded(self, number: int, image, error: str) -> None:
        if number != self.request:
            return  # the user moved on
        if image is None:
            self.view.set_pixmap(QPixmap())
            self.name.setText(f"{self.name.text()}\ncannot be read: {error}")
            return
        self.view.set_pixmap(QPixmap.fromImage(image))
