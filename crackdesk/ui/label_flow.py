"""Labelling from the main window: C / N / Space / Backspace on the selection, one undoable step each, shown at
once and written by the workspace's writer (undo.py); the selection then moves on, so triage is one key per
photo, and every saved change refits the folder's site head (site_flow.py)."""

from __future__ import annotations

from .undo import LabelCommand


class LabelFlow:
    """Mixed into MainWindow (uses its view, gallery model, session, undo stack and sidebar)."""

    def selected_rows(self) -> list[int]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        return rows

    def label_selection(self, label) -> None:
        """C / N / Space / Backspace: label every selected image, then move on to the next one."""
        if self.ws is None:
            return
        rows = self.selected_rows()
        if label == "accept":
            labels = {self.model.id_at(r): self.model.predicted_at(r) for r in rows if self.model.prob_at(r) is not None}
        else:
            labels = {self.model.id_at(r): label for r in rows}
        labels = {i: v for i, v in labels.items() if i >= 0}
        if not labels:
            return
        after = rows[-1] + 1
        next_id = self.model.id_at(after) if after < self.model.rowCount() else None
        first = rows[0]
        self.push_labels(labels)
        if next_id is not None and self.model.row_of_id(next_id) >= 0:
            self.select_id(next_id)
        else:
            self.select_row(min(first, self.model.rowCount() - 1) if len(rows) == 1 else rows[-1])

    def push_labels(self, labels: dict, text: str = "", written=None) -> None:
        """One undoable step: shown at once, written by the workspace's writer (see undo.py)."""
        before = {i: self.model.label_of_id(i) for i in labels}
        self.undo_stack.push(LabelCommand(self.undo_stack, self.session.submit_labels, labels, before,
                                          self._labels_applied, lambda msg: self.show_error("Label", msg),
                                          text, written, on_saved=self._labels_saved))

    def _labels_applied(self, labels: dict) -> None:
        current = self.current_id()
        self.model.update_labels(labels)
        if self.model.row_of_id(current) >= 0 and self.view.currentIndex().row() < 0:
            self.select_id(current)
        self.refresh_status()
        self.refresh_viewer()

    def _labels_saved(self) -> None:
        self.refresh_viewer()  # its label history comes from the store
        self.schedule_adapt()  # every saved correction refits the site head
        self.labels_saved.emit()

    def push_change(self, change, text: str) -> None:
        """Put an already-written change (an import) on the undo stack."""
        self.push_labels(dict(change.after), text, change)
