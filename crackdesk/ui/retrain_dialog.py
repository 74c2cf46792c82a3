"""Retrain dialog: runs `crackdesk train --events` in a child process (the same executable with a
subcommand when packaged) and shows its JSON lines live (docs/training-events.md): phase, progress,
loss/accuracy curves, then the results, each on data that can answer it: retention on the starting model's
replay memory (its held-out images), and this site's labels (the current model never saw them; the new one
was fitted on them). Starting from a model with a replay memory needs no dataset folder: training rehearses
the memory. The window never waits on the child; Cancel sends SIGTERM, after which training writes no file."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout

from ..core.jsoncheck import IDENTIFIER, IDENTIFIER_RULE
from ..core.rates import format_duration
from . import theme
from .charts import CurvesWidget
from .retrain_form import RetrainForm
from .retrain_results import RESULTS_TITLE, RetrainResults
from .screen_fit import fit_to_screen


class RetrainDialog(RetrainForm, RetrainResults, QDialog):
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

    # -- running ----------------------------------------------------------------------------------
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
            eta = format_duration(event.get("eta_s"))
            self.progress.setToolTip(f"ETA {eta}" if eta else "")
        elif kind == "epoch":
            self.curves.add_epoch(event)
            acc = event.get("val_accuracy")
            acc_text = f", validation accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""
            eta = format_duration(event.get("eta_s"))
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

