"""The status bar's right side: what is running, its progress with rate and ETA, and a cancel button."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ..core.rates import format_duration, format_rate


class JobBar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        self.text = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setFixedHeight(22)
        self.cancel_button.clicked.connect(self._cancel)
        layout.addWidget(self.text)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.jobs: list = []
        self.timer = QTimer(self, interval=250)
        self.timer.timeout.connect(self.refresh)
        self.refresh()

    def add(self, job) -> None:
        self.jobs.append(job)
        job.over.connect(lambda j=job: self._remove(j))
        self.timer.start()
        self.refresh()

    def _remove(self, job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.refresh()

    def _cancel(self) -> None:
        if self.jobs:
            self.jobs[-1].cancel()
            self.text.setText(f"{self.jobs[-1].title}: cancelling…")

    def current(self):
        return self.jobs[-1] if self.jobs else None

    def refresh(self) -> None:
        job = self.current()
        for w in (self.text, self.bar, self.cancel_button):
            w.setVisible(job is not None)
        if job is None:
            self.timer.stop()
            return
        if job.cancelled:
            return
        if job.total:
            self.bar.setRange(0, job.total)
            self.bar.setValue(job.done)
            rate = job.rate()
            parts = [f"{job.title}  {job.done:,} / {job.total:,}"]
            if rate:
                parts.append(f"{format_rate(rate)} img/s")
                eta = format_duration(job.eta())
                if eta:
                    parts.append(f"ETA {eta}")
            self.text.setText("  ·  ".join(parts))
        else:
            self.bar.setRange(0, 0)
            self.text.setText(f"{job.title}…")
