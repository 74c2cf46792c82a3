"""Menus, toolbar and their actions for the main window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QMenu, QSizePolicy, QSlider, QStyle, QToolButton, QWidget

from . import exchange_actions, report_actions, site_actions


class WindowActions:
    def __init__(self, window):
        self.w = window
        style = window.style()
        icon = style.standardIcon
        bar = window.menuBar()

        file_menu = bar.addMenu("&File")
        self.open = self._add(file_menu, "&Open folder…", self.open_dialog, QKeySequence.Open,
                              icon(QStyle.SP_DirOpenIcon))
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        self._add(file_menu, "Export labels and predictions as &CSV…", lambda: exchange_actions.export_csv(window))
        self._add(file_menu, "Export labelled images as &dataset…", lambda: exchange_actions.export_dataset(window))
        self._add(file_menu, "&Import labels from dataset…", lambda: exchange_actions.import_dataset(window))
        file_menu.addSeparator()
        self.export_report = self._add(file_menu, "Export &report (HTML, PDF, GeoJSON)…",
                                       lambda: report_actions.export_report(window))
        self._add(file_menu, "Export &site model…", lambda: site_actions.export_site_model_action(window))
        file_menu.addSeparator()
        self._add(file_menu, "&Quit", window.close, QKeySequence.Quit)

        edit = bar.addMenu("&Edit")
        undo = window.undo_stack.createUndoAction(window, "&Undo")
        undo.setShortcut(QKeySequence("Ctrl+Z"))
        redo = window.undo_stack.createRedoAction(window, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(undo)
        edit.addAction(redo)
        self.undo_redo = (undo, redo)  # the viewer window adds these too, so Ctrl+Z works there
        edit.addSeparator()
        for text, label in (("Label &crack\tC", "crack"), ("Label &no crack\tN", "no_crack"),
                            ("&Accept prediction\tSpace", "accept"), ("C&lear label\tBackspace", None)):
            self._add(edit, text, lambda _=False, v=label: window.label_selection(v))
        edit.addSeparator()
        self.next_useful = self._add(edit, "Go to the most &useful next photo", window.next_useful,
                                     QKeySequence("U"))
        edit.addSeparator()
        self._add(edit, "Select &all", window.view.selectAll, QKeySequence.SelectAll)

        run = bar.addMenu("&Classify")
        self.classify_all = self._add(run, "Classify &all", lambda: window.classify("all"), QKeySequence("Ctrl+R"),
                                      icon(QStyle.SP_MediaPlay))
        self._add(run, "Classify &unclassified", lambda: window.classify("unclassified"), QKeySequence("Ctrl+Shift+R"))
        self._add(run, "Classify &selection", lambda: window.classify("selection"))
        run.addSeparator()
        self._add(run, "&Cancel running job", lambda: window.job_bar._cancel(), QKeySequence("Ctrl+."))

        models = bar.addMenu("&Models")
        self.models = self._add(models, "&Models…", self.open_models, QKeySequence("Ctrl+M"),
                                icon(QStyle.SP_FileDialogDetailedView))
        self.retrain = self._add(models, "&Retrain…", self.open_retrain, QKeySequence("Ctrl+T"),
                                 icon(QStyle.SP_BrowserReload))

        view = bar.addMenu("&View")
        self._add(view, "&Larger thumbnails", lambda: window.set_thumb_size(window.delegate.thumb_size + 24),
                  QKeySequence("Ctrl+="))
        self._add(view, "&Smaller thumbnails", lambda: window.set_thumb_size(window.delegate.thumb_size - 24),
                  QKeySequence("Ctrl+-"))
        self._add(view, "Open &viewer\tEnter", window.open_viewer)
        view.addSeparator()
        self.help = self._add(view, "&Shortcuts", lambda: window.overlay.toggle(), QKeySequence("F1"),
                              icon(QStyle.SP_DialogHelpButton))

        tools = window.addToolBar("Main")
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.setIconSize(QSize(18, 18))
        tools.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tools.addAction(self.open)
        tools.addSeparator()
        tools.addWidget(QLabel("Model"))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(210)
        self.model_combo.activated.connect(self._model_chosen)
        tools.addWidget(self.model_combo)
        classify_button = QToolButton()
        classify_button.setDefaultAction(self.classify_all)
        classify_button.setPopupMode(QToolButton.MenuButtonPopup)
        classify_button.setMenu(run)
        classify_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tools.addWidget(classify_button)
        tools.addSeparator()
        tools.addAction(self.models)
        tools.addAction(self.retrain)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        tools.addWidget(spacer)
        tools.addWidget(QLabel("Size"))
        self.thumb_slider = QSlider(Qt.Horizontal)
        self.thumb_slider.setRange(80, 320)
        self.thumb_slider.setFixedWidth(130)
        self.thumb_slider.valueChanged.connect(window.set_thumb_size)
        tools.addWidget(self.thumb_slider)
        tools.addAction(self.help)

    def _add(self, menu: QMenu, text: str, slot, shortcut=None, icon=None) -> QAction:
        action = QAction(text, self.w)
        if icon is not None:
            action.setIcon(icon)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        return action

    # -- dynamic parts ----------------------------------------------------------------------------
    def sync_recent(self) -> None:
        self.recent_menu.clear()
        folders = self.w.settings.recent_folders()
        for folder in folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.w.open_folder(f))
        self.recent_menu.setEnabled(bool(folders))
        self.w.empty.set_recent(folders)

    def sync_models(self) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        entries = self.w.registry.entries()
        current = self.w.entry
        for entry in entries:
            suffix = "" if entry.source == "shipped" else "  (yours)"
            self.model_combo.addItem(f"{entry.info.name} {entry.info.version}{suffix}", entry)
        if current is not None and current.source == "file":
            self.model_combo.addItem(f"{current.info.name} {current.info.version}  (file)", current)
        self._add_unusable(self.w.registry.problems)
        if current is not None:
            entries = [self.model_combo.itemData(i) for i in range(self.model_combo.count())]
            keys = [e.key if e is not None else None for e in entries]
            self.model_combo.setCurrentIndex(keys.index(current.key) if current.key in keys else -1)
        self.model_combo.blockSignals(False)

    def _add_unusable(self, problems) -> None:
        """Model files that could not be loaded, greyed out below the good ones: the file's name in the list,
        the reason in its tooltip (the Models dialog shows them in full)."""
        if problems:
            self.model_combo.insertSeparator(self.model_combo.count())
        for problem in problems:
            name = Path(problem.path).name if problem.path else "a model file"
            self.model_combo.addItem(f"{name[:40]}: unusable", None)
            index = self.model_combo.count() - 1
            self.model_combo.setItemData(index, str(problem), Qt.ToolTipRole)
            self.model_combo.model().item(index).setEnabled(False)

    def _models_changed(self) -> None:
        entry = self.w.entry
        if entry is not None and entry.path is not None and not entry.path.exists():
            self.w.choose_model(None)  # the active model was removed: back to the default
        else:
            self.sync_models()

    def _model_chosen(self, index: int) -> None:
        entry = self.model_combo.itemData(index)
        if entry is not None and (self.w.entry is None or entry.key != self.w.entry.key):
            self.w.set_model(entry)

    # -- dialogs ----------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.w, "Open a folder of images",
                                                  str(self.w.folder.parent) if self.w.folder else "")
        if folder:
            self.w.open_folder(folder)

    def open_models(self) -> None:
        from .models_dialog import ModelsDialog

        dialog = ModelsDialog(self.w.registry, self.w.entry, self.w)
        dialog.activated.connect(self.w.set_model)
        dialog.changed.connect(self._models_changed)
        self.w.models_dialog = dialog
        dialog.open()

    def open_retrain(self) -> None:
        from .retrain_dialog import RetrainDialog

        if self.w.ws is None:
            self.w.show_error("Retrain", "Open a folder and label some images first.")
            return
        dialog = RetrainDialog(self.w.ws, self.w.registry, self.w.entry, self.w)
        dialog.activate_requested.connect(self._activate_retrained)
        self.w.retrain_dialog = dialog
        dialog.open()

    def _activate_retrained(self, path: str) -> None:
        self.sync_models()
        entry = next((e for e in self.w.registry.entries() if str(e.path) == str(path)), None)
        if entry is None:
            entry = self.w.registry.find(path)
        self.w.set_model(entry)
        self.w.classify("all")


def build_actions(window) -> WindowActions:
    actions = WindowActions(window)
    actions.sync_recent()
    return actions
