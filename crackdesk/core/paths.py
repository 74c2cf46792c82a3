"""Where things are: resources inside the package or a PyInstaller bundle, and the user's own data.

User data (fallback workspaces, imported and retrained models, thumbnail cache) never goes into the
bundle or the source tree. CRACKDESK_DATA_DIR overrides the data directory (tests use it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "CrackDesk"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def bundle_root() -> Path:
    """The folder holding `models/`: the bundle's data folder when frozen, else the repository root."""
    if is_frozen():
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    return Path(__file__).resolve().parents[2]


def shipped_models_dir() -> Path:
    override = os.environ.get("CRACKDESK_MODELS_DIR")
    return Path(override) if override else bundle_root() / "models"


def user_data_dir() -> Path:
    override = os.environ.get("CRACKDESK_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def thumbnail_cache_dir() -> Path:
    override = os.environ.get("CRACKDESK_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "thumbnails"


def file_version(path: str | Path) -> tuple[str, int, int, int]:
    """What tells one version of a file from another, for what a process reads once per file (a model's metadata,
    a memory's window basis): path, inode, size, modification time. A file copied over atomically is a new inode.
    OSError when it cannot be read."""
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns
