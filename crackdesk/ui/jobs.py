"""Work off the GUI thread, two ways, each for one kind of work:

* `Job`: long work (opening a folder, hashing, classifying, exporting, importing, adapting): one QThread
  each, with progress, a partial result, success or failure, and cancel. Shown in the status bar.
* `run_in_pool`: many short tasks (a thumbnail, the viewer's picture) on a thread pool, each handing its
  result to a callback on the GUI thread. Too small and too many to show or cancel one by one.
(Training is neither: it runs in a child process, see retrain_dialog.py.)

Each job is a QThread running one method of the folder's session (core/session.py) or another plain core
function; it reports through queued signals (progress, partial results, result or failure) and stops when
its cancel event is set. User errors
(CrackDeskError) arrive as a one-line message; anything else also goes to stderr for the developers.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from ..core.errors import CrackDeskError
from ..core.rates import RecentRate
from ..core.site_photos import photo_p_under
from .gallery_model import RowArrays


BACKGROUND_NICE = 10
# A refit the inspector waits for (a fraction of a second) goes before throughput work such as classification,
# and still after the GUI thread (nice 0).
WAITED_FOR_NICE = 4


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Make the calling thread (and the threads it starts: decoders, onnxruntime's pool) yield the CPU to
    the GUI thread. On Linux the nice value is per thread and inherited; elsewhere this does nothing."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except (OSError, AttributeError):
            pass


class Job(QThread):
    """Public signals are emitted on the GUI thread: the worker emits private ones, which reach this
    object's own slots through queued connections (it lives on the GUI thread) and are passed on. So any
    callable connected to a public signal, lambdas included, runs on the GUI thread."""

    progress = Signal(int, int)  # done, total
    partial = Signal(object)  # job-specific intermediate result
    succeeded = Signal(object)
    failed = Signal(str)
    over = Signal()  # after succeeded / failed, whatever happened
    _progress = Signal(int, int)
    _partial = Signal(object)
    _succeeded = Signal(object)
    _failed = Signal(str)

    def __init__(self, title: str, fn: Callable[["Job"], object], parent=None):
        super().__init__(parent)
        self.title = title
        self.fn = fn
        self.nice = BACKGROUND_NICE
        self.cancel_event = threading.Event()
        self.started_at = 0.0
        self._rate = RecentRate(0.0)  # replaced when the job starts
        self.done = 0
        self.total = 0
        self._progress.connect(self._on_progress)
        self._partial.connect(self._on_partial)
        self._succeeded.connect(self._on_succeeded)
        self._failed.connect(self._on_failed)
        self.finished.connect(self._on_finished)

    def _on_progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self._rate.add(done, time.monotonic())
        self.progress.emit(done, total)

    def _on_partial(self, value) -> None:
        self.partial.emit(value)

    def _on_succeeded(self, value) -> None:
        self.succeeded.emit(value)

    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)

    def _on_finished(self) -> None:
        self.over.emit()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def rate(self) -> float:
        """Items per second lately (core/rates.py)."""
        return self._rate.rate(time.monotonic())

    def eta(self) -> float | None:
        return self._rate.eta(self.total, time.monotonic())

    def run(self) -> None:
        lower_thread_priority(self.nice)
        self.started_at = time.monotonic()
        self._rate = RecentRate(self.started_at)
        try:
            result = self.fn(self)
        except CrackDeskError as e:
            self._failed.emit(str(e))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            self._failed.emit(f"{self.title} failed: {type(e).__name__}: {e}")
        else:
            self._succeeded.emit(result)


def open_folder_job(session, registry, parent=None) -> Job:
    """Scan (partial: the list of paths, shown at once), then open the workspace, choose the folder's model (the
    one it was last used with, else the default) and read its rows in display order. Result: (session, rows)."""

    def work(job: Job):
        scanned = session.scan(job.cancel_event)
        job._partial.emit([f.relpath for f in scanned])
        session.open_workspace()
        remembered = session.remembered_model()
        try:
            entry = registry.find(remembered) if remembered else registry.default()
        except CrackDeskError:  # the folder's model was removed since
            entry = registry.default()
        if entry is not None:
            session.use_model(entry, remember=remembered is None)
        return session, RowArrays.from_rows(session.rows(entry.key if entry else None))

    return Job("Opening the folder", work, parent)


def rows_job(session, model_key: str | None, order: list[str], parent=None) -> Job:
    """Labels and the model's predictions re-read from the store, in the grid's order. Result: RowArrays."""
    return Job("Loading predictions", lambda job: RowArrays.from_rows(session.rows(model_key, order)), parent)


def hash_job(session, parent=None) -> Job:
    return Job("Indexing", lambda job: session.hash_missing(job.cancel_event,
                                                            lambda d, t: job._progress.emit(d, t)), parent)


def classify_job(session, model_path, items: list[tuple[int, str]], parent=None) -> Job:
    """Partial results: {image id: (base P(crack), current P(crack)) or None} per batch, as soon as the batch is
    stored; the current one is the site head's when the folder is adapted (the head of the latest refit, so
    labels given during classification count for the images classified after them). Result: the ClassifyReport."""

    def work(job: Job):
        classifier = session.classifier(model_path)
        job._progress.emit(0, len(items))

        def on_batch(pairs, done, total):
            out = {image_id: None if pred.p_crack is None else (pred.p_crack, pred.p_crack) for image_id, pred in pairs}
            head = session.site_head()
            adapted = [(image_id, pred) for image_id, pred in pairs
                       if pred.p_crack is not None and pred.features is not None]
            if head is not None and adapted:  # the batch's site probabilities in one product, not one per image
                site = head.probabilities(np.stack([pred.features for _, pred in adapted]))
                for (image_id, pred), p in zip(adapted, site.tolist()):
                    out[image_id] = (pred.p_crack, p)
            if head is not None:  # large photos: their windows rescored, then the verdict rule (decision 38)
                for image_id, pred in pairs:
                    if pred.tiles and pred.window_features is not None:
                        out[image_id] = (pred.p_crack, photo_p_under(head, pred.tiles, pred.window_features,
                                                                      classifier.window_projection))
            job._partial.emit(out)
            job._progress.emit(done, total)

        return session.classify(classifier, items, job.cancel_event, on_batch)

    return Job("Classifying", work, parent)


class _PoolRelay(QObject):
    done = Signal(object, object)  # callback, result

    def __init__(self):
        super().__init__()
        self.done.connect(lambda callback, result: callback(result))  # queued: runs on the GUI thread


class _PoolTask(QRunnable):
    def __init__(self, fn, callback, relay: _PoolRelay, nice: int):
        super().__init__()
        self.fn, self.callback, self.relay, self.nice = fn, callback, relay, nice

    def run(self) -> None:
        if getattr(_pool_thread, "nice", None) != self.nice:
            lower_thread_priority(self.nice)  # once per pool thread
            _pool_thread.nice = self.nice
        try:
            result = self.fn()
        except Exception:  # a bug: the task's owner never hears back, the developers see why
            traceback.print_exc(file=sys.stderr)
            return
        if self.callback is not None:
            self.relay.done.emit(self.callback, result)


_pool_thread = threading.local()
_relay: _PoolRelay | None = None


def run_in_pool(pool: QThreadPool, fn: Callable[[], object], callback: Callable[[object], None] | None = None,
                nice: int = BACKGROUND_NICE) -> None:
    """fn() on `pool`; callback(result) on the GUI thread. `nice` ranks the pool's threads below the GUI."""
    global _relay
    if _relay is None:
        _relay = _PoolRelay()
    pool.start(_PoolTask(fn, callback, _relay, nice))


def function_job(title: str, fn: Callable, parent=None) -> Job:
    """fn(cancel_event, progress(done, total)) -> result."""
    return Job(title, lambda job: fn(job.cancel_event, lambda d, t: job._progress.emit(d, t)), parent)
