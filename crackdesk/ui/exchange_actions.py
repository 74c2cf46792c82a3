"""File > Export / Import: ask where, run crackdesk.core.exchange in a job, report the outcome.
Imports are one undoable change."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox

from ..core import exchange


def export_csv(window, path: str | None = None) -> None:
    if window.ws is None:
        return
    if path is None:
        path, _ = QFileDialog.getSaveFileName(window, "Export labels and predictions",
                                              str(window.folder / "crackdesk-labels.csv"), "CSV files (*.csv)")
    if not path:
        return
    ws, key = window.ws, window.model_key
    _job(window, "Exporting CSV", lambda cancel, progress: exchange.export_csv(ws, path, key),
         lambda n: window.statusBar().showMessage(f"Wrote {n:,} rows to {path}", 8000))


def export_dataset(window, folder: str | None = None, link: bool | None = None) -> None:
    if window.ws is None:
        return
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, "Export labelled images into (Positive/ and Negative/ "
                                                  "are created inside)")
        if not folder:
            return
        answer = QMessageBox.question(window, "Export dataset",
                                      "Hard-link the images instead of copying them?\n\nLinks take no extra disk "
                                      "space (same drive only; copies are made otherwise).",
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        link = answer == QMessageBox.Yes
    ws = window.ws
    _job(window, "Exporting dataset",
         lambda cancel, progress: exchange.export_class_folders(ws, folder, bool(link), cancel, progress),
         lambda r: window.statusBar().showMessage(
        f"Exported {r.written:,} images ({r.by_class.get('crack', 0):,} crack, {r.by_class.get('no_crack', 0):,} "
        f"no crack) to {folder}" + (f"; {r.renamed} renamed to avoid a clash" if r.renamed else ""), 10000))


def import_dataset(window, folder: str | None = None) -> None:
    if window.ws is None:
        return
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, "Import labels from a folder with Positive/ and Negative/")
    if not folder:
        return
    ws = window.ws
    _job(window, "Importing labels",
         lambda cancel, progress: exchange.import_class_folders(ws, folder, cancel, progress),
         lambda r: _imported(window, r))


def _imported(window, report) -> None:
    if report.change is not None and report.change.after:
        window.push_change(report.change, f"import labels ({len(report.change.after)} images)")
    text = (f"Imported labels for {report.matched:,} images; {report.unmatched:,} dataset images are not in "
            f"this folder")
    if report.conflicts:
        text += f"; {report.conflicts} appear under both classes and were skipped"
    window.statusBar().showMessage(text, 10000)
    window.last_import = report


def _job(window, title, fn, on_success):
    from .jobs import function_job

    job = function_job(title, fn, window)
    job.succeeded.connect(on_success)  # connected before the thread starts: no result can be missed
    window.start_job(job)
