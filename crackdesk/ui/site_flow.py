"""Site adaptation in the main window: after every saved label (and undo, redo, import, classification) the
session refits the folder's site head in a worker, and the grid, its filters and counts take the new
probabilities as soon as they exist; cross-validation and retention follow a moment later in the sidebar.

Refits never queue up: one runs at a time, and labels saved meanwhile mark it stale, so one more runs after it
on everything saved by then. A refit's slower half (cross-validation and retention, for the sidebar) does not hold
the next refit back: once the new probabilities are shown, the next label's refit may start beside it (at 40,000
photos that half takes about as long as a typist's pause between labels). The grid is only touched on the GUI
thread, with arrays made in the worker."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer

from .jobs import BACKGROUND_NICE, WAITED_FOR_NICE, Job, lower_thread_priority

DEBOUNCE_MS = 30  # coalesces a burst of saves (a bulk label, a fast typist) into one refit


def adapt_job(session, ids: np.ndarray, parent=None) -> Job:
    """Partial: (ids, state, probabilities, "most useful next" rank, a note for the status bar or "") as soon as
    the head is fitted; result: (ids, state) once assessed."""

    def work(job: Job):
        adapter = session.adapter()
        if adapter is None:
            return ids, None
        note = session.unscreen_for_labels()  # a classification running now stops screening windows
        with session.waited_for():  # the inspector waits for these probabilities, not for the classification
            if adapter.features_stale or len(adapter.ids) != len(ids) or not np.array_equal(adapter.ids, ids):
                adapter.load_features(ids)
            state = adapter.refit(job.cancel_event, full=False)
            probs = adapter.probabilities(state) if state.adapted else None
            _, rank = adapter.suggestions(state=state)
        job._partial.emit((ids, state, probs, rank, note))
        lower_thread_priority(BACKGROUND_NICE)  # the figures for the sidebar: after the next label's refit
        state = adapter.assess(state, job.cancel_event)
        adapter.prepare_for_unclassified()  # once: the next label of an unclassified photo is not kept waiting
        return ids, state

    job = Job("Adapting to this site", work, parent)
    job.nice = WAITED_FOR_NICE  # the inspector waits for it; classification can wait a moment
    return job


class SiteFlow:
    """Mixed into MainWindow (uses its session, gallery model, sidebar and jobs)."""

    def init_site_flow(self) -> None:
        self.site_job = None
        self.site_assessing: list = []  # refits shown, still computing their figures (cross-validation, retention)
        self.site_stale = False
        self.site_state = None
        self._site_timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._site_timer.timeout.connect(self._start_adapt)

    def schedule_adapt(self) -> None:
        if self.session is None or self.ws is None:
            return
        if self.site_job is not None:
            self.site_stale = True  # one more refit once this one is done
            return
        self._site_timer.start()

    def _start_adapt(self) -> None:
        if self.session is None or self.ws is None or self.site_job is not None:
            return
        self.site_stale = False
        ids = self.model.ids.copy()
        if not len(ids) or (ids < 0).any():
            return  # the store's rows are not in the grid yet
        for older in self.site_assessing:  # its figures would describe a head about to be replaced: the head is
            older.cancel()  # still stored, the figures skipped, and the cores go to the refit the inspector awaits
        job = adapt_job(self.session, ids, self)
        session = self.session
        job.partial.connect(lambda result, s=session, j=job: self._adapted(s, *result, job=j))
        job.succeeded.connect(lambda result, s=session: self._assessed(s, *result))
        job.over.connect(lambda j=job: self._adapt_over(j))
        self.site_job = job
        self.sidebar.set_site_busy(True)
        self.start_job(job, in_bar=False)

    def _adapted(self, session, ids, state, probs, rank, note="", job=None) -> None:
        if note and session is self.session:
            self.statusBar().showMessage(note, 10000)
        if job is not None and self.site_job is job:  # only its assessment is left: the next refit may start
            self.site_job = None
            self.site_assessing.append(job)
            if self.site_stale:
                self.schedule_adapt()
        if session is not self.session or not np.array_equal(ids, self.model.ids):
            return  # another folder, or the grid was reloaded meanwhile: the next refit covers it
        current = self.current_id()
        self.site_state = state
        self.model.useful_rank = rank  # set_site_probs re-sorts when the grid is sorted by it
        self.model.set_site_probs(probs)
        self.select_id(current)
        self.refresh_status()
        self.sidebar.set_site(state, session.adaptation_problem)
        self.refresh_viewer()

    def _assessed(self, session, ids, state) -> None:
        if session is not self.session:
            return
        if state is None:
            self.sidebar.set_site(None, session.adaptation_problem)
            return
        if state is self.site_state or self.site_state is None:
            self.sidebar.set_site(state, session.adaptation_problem)

    def _adapt_over(self, job=None) -> None:
        if job in self.site_assessing:
            self.site_assessing.remove(job)
        if job is not None and self.site_job is not None and self.site_job is not job:
            return  # its refit was shown earlier and a newer one runs now: that one's end says when all is done
        self.site_job = None
        self.sidebar.set_site_busy(False)
        if self.site_stale:
            self.schedule_adapt()

    def next_useful(self) -> None:
        """U: select the photo whose label would help most now (shown with the current filter)."""
        k = self.model.next_useful()
        if k is None:
            self.statusBar().showMessage("Every photo shown is labelled", 4000)
            return
        self.select_id(int(self.model.ids[k]))
