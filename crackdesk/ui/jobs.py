"""Long work off the GUI thread: opening a folder, hashing, classifying, exporting and importing.

Each job is a QThread running one plain function of the core; it reports through queued signals
(progress, partial results, result or failure) and stops when its cancel event is set. User errors
(CrackDeskError) arrive as a one-line message; anything else also goes to stderr for the developers.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Callable

from PySide6.QtCore import QThread, Signal

from ..core.classify import classify_into_workspace
from ..core.errors import CrackDeskError
from ..core.exchange import ensure_hashes
from ..core.inference import Classifier
from ..core.scan import natural_key, scan_folder
from ..core.store import open_workspace
from .gallery_model import RowArrays


BACKGROUND_NICE = 10


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
        self.cancel_event = threading.Event()
        self.started_at = 0.0
        self.done = 0
        self.total = 0
        self._progress.connect(self._on_progress)
        self._partial.connect(self._on_partial)
        self._succeeded.connect(self._on_succeeded)
        self._failed.connect(self._on_failed)
        self.finished.connect(self._on_finished)

    def _on_progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
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
        """Items per second so far."""
        elapsed = time.monotonic() - self.started_at
        return self.done / elapsed if elapsed > 0.2 and self.done else 0.0

    def eta(self) -> float | None:
        r = self.rate()
        return (self.total - self.done) / r if r else None

    def run(self) -> None:
        lower_thread_priority()
        self.started_at = time.monotonic()
        try:
            result = self.fn(self)
        except CrackDeskError as e:
            self._failed.emit(str(e))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            self._failed.emit(f"{self.title} failed: {type(e).__name__}: {e}")
        else:
            self._succeeded.emit(result)


def open_folder_job(folder, workspace_path, model_key: str | None, parent=None) -> Job:
    """Scan (partial: the list of paths, shown at once), then open the workspace, sync it and read its rows
    in display order. Result: (workspace, rows)."""

    def work(job: Job):
        scanned = scan_folder(folder, cancel=job.cancel_event)
        order = [f.relpath for f in scanned]
        job._partial.emit(order)
        ws = open_workspace(folder, workspace_path)
        try:
            ws.sync(scanned)
            rows = sorted_rows(ws, model_key, order)
        except BaseException:
            ws.close()
            raise
        return ws, rows

    return Job("Opening the folder", work, parent)


def sorted_rows(ws, model_key: str | None, order: list[str] | None = None) -> RowArrays:
    """The store's rows in display order (natural path order) as the gallery model's arrays.

    With `order` (the scan's paths, already naturally sorted) rows are placed by a dict lookup: no sort,
    whose C-level comparisons would hold the GIL (and so freeze the GUI thread) for ~0.1 s at 40,000 rows."""
    rows = ws.rows(model_key)
    if order is not None:
        by_path = {r.path: r for r in rows}
        placed = [by_path.pop(p) for p in order if p in by_path]
        rows = placed + sorted(by_path.values(), key=lambda r: natural_key(r.path))  # normally none left
    else:
        rows.sort(key=lambda r: natural_key(r.path))
    return RowArrays.from_rows(rows)


def hash_job(workspace, parent=None) -> Job:
    def work(job: Job):
        todo = len(workspace.unhashed())
        if todo:
            ensure_hashes(workspace, job.cancel_event, lambda d, t: job._progress.emit(d, t))
        return todo

    return Job("Indexing", work, parent)


def classify_job(workspace, model_path, items: list[tuple[int, str]], parent=None) -> Job:
    """Partial results: {image id: p_crack or None} per batch, as soon as the batch is stored.
    Result: the ClassifyReport."""

    def work(job: Job):
        classifier = Classifier(model_path)
        job._progress.emit(0, len(items))

        def on_batch(pairs, done, total):
            job._partial.emit({image_id: pred.p_crack for image_id, pred in pairs})
            job._progress.emit(done, total)

        return classify_into_workspace(workspace, classifier, items, job.cancel_event, on_batch)

    return Job("Classifying", work, parent)


def function_job(title: str, fn: Callable, parent=None) -> Job:
    """fn(cancel_event, progress(done, total)) -> result."""
    return Job(title, lambda job: fn(job.cancel_event, lambda d, t: job._progress.emit(d, t)), parent)
