"""Classifying from the main window: which images (all, the selection, the unclassified, or the large photos the
site head needs run again), the job that runs the core's classify_into_workspace, and results flowing into the
grid as they are stored."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer

from .jobs import classify_job


class ClassifyFlow:
    """Mixed into MainWindow (uses its model, view, workspace, jobs and status bar)."""

    def init_classify_flow(self) -> None:
        self._pending_probs: dict = {}
        self._flush_timer = QTimer(self, singleShot=True, interval=250)
        self._flush_timer.timeout.connect(self._flush_probs)

    def classify(self, scope: str = "all") -> None:
        if self.ws is None:
            return
        if self.entry is None:
            self.show_error("Classify", "No model is available: import one with Models… (Ctrl+M).")
            return
        if self.classifier_job is not None:
            return
        m = self.model
        if scope == "selection":
            chosen = np.array(sorted(m.image_index(i.row()) for i in self.view.selectionModel().selectedIndexes()),
                              np.int64)
        elif scope == "unclassified":
            chosen = np.flatnonzero(np.isnan(m.probs))
        elif scope == "run again":  # the large photos whose windows the site head cannot all rescore
            again = self.site_state.run_again_ids if self.site_state is not None else np.zeros(0, np.int64)
            chosen = np.flatnonzero(np.isin(m.ids, again))
        else:
            chosen = np.arange(len(m.paths))
        chosen = chosen[m.ids[chosen] >= 0].tolist()  # vectorised: 40,000 items in a few milliseconds
        items = list(zip(m.ids[chosen].tolist(), [m.paths[k] for k in chosen]))
        if not items:
            self.statusBar().showMessage("Nothing to classify", 3000)
            return
        if self.hasher is not None:
            self.hasher.cancel()  # classification hashes the images itself
        job = classify_job(self.session, self.entry.path, items, self)
        job.partial.connect(self._buffer_probs)
        job.succeeded.connect(self._classified)
        job.over.connect(self._classify_over)
        self.classifier_job = job
        self.start_job(job)

    def _buffer_probs(self, probs: dict) -> None:
        """Batches arrive many times a second; the grid and counts are updated a few times a second."""
        self._pending_probs.update(probs)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush_probs(self) -> None:
        if self._pending_probs:
            probs, self._pending_probs = self._pending_probs, {}
            self.model.update_probs(probs)
            self.refresh_status()

    def _classified(self, report) -> None:
        self._flush_probs()
        if report.errors:
            self.statusBar().showMessage(f"{len(report.errors)} images could not be read, e.g. "
                                         f"{report.errors[0][0]}: {report.errors[0][1]}", 10000)
        self.classify_finished.emit(report)

    def _classify_over(self) -> None:
        self.classifier_job = None
        current = self.current_id()
        self.model.update_probs({}, refilter=True)
        self.select_id(current)
        self.refresh_status()
        self.start_hashing()
        self.schedule_adapt()  # the new images' features join the site head's view of the folder
