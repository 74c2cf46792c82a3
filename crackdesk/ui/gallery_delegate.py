"""Painting one gallery card: thumbnail, file name, the model's P(crack) as a coloured bar with its value,
the human label as a badge, and a corner mark where the human and the model disagree.

A screenful is 40-60 cards and is repainted on every label, refit and classified batch, while the classification
threads want the GIL: each card is a few cached pixmaps and laid-out texts, not a dozen antialiased shapes and
text layouts (24 ms a screen before, measured in BENCHMARKS.md)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPixmap, QPolygonF, QStaticText
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from . import theme
from .gallery_model import card_name

PAD = 6
FOOTER = 38
SELECTED_CARD = QColor("#2a3039")
THUMB_BACKGROUND = QColor("#1b1f25")
BAR_TRACK = QColor("#3a414d")
CENTERED_WRAPPED = Qt.AlignCenter | Qt.TextWordWrap
SELECTED = QStyle.State_Selected
BADGE_TEXT = {1: "CRACK", 0: "NO CRACK"}  # by label code
TEXT_CACHE_SIZE = 4096  # laid-out names kept; a screenful is about 60


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
        metrics = QFontMetrics(self._bold)
        self._badge_sizes = {label: QSize(metrics.horizontalAdvance(text) + 13, 18)  # 1 px for the antialiased edge
                             for label, text in BADGE_TEXT.items()}
        self._sprites: dict = {}  # (what, size, device pixel ratio) -> QPixmap
        self._names: dict[tuple[str, int], QStaticText] = {}  # (path, width) -> the elided name, laid out
        self._values: dict[str, QStaticText] = {}  # "0.73" -> laid out

    def set_thumb_size(self, px: int) -> None:
        self.thumb_size = px
        self._sprites.clear()
        self._names.clear()

    def card_size(self) -> QSize:
        return QSize(self.thumb_size + 2 * PAD, self.thumb_size + FOOTER + 2 * PAD)

    def sizeHint(self, option, index) -> QSize:
        return self.card_size()

    def paint(self, painter: QPainter, option, index) -> None:
        path, label, p = self.model.card(index.row())
        selected = bool(option.state & SELECTED)
        rect = option.rect
        dpr = painter.device().devicePixelRatioF()
        side = self.thumb_size
        painter.drawPixmap(rect.topLeft(), self._card(selected, rect.size(), dpr))
        image_rect = QRect(rect.x() + PAD, rect.y() + PAD, side, side)
        self._paint_thumbnail(painter, image_rect, path)
        threshold, band = self.model.threshold, self.model.band
        if label >= 0:
            painter.drawPixmap(image_rect.x() + 5, image_rect.y() + 5, self._badge(label, dpr))
        has_p = not math.isnan(p)
        if has_p and label >= 0 and (label == 1) != (p >= threshold):
            painter.drawPixmap(image_rect.right() - 24, image_rect.y(), self._disagree(dpr))

        # Footer: name, then the probability bar.
        painter.setPen(theme.TEXT if selected else theme.MUTED)
        painter.setFont(self._small)  # a QStaticText is drawn in the painter's font
        name = self._name(path, side)
        painter.drawStaticText(QPointF(image_rect.x(), image_rect.bottom() + 4 + (15 - name.size().height()) / 2), name)
        bar = QRectF(image_rect.x(), image_rect.bottom() + 23, side - 40, 7)
        value_right = int(bar.right()) + 40
        if has_p:
            color = prob_color(p, threshold, band)
            painter.save()
            painter.setRenderHint(QPainter.Antialiasing)
            painter.setPen(Qt.NoPen)
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(bar.x(), bar.y(), max(3.0, bar.width() * p), bar.height()), 3, 3)
            tick = bar.x() + bar.width() * threshold
            painter.setPen(QPen(theme.TEXT, 1))
            painter.drawLine(QPointF(tick, bar.y() - 2), QPointF(tick, bar.bottom() + 2))
            painter.restore()
            painter.setPen(color)
            painter.setFont(self._bold)
            text = self._value(f"{p:.2f}", self._bold)
        else:
            painter.setPen(theme.MUTED)
            text = self._value("–", self._small)
        size = text.size()
        painter.drawStaticText(QPointF(value_right - size.width(), bar.y() + 3 - size.height() / 2), text)

    # -- cached pieces ----------------------------------------------------------------------------
    def _sprite(self, key: tuple, size: QSize, dpr: float, background=Qt.transparent) -> QPixmap:
        """A piece drawn once per thumbnail size and screen (`_draw_<key[0]>`), antialiased, at the screen's pixel
        density. An opaque one (on the grid's own background) is copied, not blended: a third of the time."""
        pixmap = self._sprites.get((key, size.width(), size.height(), dpr))
        if pixmap is None:
            pixmap = QPixmap(size * dpr)
            pixmap.setDevicePixelRatio(dpr)
            pixmap.fill(background)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.Antialiasing)
            getattr(self, f"_draw_{key[0]}")(painter, size, *key[1:])
            painter.end()
            self._sprites[(key, size.width(), size.height(), dpr)] = pixmap
        return pixmap

    def _card(self, selected: bool, size: QSize, dpr: float) -> QPixmap:
        return self._sprite(("card", selected), size, dpr, theme.BASE)

    def _badge(self, label: int, dpr: float) -> QPixmap:
        return self._sprite(("badge", label), self._badge_sizes[label], dpr)

    def _disagree(self, dpr: float) -> QPixmap:
        return self._sprite(("disagree",), QSize(25, 25), dpr)

    def _draw_card(self, painter: QPainter, size: QSize, selected: bool) -> None:
        """The card, the thumbnail's backdrop and the empty probability bar."""
        side = self.thumb_size
        painter.setPen(QPen(theme.ACCENT, 2.5) if selected else QPen(theme.BORDER, 1))
        painter.setBrush(SELECTED_CARD if selected else theme.PANEL)
        painter.drawRoundedRect(QRectF(0, 0, size.width(), size.height()).adjusted(3, 3, -3, -3), 6, 6)
        painter.setPen(Qt.NoPen)
        painter.setBrush(THUMB_BACKGROUND)
        painter.drawRoundedRect(QRectF(PAD, PAD, side, side), 4, 4)
        painter.setBrush(BAR_TRACK)
        painter.drawRoundedRect(QRectF(PAD, PAD + side - 1 + 23, side - 40, 7), 3, 3)

    def _draw_badge(self, painter: QPainter, size: QSize, label: int) -> None:
        badge = QRectF(0, 0, size.width() - 1, 17)
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.LABEL_COLORS["crack" if label == 1 else "no_crack"])
        painter.drawRoundedRect(badge, 8, 8)
        painter.setPen(QColor("white"))
        painter.setFont(self._bold)
        painter.drawText(badge, Qt.AlignCenter, BADGE_TEXT[label])

    def _draw_disagree(self, painter: QPainter, size: QSize) -> None:
        """A corner flag: the human label differs from the model's prediction."""
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.UNCERTAIN)
        painter.drawPolygon(QPolygonF([QPointF(0, 0), QPointF(25, 0), QPointF(25, 24)]))
        painter.setPen(QColor("#1e2229"))
        painter.setFont(self._bold)
        painter.drawText(QRect(12, 1, 12, 12), Qt.AlignCenter, "!")

    def _name(self, path: str, width: int) -> QStaticText:
        text = self._names.get((path, width))
        if text is None:
            if len(self._names) >= TEXT_CACHE_SIZE:
                self._names.clear()
            name = card_name(path)  # from Python: a file name need not survive a QString
            text = self._laid_out(QFontMetrics(self._small).elidedText(name, Qt.ElideMiddle, width), self._small)
            self._names[(path, width)] = text
        return text

    def _value(self, value: str, font: QFont) -> QStaticText:
        text = self._values.get(value)
        if text is None:
            text = self._values[value] = self._laid_out(value, font)
        return text

    @staticmethod
    def _laid_out(value: str, font: QFont) -> QStaticText:
        text = QStaticText(value)
        text.setTextFormat(Qt.PlainText)
        text.prepare(font=font)
        return text

    def _paint_thumbnail(self, painter: QPainter, rect: QRect, path: str) -> None:
        pixmap = self.thumbnails.pixmap(path)
        if pixmap is None:
            error = self.thumbnails.error(path)
            if error:
                painter.setPen(theme.CRACK)
                painter.setFont(self._small)
                painter.drawText(rect.adjusted(6, 6, -6, -6), CENTERED_WRAPPED, f"Cannot read\n{error}")
            return
        size = pixmap.size()
        if size.width() > rect.width() or size.height() > rect.height():  # until the resized one arrives
            size = size.scaled(rect.size(), Qt.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(rect.center())
        painter.drawPixmap(target, pixmap)  # already the shown size: no scaling while painting
        self.thumbnails.note_painted()
