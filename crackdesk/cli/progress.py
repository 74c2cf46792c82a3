"""A progress bar on stderr: redrawn in place on a terminal, a line every 10% in logs."""

from __future__ import annotations

import sys
import time

from ..core.rates import RecentRate, format_duration, format_rate


class ProgressBar:
    def __init__(self, total: int, label: str = "", stream=None, width: int = 30):
        self.total, self.label, self.width = max(0, total), label, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._rate = RecentRate(self.start)
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, done: int) -> None:
        now = time.perf_counter()
        self._rate.add(done, now)
        rate = self._rate.rate(now)
        eta = self._rate.eta(self.total, now) or 0.0
        fraction = done / self.total if self.total else 1.0
        text = (f"{self.label} {done}/{self.total} {fraction:4.0%} "
                f"{format_rate(rate):>6} img/s  ETA {format_duration(eta)}")
        if self.tty:
            if now - self._last_draw < 0.1 and done < self.total:
                return
            filled = int(self.width * fraction)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {text}\033[K")
            self._last_draw = now
        else:
            decile = int(fraction * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
