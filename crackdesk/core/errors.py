"""Errors a user can cause. Each names the file and what is wrong; the GUI shows it as a message and
the CLI prints it as one line, never as a traceback."""

from __future__ import annotations

from pathlib import Path

from .wording import printable


class CrackDeskError(Exception):
    """Base class for problems caused by input the user chose (a file, a folder, an option)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.reason = message
        # One line whatever the file's name (a newline in it would split the message)
        super().__init__(f"{printable(str(path))}: {message}" if path is not None else message)


class ImageError(CrackDeskError):
    """An image file that cannot be read: corrupt, truncated, empty, not an image, too large."""


class ModelError(CrackDeskError):
    """A model file that is not a usable CrackDesk ONNX model."""


class WorkspaceError(CrackDeskError):
    """A workspace database that cannot be opened or written."""


class DatasetError(CrackDeskError):
    """A training or evaluation data folder that cannot be used."""
