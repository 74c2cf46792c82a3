"""The main window: the open folder's gallery, triage sidebar, status bar and the jobs behind them.

It views a FolderSession (core/session.py). This file holds the window's state (the session, the folder's model)
and the opening flow: open -> scan (grid shown) -> store rows -> hashing in the background -> thumbnails for what
is visible. The rest is in mixins, one flow each: labelling (label_flow.py), classifying (classify_flow.py), site
adaptation (site_flow.py), the viewer (viewer_flow.py); menus and toolbar in window_actions.py.
"""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QMessageBox, QStackedWidget, QWidget

from ..core.errors import CrackDeskError, ModelError
from ..core.models import ModelRegistry
from ..core.session import FolderSession
from ..core.wording import printable
from .classify_flow import ClassifyFlow
from .empty_state import EmptyState
from .gallery_delegate import GalleryDelegate
from .gallery_model import FILTERS, GalleryModel
from .gallery_view import GalleryView
from .job_bar import JobBar
from .label_flow import LabelFlow
from .jobs import hash_job, open_folder_job, rows_job
from .settings import Settings
from .screen_fit import fit_to_screen
from .shortcuts_overlay import ShortcutsOverlay
from .sidebar import Sidebar
from .site_flow import SiteFlow
from .thumbnails import ThumbnailService
from .viewer_flow import ViewerFlow
from .window_actions import build_actions


