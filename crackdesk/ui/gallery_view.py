"""The thumbnail grid: a QListView in wrapping list mode (the layout Qt computes in segments when item sizes
are uniform, which stays fast at tens of thousands of items) with the labelling keys."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QAbstractItemView, QListView

LABEL_KEYS = {Qt.Key_C: "crack", Qt.Key_N: "no_crack", Qt.Key_Space: "accept",
              Qt.Key_Backspace: None, Qt.Key_Delete: None}


CARD_GAP = 4  # pixels between cards
SCROLL_RETRY_MS = 30
SCROLL_TRIES = 200  # 6 s: a 40,000-row layout beside a running classification


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
        # A layout turn costs one Python call (rowCount, via index()) a card, each needing the GIL back from the
        # classification threads: 100 cards a turn keeps a turn to a few ms even then.
        self.setBatchSize(100)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(False)
        self.doubleClicked.connect(lambda _: self.open_requested.emit())
        self._scroll_target = QPersistentModelIndex()
        self._scroll_tries = 0
        self._scroll_timer = QTimer(self, singleShot=True, interval=SCROLL_RETRY_MS)
        self._scroll_timer.timeout.connect(self._scroll_again)
        self.verticalScrollBar().actionTriggered.connect(lambda _: self._stop_scrolling())  # the user scrolls
        # PySide builds the viewport's wrapper, and some 45 enum types with it, on first use (13-20 ms): here, not
        # in the middle of opening a folder.
        self.viewport()

    def scroll_to(self, index: QModelIndex) -> None:
        """scrollTo that also reaches a card right after the rows were reset (a filter, a sort, a reload): Qt lays
        out 100 cards a turn and cannot scroll past what it has laid out, so this tries again as the layout grows
        (until the card is on screen, the user scrolls, or SCROLL_RETRY_MS * SCROLL_TRIES have passed)."""
        self._scroll_target = QPersistentModelIndex(index)
        self._scroll_tries = 0
        self._scroll_again()

    def _scroll_again(self) -> None:
        index = QModelIndex(self._scroll_target)
        if not index.isValid():
            return
        self.scrollTo(index)
        if self.viewport().rect().intersects(self.visualRect(index)) or self._scroll_tries >= SCROLL_TRIES:
            self._stop_scrolling()
            return
        self._scroll_tries += 1
        self._scroll_timer.start()

    def _stop_scrolling(self) -> None:
        self._scroll_target = QPersistentModelIndex()
        self._scroll_timer.stop()

    def set_card_size(self, size: QSize) -> None:
        """Cards sit on a grid: Qt then lays out a card without asking its size (half the Python calls of a
        layout pass). The size is the delegate's (GalleryDelegate.card_size), set by the window with it."""
        self.setGridSize(QSize(size.width() + CARD_GAP, size.height() + CARD_GAP))

    def visible_rows(self) -> tuple[int, int]:
        """First and last row on screen, with a row of margin either way (from the grid: indexAt() misses
        in the gap between cards)."""
        count = self.model().rowCount() if self.model() else 0
        step_w, step_h = self.gridSize().width(), self.gridSize().height()
        if step_w <= 0 or step_h <= 0:
            return 0, count - 1  # no card size yet: every row
        rect = self.viewport().rect()
        first = max(0, self.indexAt(rect.topLeft() + QPoint(8, 8)).row())
        per_row = max(1, rect.width() // step_w)
        rows = rect.height() // step_h + 2
        return max(0, first - per_row), min(count - 1, first + per_row * (rows + 1))

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:
        """Repaint the changed cards, nothing more. Qt's list mode answers any dataChanged, even of one card, by
        laying out every row again: two Python calls a row, 80,000 at 40,000 photos, on every label, refit and
        classified batch. Cards all have one size (uniform item sizes), so a new label or P(crack) never moves
        one. A range repaints the band of grid lines it spans, clipped to the screen (the viewport would repaint
        every card on screen, about 10 ms, for each classified photo or thumbnail): the model sends whole ranges
        and leaves what is visible to the view."""
        shown_first, shown_last = self.visible_rows()
        low, high = max(top_left.row(), shown_first), min(bottom_right.row(), shown_last)
        if low > high:
            return  # off screen: painted when scrolled to
        model = self.model()  # only on-screen cards are asked for their place: those are laid out already
        first, last = self.visualRect(model.index(low)), self.visualRect(model.index(high))
        if first.isEmpty() or last.isEmpty():
            self.viewport().update()
        elif first.top() == last.top():
            self.viewport().update(first.united(last))
        else:  # several grid lines: the whole width of each
            self.viewport().update(QRect(0, first.top(), self.viewport().width(), last.bottom() - first.top() + 1))

    def update_cards_of(self, paths: list[str]) -> None:
        """Repaint the cards on screen that show these images (thumbnails that arrived)."""
        model = self.model()
        if model is None or not paths:
            return
        wanted = set(paths)
        first, last = self.visible_rows()
        for row in range(max(0, first), min(last, model.rowCount() - 1) + 1):
            if model.path_at(row) in wanted:
                self.update(model.index(row))

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
