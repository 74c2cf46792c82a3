"""The thumbnail grid: a QListView in wrapping list mode (the layout Qt computes in segments when item sizes
are uniform, which stays fast at tens of thousands of items) with the labelling keys."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QListView

LABEL_KEYS = {Qt.Key_C: "crack", Qt.Key_N: "no_crack", Qt.Key_Space: "accept",
              Qt.Key_Backspace: None, Qt.Key_Delete: None}


class GalleryView(QListView):
    label_requested = Signal(object)  # "crack", "no_crack", "accept" or None (clear)
    open_requested = Signal()
    help_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ListMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.Adjust)
        self.setMovement(QListView.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.Batched)  # 40,000 items are laid out across event-loop turns
        self.setBatchSize(2000)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setSpacing(2)
        self.setMouseTracking(False)
        self.doubleClicked.connect(lambda _: self.open_requested.emit())

    def visible_rows(self) -> tuple[int, int]:
        """First and last row on screen, with a row of margin either way (estimated from the uniform
        item size: indexAt() misses in the spacing between cards)."""
        count = self.model().rowCount() if self.model() else 0
        rect = self.viewport().rect()
        first = max(0, self.indexAt(rect.topLeft() + QPoint(8, 8)).row())
        size = self.sizeHintForIndex(self.model().index(first, 0)) if count else None
        if size is None or size.width() <= 0 or size.height() <= 0:
            return 0, count - 1
        step_w = size.width() + 2 * self.spacing()
        step_h = size.height() + 2 * self.spacing()
        per_row = max(1, rect.width() // step_w)
        rows = rect.height() // step_h + 2
        return max(0, first - per_row), min(count - 1, first + per_row * (rows + 1))

    def keyPressEvent(self, event) -> None:
        key = event.key()
        plain = not (event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier))
        if plain and key in LABEL_KEYS:
            self.label_requested.emit(LABEL_KEYS[key])
            return
        if plain and key in (Qt.Key_Return, Qt.Key_Enter):
            self.open_requested.emit()
            return
        if key == Qt.Key_Question or (plain and key == Qt.Key_F1):
            self.help_requested.emit()
            return
        super().keyPressEvent(event)
