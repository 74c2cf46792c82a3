"""Undo and redo of label changes. Each command wraps one Workspace.set_labels call (one key press or
one bulk action); undo writes the `before` labels back, so the store and its history stay the record."""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QUndoCommand

from ..core.errors import CrackDeskError
from ..core.store import LabelChange, Workspace

Applied = Callable[[dict[int, str | None]], None]


class LabelCommand(QUndoCommand):
    def __init__(self, workspace: Workspace, labels: dict[int, str | None], applied: Applied,
                 on_error: Callable[[str], None], text: str = "", change: LabelChange | None = None):
        super().__init__(text or describe(labels))
        self.workspace = workspace
        self.labels = labels
        self.applied = applied
        self.on_error = on_error
        self.change = change  # given when the change was already written (an import)
        self._already_written = change is not None

    def redo(self) -> None:
        try:
            if self.change is None:
                self.change = self.workspace.set_labels(self.labels, source="user")
                if not self.change.after:
                    self.setObsolete(True)  # nothing actually changed: keep it off the stack
            elif self._already_written:
                self._already_written = False
            else:
                self.workspace.set_labels(self.change.after, source="redo")
        except CrackDeskError as e:
            self.setObsolete(True)
            self.on_error(str(e))
            return
        self.applied(self.change.after)

    def undo(self) -> None:
        try:
            self.workspace.set_labels(self.change.before, source="undo")
        except CrackDeskError as e:
            self.on_error(str(e))
            return
        self.applied(self.change.before)


def describe(labels: dict[int, str | None]) -> str:
    values = set(labels.values())
    what = {None: "clear label", "crack": "label crack", "no_crack": "label no crack"}
    name = what[next(iter(values))] if len(values) == 1 else "change labels"
    return name if len(labels) == 1 else f"{name} ({len(labels)} images)"
