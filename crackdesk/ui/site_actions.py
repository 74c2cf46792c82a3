"""File > Export site model…: the folder's site adaptation written as a standard CrackDesk model (a job), then
an offer to add it to the user's models so other folders can use it."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox

from ..core.site_model import export_site_model, site_slug
from .jobs import function_job


def export_site_model_action(window, path: str | None = None, add: bool | None = None) -> None:
    if window.ws is None or window.entry is None:
        window.show_error("Export site model", "Open a folder and label some photos first.")
        return
    if window.site_state is None or not window.site_state.adapted:
        reason = window.session.adaptation_problem or "this folder has no labels yet, so there is nothing to export"
        window.show_error("Export site model", reason)
        return
    if path is None:
        suggested = window.folder.parent / f"{window.entry.info.name}-{site_slug(window.folder)}.onnx"
        path, _ = QFileDialog.getSaveFileName(window, "Export the site-adapted model", str(suggested),
                                              "CrackDesk models (*.onnx)")
        if not path:
            return
    session = window.session
    job = function_job("Exporting the site model", lambda cancel, progress: export_site_model(session, path), window)
    job.succeeded.connect(lambda info: _exported(window, path, info, add))
    window.start_job(job)


def _exported(window, path: str, info, add: bool | None) -> None:
    window.statusBar().showMessage(f"Wrote {path}: {info.name} {info.version}, adapted on "
                                   f"{info.site.get('labels', 0)} labels", 10000)
    if add is None:
        answer = QMessageBox.question(window, "Export site model", f"Wrote {path}.\n\nAdd it to your models, so "
                                      "that other folders can use it?", QMessageBox.Yes | QMessageBox.No)
        add = answer == QMessageBox.Yes
    if add:
        entry = window.registry.import_model(path)
        window.actions.sync_models()
        window.statusBar().showMessage(f"Added {entry.info.name} {entry.info.version} to your models", 10000)
    window.last_site_export = info
