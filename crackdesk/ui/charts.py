"""Small charts painted with QPainter (QtCharts is not part of PySide6-Essentials): training curves
per epoch, and a confusion matrix."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from . import theme

SERIES = (("train_loss", "train loss", QColor("#7aa2ff"), "loss"),
          ("val_loss", "validation loss", QColor("#c792ea"), "loss"),
          ("val_accuracy", "validation accuracy", theme.NO_CRACK, "accuracy"))


class CurvesWidget(QWidget):
    """Loss (left axis, from 0) and validation accuracy (right axis, 0..1) against the epoch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.points: list[dict] = []
        self.epochs = 0

    def minimumSizeHint(self) -> QSize:
        # As wide as the legend, so no series name is cut off when the dialog is narrow.
        metrics = QFontMetrics(self._small_font())
        return QSize(46 + sum(40 + metrics.horizontalAdvance(label) for _, label, _, _ in SERIES), 200)

    def _small_font(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(8.5)
        return small

    def clear(self) -> None:
        self.points = []
        self.update()

    def add_epoch(self, event: dict) -> None:
        self.points.append(event)
        self.epochs = max(self.epochs, int(event.get("epochs") or 0), len(self.points))
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), theme.BASE)
        p.setFont(self._small_font())
        plot = QRectF(self.rect()).adjusted(46, 28, -46, -26)
        p.setPen(QPen(theme.BORDER, 1))
        for i in range(5):
            y = plot.top() + plot.height() * i / 4
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        losses = [e[k] for e in self.points for k in ("train_loss", "val_loss") if isinstance(e.get(k), (int, float))]
        top_loss = max(losses) * 1.1 if losses else 1.0
        n = max(self.epochs, 1)
        p.setPen(theme.MUTED)
        for i in range(5):
            y = plot.top() + plot.height() * i / 4
            p.drawText(QRectF(0, y - 8, plot.left() - 6, 16), Qt.AlignRight | Qt.AlignVCenter,
                       f"{top_loss * (1 - i / 4):.2f}")
            p.drawText(QRectF(plot.right() + 6, y - 8, 40, 16), Qt.AlignLeft | Qt.AlignVCenter, f"{1 - i / 4:.2f}")
        for epoch in range(1, n + 1):
            if n <= 12 or epoch % max(1, n // 10) == 0 or epoch == n:
                x = self._x(plot, epoch, n)
                p.drawText(QRectF(x - 15, plot.bottom() + 4, 30, 16), Qt.AlignCenter, str(epoch))
        p.drawText(QRectF(0, plot.bottom() + 4, plot.left() - 6, 18), Qt.AlignRight, "epoch")
        x_legend = plot.left()
        for key, label, color, axis in SERIES:
            p.setPen(QPen(color, 2))
            p.drawLine(QPointF(x_legend, 12), QPointF(x_legend + 18, 12))
            p.setPen(theme.TEXT)
            p.drawText(QPointF(x_legend + 24, 16), label)
            x_legend += 40 + p.fontMetrics().horizontalAdvance(label)
            values = [(int(e["epoch"]), e[key]) for e in self.points if isinstance(e.get(key), (int, float))]
            if not values:
                continue
            scale = top_loss if axis == "loss" else 1.0
            path = QPainterPath()
            for i, (epoch, v) in enumerate(values):
                pt = QPointF(self._x(plot, epoch, n), plot.bottom() - plot.height() * min(1.0, v / scale))
                path.moveTo(pt) if i == 0 else path.lineTo(pt)
            p.setPen(QPen(color, 2.2))
            p.setBrush(Qt.NoBrush)
            p.drawPath(path)
            p.setBrush(color)
            for epoch, v in values:
                p.drawEllipse(QPointF(self._x(plot, epoch, n), plot.bottom() - plot.height() * min(1.0, v / scale)),
                              3, 3)
        if not self.points:
            p.setPen(theme.MUTED)
            p.drawText(plot, Qt.AlignCenter, "Curves appear here after the first epoch")

    @staticmethod
    def _x(plot: QRectF, epoch: int, n: int) -> float:
        return plot.left() + (plot.width() * (epoch - 1) / (n - 1) if n > 1 else plot.width() / 2)


class ConfusionMatrix(QWidget):
    """2x2 counts, rows = true class, columns = predicted class; cells shaded by their share of the row."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.metrics: dict | None = None
        self.setMinimumSize(200, 190)

    def set_metrics(self, metrics: dict | None) -> None:
        self.metrics = metrics
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        bold = QFont(self.font())
        bold.setBold(True)
        p.setFont(bold)
        p.setPen(theme.TEXT)
        p.drawText(QRectF(0, 0, self.width(), 20), Qt.AlignCenter, self.title)
        p.setFont(self.font())
        if not self.metrics:
            p.setPen(theme.MUTED)
            p.drawText(QRectF(self.rect()), Qt.AlignCenter, "no model to compare")
            return
        m = self.metrics
        cells = [[m.get("tp", 0), m.get("fn", 0)], [m.get("fp", 0), m.get("tn", 0)]]  # rows: crack, no crack
        names = ["crack", "no crack"]
        left, top = 76.0, 62.0
        size = min((self.width() - left - 10) / 2, (self.height() - top - 10) / 2)
        p.setPen(theme.MUTED)
        p.drawText(QRectF(left, 22, 2 * size, 18), Qt.AlignCenter, "predicted →")
        for j, name in enumerate(names):
            p.drawText(QRectF(left + j * size, top - 18, size, 16), Qt.AlignCenter, name)
            p.drawText(QRectF(0, top + j * size, left - 8, size), Qt.AlignRight | Qt.AlignVCenter,
                       f"true\n{name}")
        for i in range(2):
            row_total = max(1, sum(cells[i]))
            for j in range(2):
                share = cells[i][j] / row_total
                good = i == j
                base = theme.NO_CRACK if good else theme.CRACK
                color = QColor(base)
                color.setAlphaF(0.15 + 0.75 * share)
                rect = QRectF(left + j * size + 2, top + i * size + 2, size - 4, size - 4)
                p.setPen(Qt.NoPen)
                p.setBrush(color)
                p.drawRoundedRect(rect, 5, 5)
                p.setPen(theme.TEXT)
                p.setFont(bold)
                p.drawText(rect, Qt.AlignCenter, f"{cells[i][j]}\n{share:.0%}")
                p.setFont(self.font())
