"""Where a folder's workspace lives: `<folder>/.crackdesk/workspace.sqlite`, or in the user's data
directory when the folder cannot be written (a read-only share, a camera card).

An existing workspace in the folder is always the one used, even when it cannot be written: falling
back to an empty one elsewhere would hide its labels (opening then says it is read-only and what to do).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .paths import user_data_dir

WORKSPACE_DIR = ".crackdesk"
WORKSPACE_FILE = "workspace.sqlite"


def local_workspace_path(folder: str | Path) -> Path:
    return Path(folder).resolve() / WORKSPACE_DIR / WORKSPACE_FILE


def fallback_workspace_path(folder: str | Path) -> Path:
    folder = Path(folder).resolve()
    digest = hashlib.sha1(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return user_data_dir() / "workspaces" / f"{folder.name or 'root'}-{digest}" / WORKSPACE_FILE


def default_workspace_path(folder: str | Path) -> Path:
    local = local_workspace_path(folder)
    if local.exists() or _writable(local.parent.parent, local.parent):
        return local
    return fallback_workspace_path(folder)


def is_fallback(folder: str | Path, db_path: str | Path) -> bool:
    """True when `db_path` is the user-data stand-in for a folder that cannot be written."""
    return Path(db_path) == fallback_workspace_path(folder)


def _writable(folder: Path, local: Path) -> bool:
    if local.is_dir():
        return os.access(local, os.W_OK)
    return os.access(folder, os.W_OK)
