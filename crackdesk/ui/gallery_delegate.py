"""Painting one gallery card: thumbnail, file name, the model's P(crack) as a coloured bar with its value,
the human label as a badge, and a corner mark where the human and the model disagree."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from . import theme
from .gallery_model import LABEL_ROLE, PROB_ROLE

PAD = 6
FOOTER = 38


def prob_color(p: float, threshold: float, band: float) -> QColor:
    if abs(p - threshold) <= band:
        return theme.UNCERTAIN
    return theme.CRACK if p >= threshold else theme.NO_CRACK


class GalleryDelegate(QStyledItemDelegate):
    def __init__(self, thumbnails, model, parent=None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.model = model
        self.thumb_size = 144
        self._small = QFont()
        self._small.setPointSizeF(8.5)
        self._bold = QFont(self._small)
        self._bold.setBold(True)

    def set_thumb_size(self, px: int) -> None:
        self.thumb_size = px

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.thumb_size + 2 * PAD, self.thumb_size + FOOTER + 2 * PAD)

    def paint(self, painter: QPainter, option, index) -> None:
        path = self.model.path_at(index.row())  # from Python: a file name need not survive a QString
        label = index.data(LABEL_ROLE)
        p = index.data(PROB_ROLE)
        selected = bool(option.state & QStyle.State_Selected)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        card = QRectF(option.rect).adjusted(3, 3, -3, -3)
        painter.setPen(QPen(theme.ACCENT, 2.5) if selected else QPen(theme.BORDER, 1))
        painter.setBrush(QColor("#2a3039") if selected else theme.PANEL)
        painter.drawRoundedRect(card, 6, 6)

        side = self.thumb_size
        image_rect = QRect(option.rect.x() + PAD, option.rect.y() + PAD, side, side)
        self._paint_thumbnail(painter, image_rect, path)
        threshold, band = self.model.threshold, self.model.band
        if label >= 0:
            self._paint_badge(painter, image_rect, "crack" if label == 1 else "no_crack")
        has_p = not math.isnan(p)
        if has_p and label >= 0 and (label == 1) != (p >= threshold):
            self._paint_disagree(painter, image_rect)

        # Footer: name, then the probability bar.
        text_rect = QRect(image_rect.x(), image_rect.bottom() + 4, side, 15)
        painter.setFont(self._small)
        painter.setPen(theme.TEXT if selected else theme.MUTED)
        name = index.data(Qt.DisplayRole)
        painter.drawText(text_rect, Qt.AlignLeft | Qt.AlignVCenter,
                         QFontMetrics(self._small).elidedText(name, Qt.ElideMiddle, side))
        bar = QRectF(image_rect.x(), image_rect.bottom() + 23, side - 40, 7)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor("#3a414d"))
        painter.drawRoundedRect(bar, 3, 3)
        value_rect = QRect(int(bar.right()) + 4, int(bar.y()) - 5, 36, 16)
        if has_p:
            color = prob_color(p, threshold, band)
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(bar.x(), bar.y(), max(3.0, bar.width() * p), bar.height()), 3, 3)
            tick = bar.x() + bar.width() * threshold
            painter.setPen(QPen(theme.TEXT, 1))
            painter.drawLine(QPointF(tick, bar.y() - 2), QPointF(tick, bar.bottom() + 2))
            painter.setFont(self._bold)
            painter.setPen(color)
            painter.drawText(value_rect, Qt.AlignRight | Qt.AlignVCenter, f"{p:.2f}")
        else:
            painter.setFont(self._small)
            painter.setPen(theme.MUTED)
            painter.drawText(value_rect, Qt.AlignRight | Qt.AlignVCenter, "–")
        painter.restore()

    def _paint_thumbnail(self, painter: QPainter, rect: QRect, path: str) -> None:
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor("#1b1f25"))
        painter.drawRoundedRect(QRectF(rect), 4, 4)
        pixmap = self.thumbnails.pixmap(path)
        if pixmap is None:
            error = self.thumbnails.error(path)
            painter.setPen(theme.CRACK if error else theme.MUTED)
            painter.setFont(self._small)
            painter.drawText(rect.adjusted(6, 6, -6, -6), Qt.AlignCenter | Qt.TextWordWrap,
                             f"Cannot read\n{error}" if error else "")
            return
        size = pixmap.size()
        if size.width() > rect.width() or size.height() > rect.height():  # until the resized one arrives
            size = size.scaled(rect.size(), Qt.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(rect.center())
        painter.drawPixmap(target, pixmap)  # already the shown size: no scaling while painting
        self.thumbnails.note_painted()

    def _paint_badge(self, painter: QPainter, rect: QRect, label: str) -> None:
        text = "CRACK" if label == "crack" else "NO CRACK"
        metrics = QFontMetrics(self._bold)
        width = metrics.horizontalAdvance(text) + 12
        badge = QRectF(rect.x() + 5, rect.y() + 5, width, 17)
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.LABEL_COLORS[label])
        painter.drawRoundedRect(badge, 8, 8)
        painter.setPen(QColor("white"))
        painter.setFont(self._bold)
        painter.drawText(badge, Qt.AlignCenter, text)

    def _paint_disagree(self, painter: QPainter, rect: QRect) -> None:
        """A corner flag: the human label differs from the model's prediction."""
        size = 24
        corner = QPolygonF([QPointF(rect.right() - size, rect.y()), QPointF(rect.right() + 1, rect.y()),
                            QPointF(rect.right() + 1, rect.y() + size)])
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.UNCERTAIN)
        painter.drawPolygon(corner)
        painter.setPen(QColor("#1e2229"))
        painter.setFont(self._bold)
        painter.drawText(QRect(rect.right() - 12, rect.y() + 1, 12, 12), Qt.AlignCenter, "!")
