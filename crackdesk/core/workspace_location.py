"""Where a folder's workspace lives: `<folder>/.crackdesk/workspace.sqlite`, or in the user's data
directory when the folder cannot be written (a read-only share, a camera card)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .paths import user_data_dir

WORKSPACE_DIR = ".crackdesk"
WORKSPACE_FILE = "workspace.sqlite"


def default_workspace_path(folder: str | Path) -> Path:
    folder = Path(folder).resolve()
    local = folder / WORKSPACE_DIR
    if _writable(folder, local):
        return local / WORKSPACE_FILE
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    return user_data_dir() / "workspaces" / f"{folder.name or 'root'}-{digest}" / WORKSPACE_FILE


def _writable(folder: Path, local: Path) -> bool:
    if local.is_dir():
        return os.access(local, os.W_OK)
    return os.access(folder, os.W_OK)
