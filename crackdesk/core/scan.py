"""Listing the images of a folder tree: fast (no decoding, no hashing), deterministic, loop-safe."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .images import is_image_name

APP_DIRS = frozenset({".crackdesk", "__crackdesk_thumbs__"})
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ScannedFile:
    relpath: str  # POSIX-style, relative to the scanned root
    size: int
    mtime_ns: int


def natural_key(text: str) -> str:
    """'img2' sorts before 'img10'; case-insensitive, ties broken by the exact text.
    A single string (digit runs zero-padded), not a tuple: sorting 40,000 of them is a few milliseconds
    of C comparisons instead of ~0.1 s holding the GIL while the GUI waits to repaint."""
    return _DIGITS.sub(lambda m: m.group().zfill(20), text.lower()) + "\0" + text


def scan_folder(root: str | Path, cancel=None) -> list[ScannedFile]:
    """All image files below `root`, naturally sorted by relative path.

    Hidden folders (starting with '.') and the app's own folders are skipped; symlinked folders are
    followed once (a folder reached twice, e.g. through a link loop, is skipped).
    `cancel` is an optional threading.Event; when set, scanning stops and returns what it found.
    """
    root = Path(root)
    found: list[ScannedFile] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack = [(root, "")]
    while stack:
        if cancel is not None and cancel.is_set():
            break
        folder, prefix = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: list what we can elsewhere
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir():  # follows symlinks; loops are caught by seen_dirs
                    if not name.startswith(".") and name not in APP_DIRS:
                        stack.append((Path(entry.path), f"{prefix}{name}/"))
                elif is_image_name(name) and not name.startswith("."):
                    st = entry.stat()
                    found.append(ScannedFile(prefix + name, st.st_size, st.st_mtime_ns))
            except OSError:
                continue  # dangling symlink or vanished file
    found.sort(key=lambda f: natural_key(f.relpath))
    return found
