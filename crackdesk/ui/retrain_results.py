"""The retrain dialog's results (mixed into RetrainDialog): retention on the starting model's memory and this
site's labels, each on its own line with its count, and new against current model in a table and two confusion
matrices, with rates withheld when too few images stand behind them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from ..core.estimates import accuracy_of_metrics
from ..core.retrain_report import NEEDS, TOO_FEW, retention_text, site_text
from . import theme
from .charts import ConfusionMatrix

COMPARED = ("accuracy", "precision", "recall", "f1", "auc")
RESULTS_TITLE = "The new model against the current one"


class RetrainResults:
    """Uses the dialog's retention_line and site_line labels."""

    def _build_results(self) -> QWidget:
        self.results_box = box = QGroupBox(RESULTS_TITLE)
        layout = QHBoxLayout(box)
        self.table = QTableWidget(len(COMPARED), 3)
        self.table.setHorizontalHeaderLabels(["New", "Current", "Change"])
        self.table.setVerticalHeaderLabels(COMPARED)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)  # no scroll bar when narrow
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setMinimumWidth(290)
        self.new_matrix = ConfusionMatrix("New model")
        self.old_matrix = ConfusionMatrix("Current model")
        layout.addWidget(self.table, 3)
        layout.addWidget(self.new_matrix, 2)
        layout.addWidget(self.old_matrix, 2)
        return box

    def _show_results(self, done: dict) -> None:
        for label, text in ((self.retention_line, retention_text(done.get("retention"), html=True)),
                            (self.site_line, site_text(done.get("site"), html=True))):
            label.setText(text)
            label.setVisible(bool(text))
        compare, retention = done.get("compare"), done.get("retention")
        if compare:
            self.results_box.setTitle(f"On the same {compare.get('images', 0):,} validation images: new vs current "
                                      "model")
            self._show_comparison(compare)
        elif retention:
            self.results_box.setTitle(f"On the memory's {retention.get('images', 0):,} held-out images: new vs "
                                      "starting model")
            self._show_comparison({"images": retention.get("images"), "new": retention.get("new"),
                                   "old": retention.get("base")})

    def _show_comparison(self, compare: dict) -> None:
        new, old = compare.get("new") or {}, compare.get("old")
        # Rates on a handful of images are noise ("accuracy 1.000 vs 0.500" on 12): the counts stay in the
        # confusion matrices, the rates are withheld (core/estimates.py).
        enough = accuracy_of_metrics(new).enough
        if not enough:
            self.results_box.setTitle(self.results_box.title().split(":")[0] + f": {TOO_FEW}")
            self.table.setToolTip(NEEDS)
        for row, key in enumerate(COMPARED):
            a, b = (new.get(key), (old or {}).get(key)) if enough else (None, None)
            cells = [f"{a:.3f}" if isinstance(a, (int, float)) else "—",
                     f"{b:.3f}" if isinstance(b, (int, float)) else "—", ""]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                cells[2] = f"{a - b:+.3f}"
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                if col == 2 and text:
                    item.setForeground(theme.NO_CRACK if a >= b else theme.CRACK)
                self.table.setItem(row, col, item)
        self.new_matrix.set_metrics(new)
        self.old_matrix.set_metrics(old)
        images = compare.get("images")
        if images and enough:
            self.table.setToolTip(f"{images:,} images")
