"""Retrain dialog: runs `crackdesk train --events` in a child process (the same executable with a
subcommand when packaged) and shows its JSON lines live (docs/training-events.md): phase, progress,
loss/accuracy curves, then the results, each on data that can answer it: retention on the starting model's
replay memory (its held-out images), and this site's labels (the current model never saw them; the new one
was fitted on them). Starting from a model with a replay memory needs no dataset folder: training rehearses
the memory. The window never waits on the child; Cancel sends SIGTERM, after which training writes no file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.errors import ModelError
from ..core.jsoncheck import IDENTIFIER, IDENTIFIER_RULE
from ..core.memory import summarize_memory
from ..core.models import float_original
from ..core.paths import user_models_dir
from ..core.estimates import accuracy_of_metrics
from ..core.retrain_report import NEEDS, TOO_FEW, retention_text, site_text
from ..core.selfcommand import crackdesk_command
from ..core.workspace_location import default_workspace_path
from . import theme
from .charts import ConfusionMatrix, CurvesWidget
from .job_bar import format_eta
from .screen_fit import fit_to_screen

ARCHITECTURES = {"cnn": "Custom CNN (fast)", "seed-cnn": "Seed CNN", "mobilenetv2": "MobileNetV2 (ImageNet)"}
COMPARED = ("accuracy", "precision", "recall", "f1", "auc")
RESULTS_TITLE = "The new model against the current one"


class RetrainDialog(QDialog):
    activate_requested = Signal(str)  # path of the new model
    event_received = Signal(dict)  # every training event (tests and the screenshot script follow these)

    def __init__(self, workspace, registry, active=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Retrain the model")
        self.ws, self.registry, self.active = workspace, registry, active
        self.process: QProcess | None = None
        self.result: dict | None = None
        self.exit_code: int | None = None
        self._buffer = b""
        self.out_path: Path | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_form())
        self.phase = QLabel("Ready.")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.curves = CurvesWidget()
        status = QHBoxLayout()
        status.addWidget(self.phase, 1)
        status.addWidget(self.progress, 1)
        layout.addLayout(status)
        # The two comparisons apart, each with its count, full width (one line each): mixed into one validation
        # set of mostly concrete, they once showed the old model at 95-100% on a site where it got 53% right.
        self.retention_line = QLabel()
        self.site_line = QLabel()
        for label in (self.retention_line, self.site_line):
            label.setWordWrap(True)
            label.setVisible(False)
            layout.addWidget(label)
        # Curves beside the comparison, not above it: stacked, the dialog was taller than a laptop screen.
        charts = QHBoxLayout()
        charts.addWidget(self.curves, 4)
        charts.addWidget(self._build_results(), 5)
        layout.addLayout(charts, 1)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(60)
        self.log.setPlaceholderText("Messages from training")
        layout.addWidget(self.log)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setProperty("primary", True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.activate_button = QPushButton("Make active and re-classify")
        self.activate_button.setProperty("primary", True)
        self.activate_button.setEnabled(False)
        self.activate_button.clicked.connect(self._activate)
        close = QPushButton("Close")
        for b in (self.start_button, self.cancel_button, self.activate_button, close):
            b.setAutoDefault(False)
        close.clicked.connect(self.reject)
        for b in (self.start_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.activate_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        fit_to_screen(self, 1240, 700)

    # -- the form ---------------------------------------------------------------------------------
    def _build_form(self) -> QWidget:
        box = QGroupBox("Training")
        form = QGridLayout(box)  # two fields a row: eight rows one under the other made the dialog too tall
        self.base = QComboBox()
        self.base.addItem("From scratch", None)
        for entry in self.registry.entries():
            self.base.addItem(f"{entry.info.name} {entry.info.version} ({entry.info.architecture})", entry)
        if self.active is not None:
            keys = [self.base.itemData(i).key if self.base.itemData(i) else None for i in range(self.base.count())]
            if self.active.key in keys:
                self.base.setCurrentIndex(keys.index(self.active.key))
        self.base.currentIndexChanged.connect(self._base_changed)
        self.arch = QComboBox()
        for key, text in ARCHITECTURES.items():
            self.arch.addItem(text, key)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setValue(5)
        self.input_size = QSpinBox()
        self.input_size.setRange(0, 512)
        self.input_size.setSingleStep(16)
        self.input_size.setSpecialValueText("default")
        self.input_size.setToolTip("Side of the square input in pixels. Default: 96 for the CNN, 160 for MobileNetV2; "
                                   "retraining keeps the starting model's size.")
        labels = self.ws.labeled_files()
        crack = sum(1 for f in labels if f.label == "crack")
        self.data_note = QLabel(f"This folder's human labels: <b>{len(labels):,}</b> images "
                                f"(<span style='color:{theme.CRACK.name()}'>{crack:,} crack</span>, "
                                f"<span style='color:{theme.NO_CRACK.name()}'>{len(labels) - crack:,} no crack</span>)")
        self.memory_note = QLabel()
        self.memory_note.setWordWrap(True)
        self.use_dataset = QCheckBox("Also train on")  # off by default: a memory rehearses the model's own data
        self.dataset = QLineEdit()
        self.dataset.setPlaceholderText("a dataset folder with Positive/ and Negative/")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse)
        self.sample = QSpinBox()
        self.sample.setRange(0, 1_000_000)
        self.sample.setSingleStep(500)
        self.sample.setValue(2000)
        self.sample.setSpecialValueText("all")
        row = QHBoxLayout()
        row.addWidget(self.use_dataset)
        row.addWidget(self.dataset, 1)
        row.addWidget(browse)
        row.addWidget(QLabel("at most"))
        row.addWidget(self.sample)
        row.addWidget(QLabel("images"))
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: the starting model's name, or the architecture")
        for r, (left, right) in enumerate(((("Start from", self.base), ("Architecture", self.arch)),
                                            (("Epochs", self.epochs), ("Input size (px)", self.input_size)),
                                            (("Name", self.name), ("Data", self.data_note)))):
            for c, (text, field) in enumerate((left, right)):
                form.addWidget(QLabel(text), r, 2 * c)
                form.addWidget(field, r, 2 * c + 1)
        form.addWidget(QLabel("Rehearses"), 3, 0)
        form.addWidget(self.memory_note, 3, 1, 1, 3)
        form.addWidget(self._wrap(row), 4, 1, 1, 3)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        self._base_changed()
        self.form_box = box
        return box

    @staticmethod
    def _wrap(layout) -> QWidget:
        w = QWidget()
        layout.setContentsMargins(0, 0, 0, 0)
        w.setLayout(layout)
        return w

    def _build_results(self) -> QWidget:
        self.results_box = box = QGroupBox(RESULTS_TITLE)
        layout = QHBoxLayout(box)
        self.table = QTableWidget(len(COMPARED), 3)
        self.table.setHorizontalHeaderLabels(["New", "Current", "Change"])
        self.table.setVerticalHeaderLabels(COMPARED)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)  # no scroll bar when narrow
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setMinimumWidth(290)
        self.new_matrix = ConfusionMatrix("New model")
        self.old_matrix = ConfusionMatrix("Current model")
        layout.addWidget(self.table, 3)
        layout.addWidget(self.new_matrix, 2)
        layout.addWidget(self.old_matrix, 2)
        return box

    def _memory_text(self, entry) -> str:
        """What the starting model's replay memory lets this retraining do, shown before it starts."""
        if entry is None:
            return "Nothing: training from scratch learns this folder's labels (and the dataset, if given) only."
        if entry.info.quantized_from:  # an int8 fast path: training starts from its float original
            try:
                original = float_original(entry.info, self.registry)
            except ModelError as e:
                return f"<span style='color:{theme.CRACK.name()}'>{e.reason}</span>"
            return (f"Starts from the float original {original.info.name} {original.info.version} of "
                    f"{entry.info.name}. " + self._memory_text(original))
        try:
            memory = summarize_memory(entry.path)
        except ModelError as e:
            return f"<span style='color:{theme.CRACK.name()}'>Its replay memory is unusable: {e.reason}</span>"
        if memory is None or not memory.activations:
            why = "has no replay memory" if memory is None else "has a replay memory of pooled features only"
            return (f"<span style='color:{theme.CRACK.name()}'>Nothing: {entry.info.name} {why}, so retraining on "
                    f"this folder alone may make it forget what it knew. Add a dataset of its original data "
                    f"below.</span>")
        rehearse = memory.rehearse
        return (f"{entry.info.name}'s replay memory: {rehearse:,} images of {memory.data_name} to rehearse and "
                f"{memory.holdout:,} held out to measure what it keeps ({memory.megabytes:.0f} MB). "
                f"No dataset folder needed; every label of this folder is trained on.")

    def _base_changed(self, _=None) -> None:
        entry = self.base.currentData()
        if entry is not None:
            index = self.arch.findData(entry.info.architecture)
            if index >= 0:
                self.arch.setCurrentIndex(index)
        self.memory_note.setText(self._memory_text(entry))
        self.arch.setEnabled(entry is None)  # retraining keeps the starting model's architecture
        if entry is not None:
            self.input_size.setValue(0)  # ... and its input size
        self.input_size.setEnabled(entry is None)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder with Positive/ and Negative/")
        if folder:
            self.dataset.setText(folder)
            self.use_dataset.setChecked(True)

    # -- running ----------------------------------------------------------------------------------
    def command(self) -> list[str]:
        base = self.base.currentData()
        arch = self.arch.currentData()
        name = self.name.text().strip() or (self._trained_name(base) if base else arch)
        version = time.strftime("%Y.%m.%d-%H%M%S")
        self.out_path = user_models_dir() / f"{name}-{version}.onnx"
        data = [str(self.ws.folder) if self.ws.db_path == default_workspace_path(self.ws.folder)
                else str(self.ws.db_path)]
        args = ["train", *data]
        if self.use_dataset.isChecked() and self.dataset.text().strip():
            args.append(self.dataset.text().strip())
            if self.sample.value():
                args += ["--sample", str(self.sample.value())]
        args += ["--arch", arch, "--out", str(self.out_path), "--epochs", str(self.epochs.value()),
                 "--events", "--name", name, "--version", version]
        if base is not None:
            args += ["--base", str(base.path)]
        if self.active is not None and self.active.path:
            args += ["--compare", str(self.active.path)]
        if self.input_size.value():
            args += ["--input-size", str(self.input_size.value())]
        weights = os.environ.get("CRACKDESK_MOBILENET_WEIGHTS")
        if arch == "mobilenetv2" and weights:
            args += ["--weights", weights]
        return crackdesk_command(*args)

    def _trained_name(self, base) -> str:
        """The retrained model is a float model: named after the float original of an int8 base."""
        if base.info.quantized_from:
            return base.info.quantized_from.split("@")[0]
        return base.info.name

    def start(self) -> None:
        if self.process is not None:
            return
        name = self.name.text().strip()
        if name and not IDENTIFIER.fullmatch(name):
            self.phase.setText(f"The name must be {IDENTIFIER_RULE} (e.g. bridge-deck-2026).")
            self.phase.setStyleSheet(f"color: {theme.CRACK.name()}")
            return
        self.phase.setStyleSheet("")
        self.ws.flush()  # the child process reads the labels from disk: every label made so far is there
        argv = self.command()
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.result, self.exit_code, self._buffer = None, None, b""
        self.curves.clear()
        self.log.clear()
        self.table.clearContents()
        for label in (self.retention_line, self.site_line):
            label.clear()
            label.setVisible(False)
        self.results_box.setTitle(RESULTS_TITLE)
        self.new_matrix.set_metrics(None)
        self.old_matrix.set_metrics(None)
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._process_error)
        self.process.start(argv[0], argv[1:])
        self.phase.setText("Starting training…")
        self.progress.setRange(0, 0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.activate_button.setEnabled(False)
        self.form_box.setEnabled(False)

    def cancel(self) -> None:
        if self.process is not None and self.process.state() != QProcess.NotRunning:
            self.phase.setText("Cancelling…")
            self.process.terminate()  # SIGTERM: training stops within a batch and writes nothing

    def _read_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                self.log.appendPlainText(text)
                continue
            if isinstance(event, dict) and "event" in event:
                self.handle(event)

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace").rstrip()
        if text:
            self.log.appendPlainText(text)

    def handle(self, event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            classes = event.get("classes") or {}
            memory = event.get("memory")
            counts = f"({classes.get('crack', 0):,} crack, {classes.get('no_crack', 0):,} no crack)"
            if memory:
                self.phase.setText(f"Training on {event.get('n_train', 0):,} images {counts}, rehearsing "
                                   f"{memory.get('rehearse', 0):,} remembered ones; checking on "
                                   f"{memory.get('holdout', 0):,} held out")
            else:
                self.phase.setText(f"Training on {event.get('n_train', 0):,} images, validating on "
                                   f"{event.get('n_val', 0):,} {counts}")
            for skipped in event.get("skipped") or []:
                self.log.appendPlainText(f"skipped {skipped.get('path')}: {skipped.get('reason')}")
        elif kind == "phase":
            if event.get("phase") == "base":  # which model training starts from: worth keeping in the log
                self.log.appendPlainText(str(event.get("message", "")))
            self.phase.setText(f"{event.get('phase', '').capitalize()}: {event.get('message', '')}")
            self.progress.setRange(0, 0)
        elif kind == "progress":
            total = int(event.get("total") or 0)
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(int(event.get("done") or 0))
            eta = format_eta(event.get("eta_s"))
            self.progress.setToolTip(f"ETA {eta}" if eta else "")
        elif kind == "epoch":
            self.curves.add_epoch(event)
            acc = event.get("val_accuracy")
            acc_text = f", validation accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""
            eta = format_eta(event.get("eta_s"))
            self.phase.setText(f"Epoch {event.get('epoch')} of {event.get('epochs')}{acc_text}"
                               + (f" · ETA {eta}" if eta else ""))
        elif kind == "warning":
            self.log.appendPlainText(f"warning: {event.get('message')}")
        elif kind == "done":
            self.result = event
            self._show_results(event)
            self.phase.setText(f"Done in {event.get('seconds', 0):.0f} s: {Path(event.get('model', '')).name}")
        elif kind in ("error", "cancelled"):
            self.phase.setText(("Training failed: " if kind == "error" else "Cancelled: ") + event.get("message", ""))
            if kind == "error":
                self.phase.setStyleSheet(f"color: {theme.CRACK.name()}")
        self.event_received.emit(event)

    def _show_results(self, done: dict) -> None:
        for label, text in ((self.retention_line, retention_text(done.get("retention"), html=True)),
                            (self.site_line, site_text(done.get("site"), html=True))):
            label.setText(text)
            label.setVisible(bool(text))
        compare, retention = done.get("compare"), done.get("retention")
        if compare:
            self.results_box.setTitle(f"On the same {compare.get('images', 0):,} validation images: new vs current "
                                      "model")
            self._show_comparison(compare)
        elif retention:
            self.results_box.setTitle(f"On the memory's {retention.get('images', 0):,} held-out images: new vs "
                                      "starting model")
            self._show_comparison({"images": retention.get("images"), "new": retention.get("new"),
                                   "old": retention.get("base")})

    def _show_comparison(self, compare: dict) -> None:
        new, old = compare.get("new") or {}, compare.get("old")
        # Rates on a handful of images are noise ("accuracy 1.000 vs 0.500" on 12): the counts stay in the
        # confusion matrices, the rates are withheld (core/estimates.py).
        enough = accuracy_of_metrics(new).enough
        if not enough:
            self.results_box.setTitle(self.results_box.title().split(":")[0] + f": {TOO_FEW}")
            self.table.setToolTip(NEEDS)
        for row, key in enumerate(COMPARED):
            a, b = (new.get(key), (old or {}).get(key)) if enough else (None, None)
            cells = [f"{a:.3f}" if isinstance(a, (int, float)) else "—",
                     f"{b:.3f}" if isinstance(b, (int, float)) else "—", ""]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                cells[2] = f"{a - b:+.3f}"
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                if col == 2 and text:
                    item.setForeground(theme.NO_CRACK if a >= b else theme.CRACK)
                self.table.setItem(row, col, item)
        self.new_matrix.set_metrics(new)
        self.old_matrix.set_metrics(old)
        images = compare.get("images")
        if images and enough:
            self.table.setToolTip(f"{images:,} images")

    def _finished(self, code: int, _status) -> None:
        self._read_stdout()
        self.exit_code = code
        self.process = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if code == 0 else 0)
        self.start_button.setEnabled(True)
        self.start_button.setText("Train again")
        self.cancel_button.setEnabled(False)
        self.form_box.setEnabled(True)
        self._base_changed()
        self.activate_button.setEnabled(code == 0 and self.result is not None)
        if code not in (0, 130) and self.result is None and "failed" not in self.phase.text():
            self.phase.setText(f"Training failed (exit status {code}); see the messages below.")

    def _process_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self.phase.setText("Could not start training: " + (self.process.errorString() if self.process else ""))

    def _activate(self) -> None:
        if self.result:
            self.activate_requested.emit(self.result.get("model") or str(self.out_path))
            self.accept()

    def reject(self) -> None:
        if self.process is not None and self.process.state() != QProcess.NotRunning:
            self.process.terminate()
            self.process.waitForFinished(5000)
        super().reject()

