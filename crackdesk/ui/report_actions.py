"""File > Export report…: a small dialog (output folder, title, inspector), then the report built in a job
(crackdesk.report.build: progress in the status bar, cancel works), then an offer to open the HTML."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QVBoxLayout, QWidget)

from ..core.wording import printable


class ReportDialog(QDialog):
    """Where the report goes and what it is called; small enough for a 1366x768 screen."""

    def __init__(self, folder: Path, inspector: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export report")
        self.out = QLineEdit(str(folder.parent / f"{folder.name}-report"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.out, 1)
        row_layout.addWidget(browse)
        self.title = QLineEdit()
        self.title.setPlaceholderText(f"Crack inspection: {printable(folder.name)}")
        self.inspector = QLineEdit(inspector)
        self.inspector.setPlaceholderText("your name")
        form = QFormLayout()
        form.addRow("Output folder", row)
        form.addRow("Title", self.title)
        form.addRow("Inspector", self.inspector)
        note = QLabel("Writes report.html (one file, opens offline), report.pdf (A4) and findings.geojson "
                      "(for QGIS) into the folder. Photos nobody reviewed are marked as such.")
        note.setWordWrap(True)
        note.setProperty("muted", True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Put the report into", self.out.text())
        if folder:
            self.out.setText(folder)


def export_report(window, out: str | None = None, title: str = "", inspector: str | None = None,
                  offer_to_open: bool = True) -> None:
    """Ask (unless `out` is given), then build the report of the open folder with the active model."""
    if window.ws is None or window.entry is None:
        window.show_error("Export report", "Open a folder (and choose a model) first.")
        return
    if out is None:
        dialog = ReportDialog(window.folder, window.settings.inspector, window)
        dialog.accepted.connect(lambda: export_report(window, dialog.out.text().strip(), dialog.title.text(),
                                                      dialog.inspector.text(), offer_to_open))
        window.report_dialog = dialog
        dialog.open()
        return
    if not out:
        window.show_error("Export report", "Give the folder the report goes into.")
        return
    from ..report.build import build_report
    from .jobs import function_job

    if inspector is not None:
        window.settings.inspector = inspector.strip()
    session, info = window.session, window.entry.info
    job = function_job("Exporting report", lambda cancel, progress: build_report(
        session, info, out, title, inspector or "", cancel, progress), window)
    job.succeeded.connect(lambda result: _exported(window, result, offer_to_open))
    window.report_job = job
    window.start_job(job)


def _exported(window, result, offer_to_open: bool) -> None:
    window.last_report = result
    if result is None:
        window.statusBar().showMessage("Report cancelled: nothing was written", 8000)
        return
    html = result.files["html"]
    window.statusBar().showMessage(f"Report of {result.photos:,} photos ({result.findings:,} findings, "
                                   f"{result.findings_not_reviewed:,} not reviewed) written to {html.parent}", 15000)
    if not offer_to_open:
        return
    box = QMessageBox(QMessageBox.Information, "Report written",
                      f"The report is in {html.parent}:\nreport.html, report.pdf ({result.pages} pages) and "
                      f"findings.geojson.\n\nOpen the HTML report now?", QMessageBox.Open | QMessageBox.Close, window)
    box.accepted.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(html))))
    box.setAttribute(Qt.WA_DeleteOnClose)
    window.report_box = box
    box.open()
