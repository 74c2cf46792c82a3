"""The triage sidebar: filters with their counts, sort order, uncertainty band and the active model."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFrame, QLabel, QListWidget, QListWidgetItem, QVBoxLayout

from ..core.wording import count
from . import theme
from .gallery_model import FILTERS, SORTS

FILTER_COLORS = {"all": theme.ACCENT, "pred_crack": theme.CRACK, "pred_no_crack": theme.NO_CRACK,
                 "uncertain": theme.UNCERTAIN, "disagree": theme.UNCERTAIN, "not_reviewed": theme.UNKNOWN,
                 "reviewed": theme.TEXT}


def dot_icon(color: QColor, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


def heading(text: str) -> QLabel:
    label = QLabel(text.upper())
    label.setProperty("muted", True)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() - 1)
    font.setBold(True)
    label.setFont(font)
    return label


SITE_TIP = ("The model adapted to this folder: refitted on every label you give (none held back) plus its replay "
            "memory of concrete, so it learns this site without forgetting concrete. The base model file is never "
            "changed.")


class Sidebar(QFrame):
    filter_changed = Signal(str)
    sort_changed = Signal(str)
    band_changed = Signal(float)
    classify_again = Signal()  # the site head's note asks for windows it cannot rescore to run again

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedWidth(250)
        self.setStyleSheet(f"Sidebar {{ background: {theme.PANEL.name()}; border-right: 1px solid "
                           f"{theme.BORDER.name()}; }} QListWidget {{ background: transparent; border: none; }} "
                           f"QListWidget::item {{ padding: 5px 4px; border-radius: 4px; }} "
                           f"QListWidget::item:selected {{ background: #353c48; color: white; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(heading("Show"))
        self.filters = QListWidget()
        self.filters.setFocusPolicy(Qt.NoFocus)
        self.filters.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.filters.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        for key, text in FILTERS.items():
            item = QListWidgetItem(dot_icon(FILTER_COLORS[key]), text)
            item.setData(Qt.UserRole, key)
            self.filters.addItem(item)
        self.filters.setFixedHeight(len(FILTERS) * 31 + 6)
        self.filters.currentItemChanged.connect(
            lambda item, _: item is not None and self.filter_changed.emit(item.data(Qt.UserRole)))
        layout.addWidget(self.filters)
        layout.addSpacing(10)
        layout.addWidget(heading("Sort by"))
        self.sort = QComboBox()
        for key, text in SORTS.items():
            self.sort.addItem(text, key)
        self.sort.currentIndexChanged.connect(lambda _: self.sort_changed.emit(self.sort.currentData()))
        layout.addWidget(self.sort)
        layout.addSpacing(10)
        layout.addWidget(heading("Uncertainty band (±)"))
        self.band = QDoubleSpinBox()
        self.band.setRange(0.01, 0.5)
        self.band.setSingleStep(0.05)
        self.band.setDecimals(2)
        self.band.setToolTip("Uncertain: P(crack) within this distance of the model's threshold")
        self.band.valueChanged.connect(self.band_changed)
        layout.addWidget(self.band)
        layout.addSpacing(14)
        layout.addWidget(heading("Active model"))
        self.model_info = QLabel("No model")
        self.model_info.setWordWrap(True)
        self.model_info.setTextFormat(Qt.RichText)
        layout.addWidget(self.model_info)
        layout.addSpacing(14)
        self.site_heading = heading("This site")
        layout.addWidget(self.site_heading)
        self.site_info = QLabel()
        self.site_info.setWordWrap(True)
        self.site_info.setTextFormat(Qt.RichText)
        self.site_info.linkActivated.connect(lambda _: self.classify_again.emit())
        self.site_info.setToolTip(SITE_TIP)
        layout.addWidget(self.site_info)
        self._site_busy = False
        self._site_text = ""
        self.set_site(None, None)
        layout.addStretch(1)
        legend = QLabel(f"<span style='color:{theme.CRACK.name()}'>■</span> crack &nbsp; "
                        f"<span style='color:{theme.NO_CRACK.name()}'>■</span> no crack &nbsp; "
                        f"<span style='color:{theme.UNCERTAIN.name()}'>■</span> uncertain")
        legend.setProperty("muted", True)
        layout.addWidget(legend)
        self.filters.setCurrentRow(0)

    def set_state(self, filter_name: str, sort_name: str, band: float) -> None:
        for widget in (self.filters, self.sort, self.band):
            widget.blockSignals(True)
        keys = list(FILTERS)
        self.filters.setCurrentRow(keys.index(filter_name) if filter_name in keys else 0)
        self.sort.setCurrentIndex(max(0, self.sort.findData(sort_name)))
        self.band.setValue(band)
        for widget in (self.filters, self.sort, self.band):
            widget.blockSignals(False)

    def select_filter(self, name: str) -> None:
        self.filters.setCurrentRow(list(FILTERS).index(name))

    def set_counts(self, counts: dict[str, int]) -> None:
        for row, key in enumerate(FILTERS):
            item = self.filters.item(row)
            n = counts.get(key)
            item.setText(FILTERS[key] if n is None else f"{FILTERS[key]}   {n:,}")

    def set_model(self, info) -> None:
        if info is None:
            self.model_info.setText("No model available.<br>Import one in <b>Models</b>.")
            return
        m = info.metrics or {}
        metrics = " · ".join(f"{k} {m[k]:.3f}" for k in ("accuracy", "f1") if isinstance(m.get(k), (int, float)))
        self.model_info.setText(f"<b>{info.name}</b> {info.version}<br>"
                                f"<span style='color:{theme.MUTED.name()}'>{info.architecture} · threshold "
                                f"{info.threshold:.2f}<br>{metrics}</span>")

    # -- the site adaptation ------------------------------------------------------------------------
    def set_site(self, state, problem: str | None) -> None:
        """What the folder's site head rests on and how good it is (figures only when they mean something)."""
        muted = theme.MUTED.name()
        if problem:
            text = f"<span style='color:{muted}'>Adaptation unavailable: {html.escape(problem.split(': ', 1)[-1])}</span>"
        elif state is None or not state.adapted:
            text = (f"<span style='color:{muted}'>The base model alone: label a few photos and it adapts to this "
                    "site after each one.</span>")
        else:
            lines = [f"<b>Adapted</b> on {count(state.n_labels, 'label')} ({state.n_crack:,} crack, "
                     f"{state.n_labels - state.n_crack:,} no crack)"]
            if state.cv is not None:
                lines.append("This site: " + html.escape(state.quality()))
            if state.retention is not None:
                lines.append("Concrete: " + html.escape(state.retention_text()).replace("-&gt;", "→"))
            text = "<br>".join(lines)
        notes = state.notes if state is not None and not problem else []
        if notes:  # what the head could not use, and what to do: the action first, each note short (whole: tooltip)
            if state.run_again:
                n = state.run_again
                text += (f"<br><a href='classify' style='color:{theme.ACCENT.name()}'>Classify "
                         f"{'this photo' if n == 1 else f'these {n:,} photos'} again</a>")
            text += "".join(f"<br><span style='color:{muted}'>{html.escape(_short(note))}</span>" for note in notes[:2])
        self.site_info.setToolTip(SITE_TIP + ("\n\n" + "\n".join(notes) if notes else ""))
        self._site_text = text
        self._show_site()

    def set_site_busy(self, busy: bool) -> None:
        self._site_busy = busy
        self._show_site()

    def _show_site(self) -> None:
        suffix = f"<br><span style='color:{theme.MUTED.name()}'>updating…</span>" if self._site_busy else ""
        self.site_info.setText(self._site_text + suffix)


def _short(note: str, limit: int = 90) -> str:
    """A note as one or two sidebar lines: its first part, cut at a word ("…"); the tooltip has it whole."""
    first = note.split(" (", 1)[0] if len(note) > limit else note
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0] + "…"
