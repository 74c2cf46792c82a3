"""Futures from the core (the workspace's writer, the site head) delivered to the GUI thread.

The core resolves a Future in its own thread; `when_done(future, callback)` runs `callback(future)` on the
GUI thread through a queued signal, so callbacks may touch widgets and models. A callback whose owner
was closed meanwhile is simply not run (the relay dies with the application)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Callable

from PySide6.QtCore import QCoreApplication, QObject, Signal


class _Relay(QObject):
    done = Signal(object, object)  # callback, future

    def __init__(self):
        super().__init__()
        self.done.connect(self._run)  # queued when emitted from another thread: runs on the GUI thread

    @staticmethod
    def _run(callback, future) -> None:
        callback(future)


_relay: _Relay | None = None


def when_done(future: Future, callback: Callable[[Future], None]) -> None:
    global _relay
    if _relay is None:
        _relay = _Relay()
        _relay.moveToThread(QCoreApplication.instance().thread())
    relay = _relay
    future.add_done_callback(lambda f: relay.done.emit(callback, f))
