"""The keyboard help (F1 or ?): a translucent card over the window listing every shortcut."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtWidgets import QWidget

from . import theme

SHORTCUTS = [
    ("Labelling", [("C", "Label crack"), ("N", "Label no crack"), ("Space", "Accept the model's prediction"),
                   ("Backspace / Delete", "Clear the label"), ("Ctrl+Z", "Undo"), ("Ctrl+Shift+Z", "Redo")]),
    ("Moving", [("U", "The most useful photo to label next"), ("Arrows", "Previous / next image"),
                ("PageUp / PageDown", "A screen up / down"),
                ("Home / End", "First / last image"), ("Enter", "Open the viewer"),
                ("Shift / Ctrl + click", "Select several (labels apply to all)")]),
    ("Viewer", [("+ / −", "Zoom in / out"), ("F", "Fit to window"), ("← / →", "Previous / next image"),
                ("H", "Heatmap on / off"), ("C / N / Delete", "Label the tile under the mouse"),
                ("Esc", "Close the viewer")]),
    ("App", [("Ctrl+O", "Open a folder"), ("Ctrl+R", "Classify"), ("Ctrl+M", "Models"),
             ("Ctrl+T", "Retrain"), ("Ctrl+= / Ctrl+-", "Larger / smaller thumbnails"), ("F1 or ?", "This help")]),
]


class ShortcutsOverlay(QWidget):
    """Covers its parent; any key or click closes it."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WA_StyledBackground, False)
        self.setFocusPolicy(Qt.StrongFocus)
        parent.installEventFilter(self)
        self.hide()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.parent() and event.type() == QEvent.Resize:
            self.setGeometry(self.parent().rect())
        return False

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.setGeometry(self.parent().rect())
            self.show()
            self.raise_()
            self.setFocus()

    def keyPressEvent(self, event) -> None:
        self.hide()

    def mousePressEvent(self, event) -> None:
        self.hide()

    def paintEvent(self, event) -> None:
        """Two columns of sections, sized from the fonts' metrics so no text runs into the next."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor(10, 12, 16, 170))
        title, head, key_font, text_font = (QFont(self.font()) for _ in range(4))
        title.setPointSizeF(title.pointSizeF() + 4)
        for font in (title, head, key_font):
            font.setBold(True)
        keys, texts, line = QFontMetricsF(key_font), QFontMetricsF(text_font), QFontMetricsF(text_font).height() + 6
        key_w = max(keys.horizontalAdvance(k) for _, items in SHORTCUTS for k, _ in items) + 16
        text_w = max(texts.horizontalAdvance(t) for _, items in SHORTCUTS for _, t in items)
        column_w, pad, gap = key_w + text_w, 24, 32
        columns = [SHORTCUTS[: (len(SHORTCUTS) + 1) // 2], SHORTCUTS[(len(SHORTCUTS) + 1) // 2:]]
        heights = [sum(line * (len(items) + 1) + 10 for _, items in column) for column in columns]
        width = 2 * pad + 2 * column_w + gap
        height = pad + QFontMetricsF(title).height() + 16 + max(heights) + line + pad
        card = QRectF((self.width() - width) / 2, max(8, (self.height() - height) / 2), width, height)
        painter.setPen(theme.BORDER)
        painter.setBrush(theme.PANEL)
        painter.drawRoundedRect(card, 10, 10)
        painter.setFont(title)
        painter.setPen(theme.TEXT)
        painter.drawText(card.adjusted(pad, pad - 8, -pad, 0), Qt.AlignTop | Qt.AlignLeft, "Keyboard shortcuts")
        top = card.y() + pad + QFontMetricsF(title).height() + 16
        for c, column in enumerate(columns):
            x, y = card.x() + pad + c * (column_w + gap), top
            for section, items in column:
                painter.setFont(head)
                painter.setPen(theme.ACCENT)
                painter.drawText(QRectF(x, y, column_w, line), Qt.AlignLeft | Qt.AlignVCenter, section.upper())
                y += line
                for key, what in items:
                    painter.setFont(key_font)
                    painter.setPen(theme.UNCERTAIN)
                    painter.drawText(QRectF(x, y, key_w, line), Qt.AlignLeft | Qt.AlignVCenter, key)
                    painter.setFont(text_font)
                    painter.setPen(theme.TEXT)
                    painter.drawText(QRectF(x + key_w, y, text_w, line), Qt.AlignLeft | Qt.AlignVCenter, what)
                    y += line
                y += 10
        painter.setPen(theme.MUTED)
        painter.drawText(card.adjusted(0, 0, -pad, -12), Qt.AlignBottom | Qt.AlignRight, "Press any key to close")
