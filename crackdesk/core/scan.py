"""Listing the images of a folder tree: fast (no decoding, no hashing), deterministic, loop-safe.

Only regular files are listed (a FIFO or device named `x.jpg` would hang or flood a reader); what cannot be
listed (an unreadable sub-folder, such a special file) is reported in `ScanResult.problems`, never dropped
without a word."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CrackDeskError
from .images import is_image_name

APP_DIRS = frozenset({".crackdesk", "__crackdesk_thumbs__"})
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ScannedFile:
    relpath: str  # POSIX-style, relative to the scanned root
    size: int
    mtime_ns: int


class ScanResult(list):
    """The files found (a list of ScannedFile), and `problems`: (relative path, reason) of what was skipped."""

    def __init__(self, files=(), problems=None):
        super().__init__(files)
        self.problems: list[tuple[str, str]] = list(problems or [])


def natural_key(text: str) -> str:
    """'img2' sorts before 'img10'; case-insensitive, ties broken by the exact text.
    A single string (digit runs zero-padded), not a tuple: sorting 40,000 of them is a few milliseconds
    of C comparisons instead of ~0.1 s holding the GIL while the GUI waits to repaint."""
    return _DIGITS.sub(lambda m: m.group().zfill(20), text.lower()) + "\0" + text


def scan_folder(root: str | Path, cancel=None) -> ScanResult:
    """All image files below `root`, naturally sorted by relative path.

    Hidden folders (starting with '.') and the app's own folders are skipped; symlinked folders are
    followed once (a folder reached twice, e.g. through a link loop, is skipped).
    `cancel` is an optional threading.Event; when set, scanning stops and returns what it found.
    Raises CrackDeskError when `root` itself cannot be listed.
    """
    root = Path(root)
    try:
        first = list(os.scandir(root))
    except FileNotFoundError:
        raise CrackDeskError("folder not found", root) from None
    except NotADirectoryError:
        raise CrackDeskError("not a folder", root) from None
    except OSError as e:
        raise CrackDeskError(f"cannot read the folder ({e.strerror or e})", root) from None
    found: list[ScannedFile] = []
    problems: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str, list | None]] = [(root, "", first)]
    while stack:
        if cancel is not None and cancel.is_set():
            break
        folder, prefix, entries = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        if entries is None:
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                problems.append((prefix.rstrip("/"), f"cannot read the folder ({e.strerror or e})"))
                continue
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir():  # follows symlinks; loops are caught by seen_dirs
                    if not name.startswith(".") and name not in APP_DIRS:
                        stack.append((Path(entry.path), f"{prefix}{name}/", None))
                elif is_image_name(name) and not name.startswith("."):
                    if entry.is_file():
                        st = entry.stat()
                        found.append(ScannedFile(prefix + name, st.st_size, st.st_mtime_ns))
                    elif os.path.exists(entry.path):
                        problems.append((prefix + name, "not a regular file (a pipe, device or socket); skipped"))
                    else:
                        problems.append((prefix + name, "a link to a file that does not exist; skipped"))
            except OSError:
                continue  # dangling symlink or vanished file
    found.sort(key=lambda f: natural_key(f.relpath))
    problems.sort(key=lambda p: natural_key(p[0]))
    return ScanResult(found, problems)
