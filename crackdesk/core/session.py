"""The open folder, without Qt: its scan, workspace, hashing, classification and labels.

The CLI drives a FolderSession from start to end; the GUI holds one per open window and runs its long
methods in worker threads, showing what they report. So the whole open -> hash -> classify -> label flow
is one piece of code, testable without a window (tests/test_session.py).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .classify import ClassifyReport, classify_into_workspace
from .errors import CrackDeskError
from .exchange import ensure_hashes
from .inference import predicted_label
from .scan import ScanResult, natural_key, scan_folder
from .store import ImageRow, Workspace
from .workspace_location import is_fallback

Progress = Callable[[int, int], None]
ACTIVE_MODEL = "active_model"  # workspace meta key: the model this folder is classified with
# Up to this many images classified, or a quarter of the folder, their large photos' windows are read alone and
# merged into the site adapter at once; more, and the folder's are read again at the next refit, in its worker
# thread (decision 41). At 2,000 camera photos merging 500 took 0.4-0.7 s, the full read 1.9-2.8 s (decision 44).
REFRESH_AT_MOST = 256
UNSCREENED_NOTE = ("every window of large photos runs through {key}, unscreened: this folder's labels adapt the "
                   "model, and it rescores only those windows")


@dataclass
class CurrentPredictions:
    """Rows (ImageRow: id, path, hash, human label) with their current P(crack) (NaN: not classified)."""

    rows: list[ImageRow]
    p_crack: np.ndarray
    threshold: float
    adapted: bool  # the site head's probabilities, not the base model's
    n_labels: int  # the labels the site head rests on
    state: object = None  # the SiteState behind them (core/site.py), when the model can adapt

    def predicted(self, i: int) -> str | None:
        p = self.p_crack[i]
        return None if np.isnan(p) else predicted_label(float(p), self.threshold)

    def verdict(self, i: int) -> str | None:
        """The human label wins over the prediction."""
        return self.rows[i].label or self.predicted(i)


class FolderSession:
    def __init__(self, folder: str | Path, workspace_path: str | Path | None = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise CrackDeskError("not a folder" if folder.exists() else "folder not found", folder)
        self.folder = folder.resolve()
        self.workspace_path = Path(workspace_path) if workspace_path else None
        self.scanned: ScanResult | None = None
        self.workspace: Workspace | None = None
        self.entry = None  # the folder's model (a ModelEntry), see use_model
        self._adapter = None
        self.adaptation_problem: str | None = None
        self._classifying = None  # the Classifier of a classification in progress

    @classmethod
    def open(cls, folder, workspace_path=None, cancel: threading.Event | None = None) -> "FolderSession":
        """Scan, open the workspace and bring it in line with the scan: what `crackdesk classify` does first."""
        session = cls(folder, workspace_path)
        session.scan(cancel)
        session.open_workspace()
        return session

    # -- opening ----------------------------------------------------------------------------------
    def scan(self, cancel: threading.Event | None = None) -> ScanResult:
        """List the folder's images (fast: no decoding, no hashing); `.problems` says what was skipped."""
        self.scanned = scan_folder(self.folder, cancel)
        return self.scanned

    def open_workspace(self) -> Workspace:
        """Open (creating or upgrading) the workspace and record the scan in it."""
        if self.workspace is None:
            self.workspace = Workspace(self.folder, self.workspace_path)
        if self.scanned is not None:
            try:
                self.workspace.sync(self.scanned)
            except BaseException:
                self.close()
                raise
        return self.workspace

    @property
    def db_path(self) -> Path | None:
        return self.workspace.db_path if self.workspace is not None else None

    @property
    def uses_fallback(self) -> bool:
        """The folder cannot be written, so its workspace lives in the user's data directory."""
        return self.workspace is not None and is_fallback(self.folder, self.workspace.db_path)

    def where(self) -> str:
        """Where the workspace is, said the way messages need it."""
        if self.workspace is None:
            return "not opened"
        note = " (the folder is read-only, so it is kept in your data folder)" if self.uses_fallback else ""
        return f"{self.workspace.db_path}{note}"

    def rows(self, model_key: str | None = None, order: list[str] | None = None) -> list[ImageRow]:
        """The workspace's rows in display order: the scan's natural order when given (a dict lookup, no sort:
        sorting 40,000 paths holds the GIL long enough for a GUI thread to notice)."""
        self._ws().flush()  # what was labelled before this call is in the rows
        rows = self._ws().rows(model_key)
        if order is None and self.scanned is not None:
            order = [f.relpath for f in self.scanned]
        if order is None:
            rows.sort(key=lambda r: natural_key(r.path))
            return rows
        by_path = {r.path: r for r in rows}
        placed = [by_path.pop(p) for p in order if p in by_path]
        return placed + sorted(by_path.values(), key=lambda r: natural_key(r.path))  # normally none left

    # -- the folder's model and its site adaptation -------------------------------------------------
    def remembered_model(self) -> str | None:
        """The model this folder was last classified with (a key or a file path), if any. A workspace from before
        models were remembered per folder keeps the one model its predictions come from: a new default (the
        int8 fast path) must not re-classify a folder behind the user's back."""
        workspace = self._ws()
        remembered = workspace.meta(ACTIVE_MODEL)
        if remembered:
            return remembered
        models = workspace.prediction_models()
        return models[0] if len(models) == 1 else None

    def use_model(self, entry, remember: bool = True) -> None:
        """Make `entry` (a ModelEntry) this folder's model; remembered in the workspace, not globally."""
        if self.entry is not None and self.entry.key == entry.key and self.entry.path == entry.path:
            return
        self.entry, self._adapter, self.adaptation_problem = entry, None, None
        if remember and self.workspace is not None:
            self.workspace.set_meta(ACTIVE_MODEL, str(entry.path) if entry.source == "file" else entry.key)

    def adapter(self):
        """The site adapter of the folder's model, created on first use; None when the model cannot be adapted
        (`adaptation_problem` then says why)."""
        if self._adapter is None and self.adaptation_problem is None and self.entry is not None:
            from .site import AdaptationUnavailable, SiteAdapter

            try:
                self._adapter = SiteAdapter(self._ws(), self.entry.info, self.entry.key)
            except AdaptationUnavailable as e:
                self.adaptation_problem = str(e)
        return self._adapter

    @contextmanager
    def waited_for(self):
        """Work the inspector is waiting for (a refit after a label) runs inside this: a classification running
        meanwhile starts no model batch until it is done (at most pipeline.HOLD_AT_MOST_S), so the refit is not
        starved of the cores and the GIL by throughput work."""
        classifier = self._classifying
        if classifier is None:
            yield
            return
        classifier.hold.set()
        try:
            yield
        finally:
            classifier.hold.clear()

    def site_head(self):
        """The latest refit's site head (core/sitehead.Head), or None: the base model alone (or not adapted yet)."""
        adapter = self._adapter
        return adapter.state.head if adapter is not None else None

    def adapt(self, ids=None, cancel: threading.Event | None = None, full: bool = True):
        """Refit the site head on the folder's labels (features of `ids`, default every image, are loaded first
        if needed); the SiteState, or None when the model cannot be adapted."""
        adapter = self.adapter()
        if adapter is None:
            return None
        self.unscreen_for_labels()
        if ids is not None or len(adapter.ids) == 0 or adapter.features_stale:
            if ids is None:
                ids = np.array([r.id for r in self.rows()], np.int64)
            adapter.load_features(ids)
        return adapter.refit(cancel, full)

    def adapted_tiles(self, image_id: int, tiles: list, state) -> list:
        """A large photo's stored tiles (x, y, w, h, p) with the site head's P where it rescored them: the windows
        its verdict under `state` (a SiteState) rests on (the viewer's heatmap, the report's pictures). Unchanged
        when there is no such state or the photo's windows are not loaded."""
        adapter = self._adapter
        if not tiles or adapter is None or state is None or not state.adapted:
            return tiles
        grid = adapter.window_grid(image_id, state)
        if grid is None or grid.size != len(tiles):
            return tiles
        return [(x, y, w, h, float(p)) for (x, y, w, h, _), p in zip(tiles, grid.ravel())]

    def current_predictions(self, model_key: str | None = None, threshold: float | None = None,
                            adapt: bool = True) -> "CurrentPredictions":
        """Every image's current prediction: what `crackdesk classify` reports for the folder, the report shows
        and the grid colours. Site-adapted when the folder's model has labels to adapt to (and `adapt`); images
        without stored features keep the base model's probability."""
        entry = self.entry
        key = model_key or (entry.key if entry else None)
        rows = self.rows(key)
        p = np.array([np.nan if r.p_crack is None else r.p_crack for r in rows], np.float64)
        threshold = threshold if threshold is not None else (entry.info.threshold if entry else 0.5)
        # Without labels there is nothing to adapt to: the base model's P, without loading the replay memory and
        # every stored feature vector (0.15-0.25 s of a 4 s `crackdesk classify` of 2,000 patches)
        if adapt and entry is not None and key == entry.key and self._ws().has_labels():
            state = self.adapt(np.array([r.id for r in rows], np.int64))
            if state is not None and state.adapted:
                site = self._adapter.probabilities(state)
                known = ~np.isnan(site) & ~np.isnan(p)  # never a site probability for an unclassified image
                p[known] = site[known]
                return CurrentPredictions(rows, p, threshold, True, state.n_labels, state)
            return CurrentPredictions(rows, p, threshold, False, 0, state)  # its notes may say why not
        return CurrentPredictions(rows, p, threshold, False, 0, None)

    # -- work -------------------------------------------------------------------------------------
    def hash_missing(self, cancel: threading.Event | None = None, progress: Progress | None = None) -> int:
        """Hash the images not hashed yet (labels follow content); returns how many there were."""
        todo = len(self._ws().unhashed())
        if todo:
            ensure_hashes(self._ws(), cancel, progress)
        return todo

    def classifier(self, model_path, threshold: float | None = None, exact: bool = False):
        """The Classifier for this folder. Once it has labels, large photos' windows all run through the model
        (no screening model), because the site head rescores only windows with features (decision 38)."""
        from .inference import Classifier

        unscreened = not exact and self._ws().has_labels()
        classifier = Classifier(model_path, threshold=threshold, exact=exact or unscreened)
        if unscreened and classifier.info.screen:
            if not classifier.features_name:  # it cannot adapt: nothing to rescore, so its screen stays
                return Classifier(model_path, threshold=threshold, exact=exact)
            classifier.screen_note = UNSCREENED_NOTE.format(key=classifier.key)
        return classifier

    def unscreen_for_labels(self) -> str:
        """The same rule for labels given while a classification runs (a refit calls this): the photos it reads
        from then on run every window, so the site head can rescore them, instead of needing a second pass
        ("classify these N photos again"). The note to show when it switched now, else ""."""
        classifier = self._classifying
        if classifier is None or classifier.screen is None or not classifier.features_name \
                or not self._ws().has_labels():
            return ""
        classifier.unscreen(UNSCREENED_NOTE.format(key=classifier.key))
        return "Labels adapt the model: the rest of this run checks every window of large photos (slower)"

    def classify(self, classifier, items: list[tuple[int, str]] | None = None,
                 cancel: threading.Event | None = None, on_batch=None, source=None) -> ClassifyReport:
        """Classify (image id, relative path) items (default: every image) and store the results; `source`
        (see classify_into_workspace) computes them elsewhere, e.g. on a cluster."""
        if items is None:
            items = [(r.id, r.path) for r in self.rows()]
        self._classifying = classifier
        # The site head sees each batch's features as soon as they are stored.
        adapter = self._adapter if self._adapter is not None and self._adapter.model_key == classifier.key else None
        try:
            report = classify_into_workspace(self._ws(), classifier, items, cancel, on_batch, source,
                                             on_features=adapter.add_features if adapter is not None else None)
            if adapter is not None and report.tiled:
                if len(items) <= max(REFRESH_AT_MOST, len(adapter.ids) // 4):  # theirs are read alone, now
                    adapter.refresh_photos([image_id for image_id, _ in items])
                else:  # the folder's windows are read once at the next refit, in its worker thread
                    adapter.features_stale = True
            return report
        finally:
            self._classifying = None
            if self._adapter is not None and adapter is None:
                self._adapter.features_stale = True  # another model's features: re-read before the next refit

    def submit_labels(self, labels: dict[int, str | None], source: str = "user") -> Future:
        """Label images by id; the Future gives the LabelChange once on disk, or the CrackDeskError."""
        return self._ws().submit_labels(labels, source)

    def close(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ws(self) -> Workspace:
        if self.workspace is None:
            raise CrackDeskError("the folder's workspace is not open", self.folder)
        return self.workspace
