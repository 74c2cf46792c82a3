"""Undo and redo of label changes. Each command is one key press or one bulk action.

The grid changes the moment a key is pressed; the write is queued to the workspace's writer (which also
hashes a photo labelled before the background hasher reached it, off the GUI thread). When the writer
answers "failed" (the file was deleted, the disk is full), the grid goes back, one message says why, and
the step leaves the undo stack: no phantom step that Ctrl+Z would trip over."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Callable

from PySide6.QtGui import QUndoCommand

from ..core.store import LabelChange
from .futures import when_done

Labels = dict[int, str | None]
Submit = Callable[[Labels, str], Future]


class LabelCommand(QUndoCommand):
    def __init__(self, stack, submit: Submit, labels: Labels, before: Labels, show: Callable[[Labels], None],
                 on_error: Callable[[str], None], text: str = "", written: LabelChange | None = None,
                 on_saved: Callable[[], None] | None = None):
        super().__init__(text or describe(labels))
        self.stack, self.submit, self.show, self.on_error = stack, submit, show, on_error
        self.on_saved = on_saved  # e.g. the viewer's label history, which the store keeps
        self.after = dict(labels)
        self.before = {i: before.get(i) for i in labels}
        self._skip_write = written is not None  # an import: already on disk when it is pushed
        if written is not None:
            self.before.update(written.before)
        self._first = True
        self.failed = False

    def redo(self) -> None:
        if self.failed:
            return
        source = "user" if self._first else "redo"
        first, self._first = self._first, False
        if self._skip_write:
            self._skip_write = False
            self.show(self.after)
            return
        self._write(self.after, source, revert_to=self.before, first=first)

    def undo(self) -> None:
        if self.failed:
            return
        self._write(self.before, "undo", revert_to=self.after, first=False)

    def _write(self, labels: Labels, source: str, revert_to: Labels, first: bool) -> None:
        self.show(labels)
        when_done(self.submit(labels, source), lambda f: self._written(f, revert_to, first))

    def _written(self, future: Future, revert_to: Labels, first: bool) -> None:
        error = future.exception()
        if error is None:
            change: LabelChange = future.result()
            if first:
                self.before.update(change.before)  # the store's record of what was there
                if not change.after:
                    self._drop()  # nothing actually changed: keep it off the stack
            if self.on_saved is not None:
                self.on_saved()
            return
        self.show(revert_to)
        self.on_error(str(error))
        self._drop()

    def _drop(self) -> None:
        """Leave the undo stack (when this is its newest step; an older one just does nothing any more)."""
        self.failed = True
        stack = self.stack
        if stack.index() > 0 and stack.command(stack.index() - 1) is self:
            self.setObsolete(True)
            stack.undo()  # undo() is a no-op now; QUndoStack deletes an obsolete command it undoes


def describe(labels: Labels) -> str:
    values = set(labels.values())
    what = {None: "clear label", "crack": "label crack", "no_crack": "label no crack"}
    name = what[next(iter(values))] if len(values) == 1 else "change labels"
    return name if len(labels) == 1 else f"{name} ({len(labels)} images)"