class MainWindow(LabelFlow, ViewerFlow, SiteFlow, ClassifyFlow, QMainWindow):
    folder_loaded = Signal()  # the store's rows are in the grid
    classify_finished = Signal(object)  # ClassifyReport
    labels_saved = Signal()  # a label change is committed to the workspace (on disk)

    def __init__(self, settings: Settings | None = None, registry: ModelRegistry | None = None):
        super().__init__()
        self.settings = settings or Settings()
        self.registry = registry or ModelRegistry()
        self.folder: Path | None = None
        self.session: FolderSession | None = None  # the open folder (Qt-free); this window views it
        self._loaded_session = False  # its workspace is open and its rows are in the grid
        self.scan_problems: list[tuple[str, str]] = []
        self.last_error: str | None = None  # the last message shown (tests read it)
        self.requested_entry = None  # a model asked for on the command line, for the folder opened next
        self.entry = None  # active ModelEntry
        self.hasher = None
        self.classifier_job = None
        self.viewer = None
        self.jobs: list = []
        self.closing = False  # set once the window closes: late job results are dropped, no job starts
        self.init_classify_flow()
        self.init_site_flow()
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(lambda _: self.refresh_status())

        self.model = GalleryModel(self)
        self.thumbnails = ThumbnailService(self)
        self.view = GalleryView()
        self.view.setModel(self.model)
        self.delegate = GalleryDelegate(self.thumbnails, self.model, self.view)
        self.view.setItemDelegate(self.delegate)
        self.thumbnails.updated.connect(self.view.update_cards_of)
        self.view.label_requested.connect(self.label_selection)
        self.view.open_requested.connect(self.open_viewer)
        self.view.help_requested.connect(lambda: self.overlay.toggle())

        self.sidebar = Sidebar()
        self.sidebar.filter_changed.connect(self.set_filter)
        self.sidebar.sort_changed.connect(self.set_sort)
        self.sidebar.band_changed.connect(self.set_band)
        self.sidebar.classify_again.connect(lambda: self.classify("run again"))
        self.empty = EmptyState(self)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self.view)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.counts_label = QLabel()
        self.job_bar = JobBar()
        self.statusBar().addWidget(self.counts_label, 1)
        self.statusBar().addPermanentWidget(self.job_bar)
        self.overlay = ShortcutsOverlay(self)
        self.setAcceptDrops(True)
        self.setWindowTitle("CrackDesk")
        fit_to_screen(self, 1360, 860)
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)

        self.model.band = self.settings.band
        self.model.filter = self.settings.filter if self.settings.filter in FILTERS else "all"
        self.model.sort = self.settings.sort
        self.sidebar.set_state(self.model.filter, self.model.sort, self.model.band)
        self.actions = build_actions(self)
        self.set_thumb_size(self.settings.thumb_size)
        self.refresh_status()

    # -- models -----------------------------------------------------------------------------------
    def choose_model(self, requested: str | None = None) -> None:
        """The model to start with: the one asked for (`crackdesk gui --model`; it then becomes the model of the
        folder opened next), else the default shipped one. A folder otherwise uses the model it was last used
        with: a model chosen in one folder never follows the user into the others."""
        if requested:
            try:
                self.requested_entry = self.registry.find(requested)
                self.set_model(self.requested_entry)
                return
            except ModelError as e:
                self.show_error("Model", str(e))
        self.set_model(self.registry.default())

    def set_model(self, entry, reload: bool = True) -> None:
        """Make `entry` the model of the open folder (remembered in its workspace, not for other folders)."""
        self.entry = entry
        if entry is not None:
            self.model.threshold = entry.info.threshold
            if self.ws is not None:
                self.session.use_model(entry)
        self.site_state = None
        self.sidebar.set_model(entry.info if entry else None)
        self.sidebar.set_site(None, None)
        self.actions.sync_models()
        if self.ws is not None and reload:
            self.reload_rows()

    @property
    def model_key(self) -> str | None:
        return self.entry.key if self.entry else None

    # -- opening a folder -------------------------------------------------------------------------
    @property
    def ws(self):
        """The open folder's workspace once loaded (None while opening)."""
        return self.session.workspace if self.session is not None and self._loaded_session else None

    def open_folder(self, folder: str | Path, workspace: str | Path | None = None) -> None:
        folder = Path(folder)
        self.close_folder()
        try:
            session = FolderSession(folder, workspace)
        except CrackDeskError as e:
            self.show_error("Open folder", str(e))
            return
        self.session, self._loaded_session = session, False
        self.folder = session.folder
        self.settings.add_recent_folder(self.folder)
        self.actions.sync_recent()
        self.setWindowTitle(f"{printable(self.folder.name)} — CrackDesk")
        self.thumbnails.set_root(self.folder)
        self.pages.setCurrentWidget(self.view)
        # No cyclic collection while the folder's rows are built in the workers: a full pass over them held the
        # GIL for up to 70 ms (a stall of the grid); they are frozen out of the collector once loaded.
        gc.disable()
        job = open_folder_job(session, self.registry, self)
        job.partial.connect(lambda paths, s=session: self._scanned(s, paths))
        job.succeeded.connect(self._loaded)
        job.failed.connect(lambda _message, s=session: self._open_failed(s))
        self.start_job(job)

    def _scanned(self, session, paths: list[str]) -> None:
        if self.closing or session is not self.session:
            return  # the user opened another folder meanwhile
        self.model.set_paths(paths)
        self.select_row(0)
        self.refresh_status()

    def _loaded(self, result) -> None:
        session, rows = result
        if self.closing or session is not self.session:  # queued before a close or another open
            session.close()
            return
        self._loaded_session = True
        requested, self.requested_entry = self.requested_entry, None
        if session.entry is not None:  # the folder's own model (or the default for a new folder)
            self.set_model(session.entry, reload=False)
        current = self.view.currentIndex().row()
        self.model.set_rows(rows, self.model.threshold)
        self.select_row(max(0, current))
        self.refresh_status()
        self.report_open_notes(session)
        self.start_hashing()
        if requested is not None and (self.entry is None or requested.key != self.entry.key):
            self.set_model(requested)  # `gui FOLDER --model M`: M becomes this folder's model
        else:
            self.schedule_adapt()  # the stored site head, if the folder has labels
        # Everything alive now (modules, widgets, the folder's arrays) lives as long as the folder is open:
        # keep it out of the cyclic collector's full passes, which would pause every thread.
        gc.freeze()
        gc.enable()
        self.folder_loaded.emit()

    def _open_failed(self, session) -> None:
        gc.enable()
        session.close()
        if session is self.session:
            self.session = None
            self.folder = None
            self.model.clear()
            self.pages.setCurrentWidget(self.empty)
            self.setWindowTitle("CrackDesk")
            self.refresh_status()

    def report_open_notes(self, session) -> None:
        """What the user should know about an opened folder: files that could not be listed, and a
        workspace kept outside a read-only folder."""
        notes = []
        problems = session.scanned.problems if session.scanned is not None else []
        if problems:
            path, reason = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            notes.append(f"{len(problems)} could not be listed: {printable(path)}: {reason}{more}")
        if session.uses_fallback:
            notes.append(f"the folder is read-only: its workspace is kept at {session.db_path}")
        self.scan_problems = problems
        if notes:
            self.statusBar().showMessage("; ".join(notes), 15000)

    def reload_rows(self) -> None:
        """Re-read labels and the active model's predictions from the store, off the GUI thread."""
        session = self.session
        job = rows_job(session, self.model_key, list(self.model.paths), self)
        job.succeeded.connect(lambda rows: self._rows_reloaded(session, rows))
        self.start_job(job)

    def _rows_reloaded(self, session, rows) -> None:
        if session is not self.session:
            return
        current = self.current_id()
        self.model.set_rows(rows, self.model.threshold)
        self.select_id(current)
        self.refresh_status()
        self.schedule_adapt()

    def start_hashing(self) -> None:
        if self.ws is None or self.hasher is not None or self.classifier_job is not None:
            return
        self.hasher = hash_job(self.session, self)
        self.hasher.succeeded.connect(self._hashed)
        self.hasher.over.connect(self._hasher_over)
        self.start_job(self.hasher)

    def _hashed(self, count: int) -> None:
        if count and self.hasher is not None and not self.hasher.cancelled and self.ws is not None:
            self.reload_rows()  # moved or renamed files get their labels once their content is known

    def _hasher_over(self) -> None:
        self.hasher = None

    def close_folder(self) -> None:
        for job in list(self.jobs):
            job.cancel()
        for job in list(self.jobs):
            job.wait()
        self.jobs.clear()
        self.hasher = self.classifier_job = None
        if self.session is not None:
            self.session.close()
        self.session, self._loaded_session = None, False
        self.site_state, self.site_stale = None, False
        self.sidebar.set_site(None, None)
        self.scan_problems = []
        self.undo_stack.clear()
        self.model.clear()
        gc.enable()  # an open cut short never reaches _loaded

    # -- jobs -------------------------------------------------------------------------------------
    def start_job(self, job, in_bar: bool = True) -> None:
        """Start a Job; `in_bar`: shown (with cancel) in the status bar, as anything long is."""
        if self.closing:
            return
        self.jobs.append(job)
        job.failed.connect(lambda message, j=job: self.show_error(j.title, message))
        job.over.connect(lambda j=job: self._job_done(j))
        if in_bar:
            self.job_bar.add(job)
        job.start()

    def _job_done(self, job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.refresh_status()

    # -- selection --------------------------------------------------------------------------------
    def current_id(self) -> int | None:
        row = self.view.currentIndex().row()
        return self.model.id_at(row) if 0 <= row < self.model.rowCount() else None

    def select_row(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount():
            return
        index = self.model.index(row)
        self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.ClearAndSelect)
        self.view.scroll_to(index)
        self.refresh_viewer()

    def select_id(self, image_id: int | None) -> None:
        row = self.model.row_of_id(image_id) if image_id is not None else -1
        self.select_row(row if row >= 0 else 0)

    # -- triage controls --------------------------------------------------------------------------
    def set_filter(self, name: str) -> None:
        current = self.current_id()
        self.model.set_filter(name)
        self.settings.filter = name
        self.sidebar.set_state(self.model.filter, self.model.sort, self.model.band)  # when not chosen there
        self.select_id(current)
        self.refresh_status()

    def set_sort(self, name: str) -> None:
        current = self.current_id()
        self.model.set_sort(name)
        self.settings.sort = name
        self.sidebar.set_state(self.model.filter, self.model.sort, self.model.band)
        self.select_id(current)

    def set_band(self, band: float) -> None:
        self.model.set_band(band)
        self.settings.band = band
        self.view.viewport().update()
        self.refresh_status()

    def set_thumb_size(self, px: int) -> None:
        px = min(320, max(80, int(px)))
        self.delegate.set_thumb_size(px)
        self.view.set_card_size(self.delegate.card_size())
        self.thumbnails.set_display_size(px)
        self.settings.thumb_size = px
        self.actions.thumb_slider.blockSignals(True)
        self.actions.thumb_slider.setValue(px)
        self.actions.thumb_slider.blockSignals(False)
        self.view.doItemsLayout()

    # -- status and messages ----------------------------------------------------------------------
    def refresh_status(self) -> None:
        c = self.model.counts()
        self.sidebar.set_counts({k: int(self.model.mask(k).sum()) for k in FILTERS} if c["images"] else {})
        if not c["images"]:
            self.counts_label.setText("No folder open" if self.folder is None else "No images in this folder")
            return
        self.counts_label.setText(
            f"{c['images']:,} images  ·  {c['classified']:,} classified  ·  {c['reviewed']:,} reviewed  ·  "
            f"{c['crack']:,} crack  ·  {c['no_crack']:,} no crack  ·  {c['disagree']:,} disagree  ·  "
            f"showing {c['shown']:,}")

    def show_error(self, title: str, message: str) -> None:
        """A message, never a traceback; non-blocking so a background failure never freezes the window."""
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        self.last_error = message
        box.open()

    # -- window events ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and Path(urls[0].toLocalFile()).is_dir():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_folder(event.mimeData().urls()[0].toLocalFile())

    def closeEvent(self, event) -> None:
        self.closing = True
        self.settings.geometry = self.saveGeometry()
        self.close_folder()
        self.thumbnails.shutdown()
        super().closeEvent(event)

