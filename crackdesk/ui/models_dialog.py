"""Models dialog: the shipped and the user's models with their metadata and test metrics; import an ONNX
file (validated; a file that is not a usable CrackDesk model is refused with the reason shown in the
dialog), make one active, remove imported or retrained ones."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMessageBox, QPushButton, QSplitter, QTextBrowser, QVBoxLayout)

from ..core.errors import ModelError
from ..core.models import exact_int8_note, origin as model_origin
from . import theme
from .screen_fit import fit_to_screen

METRICS = ("accuracy", "precision", "recall", "f1", "auc", "n")


def describe_model(entry) -> str:
    info = entry.info
    m = info.metrics or {}
    rows = "".join(f"<tr><td style='color:{theme.MUTED.name()}; padding-right:16px'>{k}</td>"
                   f"<td>{m[k]:.3f}</td></tr>" if isinstance(m.get(k), float) else
                   f"<tr><td style='color:{theme.MUTED.name()}; padding-right:16px'>{k}</td><td>{m[k]}</td></tr>"
                   for k in METRICS if k in m)
    training = info.training or {}
    facts = [("Architecture", info.architecture),
             ("Input", "×".join(str(v) for v in info.preprocessing.input_size) + " px"),
             ("Threshold", f"{info.threshold:.3f}"), ("Created", info.created or "—"),
             ("Based on", info.base_model or "—"), ("Source", {"shipped": "shipped with CrackDesk",
                                                                "user": "imported or retrained"}.get(entry.source,
                                                                                                   entry.source)),
             ("File", str(entry.path)), ("Came from", origin(entry)),
             ("Replay memory", "yes: site adaptation and retraining keep what it knew" if entry.memory.is_file()
              else "none: it cannot be adapted to a site without forgetting")]
    if note := exact_int8_note([info]):
        facts.append(("On this CPU", note))
    for key in ("epochs", "seconds", "hardware"):
        if key in training:
            facts.append((key.capitalize(), str(training[key])))
    fact_rows = "".join(f"<tr><td style='color:{theme.MUTED.name()}; padding-right:16px'>{k}</td>"
                        f"<td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    description = f"<p>{html.escape(info.description)}</p>" if info.description else ""
    return (f"<h2 style='margin-bottom:0'>{html.escape(info.name)} <span style='color:{theme.MUTED.name()}'>"
            f"{html.escape(info.version)}</span></h2>{description}<table>{fact_rows}</table>"
            f"<h3>Test metrics</h3>" + (f"<table>{rows}</table>" if rows else "<p>none recorded</p>"))


def origin(entry) -> str:
    """Where a model came from, in a sentence (core/models.py, shared with `crackdesk models`)."""
    return model_origin(entry)


class ModelsDialog(QDialog):
    activated = Signal(object)  # ModelEntry
    changed = Signal()  # a model was imported or removed

    def __init__(self, registry, active=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        fit_to_screen(self, 860, 520)
        self.registry = registry
        self.active_key = active.key if active else None
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._show)
        self.details = QTextBrowser()
        self.error = QLabel()
        self.error.setProperty("error", True)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.hide()
        self.import_button = QPushButton("Import ONNX file…")
        self.import_button.clicked.connect(lambda: self.import_file())
        self.activate_button = QPushButton("Make active")
        self.activate_button.setProperty("primary", True)
        self.activate_button.clicked.connect(self._activate)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove)
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(self.details)
        splitter.setSizes([280, 580])
        buttons = QHBoxLayout()
        for b in (self.import_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.activate_button)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.reload()

    def reload(self, select_key: str | None = None) -> None:
        self.list.clear()
        self.entries = self.registry.entries()
        for entry in self.entries:
            text = f"{entry.info.name}  {entry.info.version}"
            if entry.key == self.active_key:
                text += "   ● active"
            acc = (entry.info.metrics or {}).get("accuracy")
            sub = "shipped" if entry.source == "shipped" else "yours"
            item = QListWidgetItem(f"{text}\n{sub} · {entry.info.architecture}"
                                   + (f" · accuracy {acc:.3f}" if isinstance(acc, float) else ""))
            item.setData(Qt.UserRole, entry)
            self.list.addItem(item)
        keys = [e.key for e in self.entries]
        target = select_key or self.active_key
        self.list.setCurrentRow(keys.index(target) if target in keys else 0)
        self.show_error("Some model files could not be used:\n" + "\n".join(str(p) for p in self.registry.problems)
                        if self.registry.problems else "")
        self._show(self.list.currentItem())

    def current(self):
        item = self.list.currentItem()
        return item.data(Qt.UserRole) if item else None

    def _show(self, item, _=None) -> None:
        entry = item.data(Qt.UserRole) if item else None
        self.details.setHtml(describe_model(entry) if entry else "<p>No models yet: import an ONNX file.</p>")
        self.activate_button.setEnabled(entry is not None and entry.key != self.active_key)
        self.remove_button.setEnabled(entry is not None and entry.source == "user")

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))

    def import_file(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a CrackDesk model", "", "ONNX models (*.onnx)")
            if not path:
                return False
        try:
            entry = self.registry.import_model(path)
        except ModelError as e:
            self.show_error(f"Not imported. {e}")
            return False
        except OSError as e:
            self.show_error(f"Not imported. {path}: {e.strerror or e}")
            return False
        self.show_error("")
        self.reload(entry.key)
        self.changed.emit()
        return True

    def _activate(self) -> None:
        entry = self.current()
        if entry is not None:
            self.active_key = entry.key
            self.activated.emit(entry)
            self.reload(entry.key)

    def _remove(self, confirm: bool = True) -> None:
        entry = self.current()
        if entry is None or entry.source != "user":
            return
        if confirm and QMessageBox.question(self, "Remove model", f"Remove {entry.key}?\n{entry.path}") \
                != QMessageBox.Yes:
            return
        try:
            self.registry.remove(entry)
        except (ModelError, OSError) as e:
            self.show_error(str(e))
            return
        self.reload()
        self.changed.emit()
