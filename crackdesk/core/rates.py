"""The progress figures both the window's job bar and the command line's progress bar show: the rate over the
last RATE_WINDOW_S seconds, the time left at that rate, and how both are written.

A whole-run average misleads as soon as the work changes speed: small patches then camera photos in one folder,
or a first pass that runs every window once the inspector's first label comes (decision 42) and gets three times
slower, whose ETA stayed a third of the truth for minutes."""

from __future__ import annotations

from collections import deque

RATE_WINDOW_S = 20.0


class RecentRate:
    """Items a second over about the last RATE_WINDOW_S (since the start until then), from (time, done) samples."""

    def __init__(self, started: float):
        self._samples = deque([(started, 0)])

    def add(self, done: int, now: float) -> None:
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW_S:
            samples.popleft()  # the oldest kept is the last one before the window: the span covers it whole

    @property
    def done(self) -> int:
        return self._samples[-1][1]

    def rate(self, now: float) -> float:
        """0 until something is done (or in the first 0.2 s); falls while nothing more gets done."""
        (t0, d0), done = self._samples[0], self.done
        span = now - t0
        return (done - d0) / span if span > 0.2 and done > d0 else 0.0

    def eta(self, total: int, now: float) -> float | None:
        rate = self.rate(now)
        return max(0.0, total - self.done) / rate if rate else None


def format_rate(rate: float) -> str:
    """Images a second: whole under a crowd of small patches, one decimal for camera photos (2-5 a second)."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def format_duration(seconds: float | None) -> str:
    """h:mm:ss from an hour on, else m:ss; "" for None (not known yet)."""
    if seconds is None:
        return ""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"
