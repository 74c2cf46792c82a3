"""SQLite plumbing shared by the workspace's writer and readers: opening a connection, turning SQLite's
errors into messages a person can act on, and storing file names that are not valid UTF-8.

Every sqlite3 error that reaches the workspace's callers goes through `workspace_error`, so "disk is full",
"damaged file" and "locked by another program" read the same from the CLI, the GUI and training.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .errors import WorkspaceError

BUSY_TIMEOUT_S = 30  # another CrackDesk (or a backup tool) may hold the write lock for a moment
# PRAGMA application_id of every workspace ('CRKD'): a file carrying another id is another program's.
APPLICATION_ID = 0x43524B44


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the workspace's settings. Readers are `query_only`: a bug cannot make them write.
    Autocommit mode: the writer opens its transactions itself (BEGIN IMMEDIATE)."""
    try:
        db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise workspace_error(e, path, "open") from None
    try:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=FULL")  # an acknowledged label survives a power cut
        if readonly:
            db.execute("PRAGMA query_only=ON")
    except sqlite3.Error as e:
        db.close()
        raise workspace_error(e, path, "open") from None
    return db


def workspace_error(error: BaseException, path: str | Path, doing: str = "save to") -> WorkspaceError:
    """One clear sentence for an sqlite3 (or OS) error met while `doing` the workspace."""
    text = str(error)
    low = text.lower()
    if isinstance(error, OSError) and not isinstance(error, sqlite3.Error):
        reason = error.strerror or text
    elif "disk is full" in low or "database or disk is full" in low:
        reason = "the disk is full"
    elif "readonly" in low or "read-only" in low:
        reason = "the workspace file or its folder is read-only"
    elif "locked" in low or "busy" in low:
        reason = (f"another program has held the workspace locked for over {BUSY_TIMEOUT_S} s "
                  "(another CrackDesk classifying this folder?)")
    elif "malformed" in low or "corrupt" in low:
        reason = ("the workspace file is damaged (SQLite: database disk image is malformed); move it aside to "
                  "start a fresh one, or recover it with `sqlite3 FILE .recover`")
    elif "not a database" in low or "encrypted" in low:
        reason = "the file is not a SQLite database"
    elif "unable to open" in low:
        reason = "the file cannot be opened (missing folder or no permission)"
    else:
        reason = f"SQLite: {text}"
    suffix = "; nothing was changed" if doing == "save to" else ""
    return WorkspaceError(f"cannot {doing} the workspace: {reason}{suffix}", path)


def now_iso() -> str:
    """The workspace's timestamps: UTC, ISO 8601, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- file names ------------------------------------------------------------------------------------
# On Linux a file name is bytes; Python hands names that are not valid UTF-8 over as str with lone
# surrogates ('caf\udce9.jpg'), which SQLite cannot store as text. Those few are stored as BLOBs of their
# exact bytes, so the name round-trips and the file stays readable; every other name stays plain text.

def path_to_db(relpath: str) -> str | bytes:
    try:
        relpath.encode("utf-8")
        return relpath
    except UnicodeEncodeError:
        return os.fsencode(relpath)


def path_from_db(value: str | bytes) -> str:
    return value if isinstance(value, str) else os.fsdecode(value)

