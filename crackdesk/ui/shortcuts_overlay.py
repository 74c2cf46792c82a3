"""The keyboard help (F1 or ?): a translucent card over the window listing every shortcut."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget

from . import theme

SHORTCUTS = [
    ("Labelling", [("C", "Label crack"), ("N", "Label no crack"), ("Space", "Accept the model's prediction"),
                   ("Backspace / Delete", "Clear the label"), ("Ctrl+Z", "Undo"), ("Ctrl+Shift+Z", "Redo")]),
    ("Moving", [("Arrows", "Previous / next image"), ("PageUp / PageDown", "A screen up / down"),
                ("Home / End", "First / last image"), ("Enter", "Open the viewer"),
                ("Shift / Ctrl + click", "Select several (labels apply to all)")]),
    ("Viewer", [("+ / −", "Zoom in / out"), ("F", "Fit to window"), ("← / →", "Previous / next image"),
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
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor(10, 12, 16, 170))
        width, height = 720, 430
        card = QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)
        painter.setPen(theme.BORDER)
        painter.setBrush(theme.PANEL)
        painter.drawRoundedRect(card, 10, 10)
        title = QFont(self.font())
        title.setPointSizeF(title.pointSizeF() + 4)
        title.setBold(True)
        painter.setFont(title)
        painter.setPen(theme.TEXT)
        painter.drawText(card.adjusted(24, 16, -24, 0), Qt.AlignTop | Qt.AlignLeft, "Keyboard shortcuts")
        head = QFont(self.font())
        head.setBold(True)
        key_font = QFont(self.font())
        key_font.setBold(True)
        column_w = (width - 48) / 2
        for n, (section, items) in enumerate(SHORTCUTS):
            x = card.x() + 24 + (n % 2) * column_w
            y = card.y() + 62 + (n // 2) * 190
            painter.setFont(head)
            painter.setPen(theme.ACCENT)
            painter.drawText(QRectF(x, y, column_w, 20), Qt.AlignLeft, section.upper())
            for i, (key, what) in enumerate(items):
                row = QRectF(x, y + 26 + i * 24, column_w, 22)
                painter.setFont(key_font)
                painter.setPen(theme.UNCERTAIN)
                painter.drawText(row.adjusted(0, 0, -column_w * 0.55, 0), Qt.AlignLeft | Qt.AlignVCenter, key)
                painter.setFont(self.font())
                painter.setPen(theme.TEXT)
                painter.drawText(row.adjusted(column_w * 0.42, 0, 0, 0), Qt.AlignLeft | Qt.AlignVCenter, what)
        painter.setPen(theme.MUTED)
        painter.drawText(card.adjusted(0, 0, -24, -12), Qt.AlignBottom | Qt.AlignRight, "Press any key to close")
