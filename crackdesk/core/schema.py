"""Workspace schema and its migrations. Each migration takes the database from version N-1 to N; a file
written by a newer CrackDesk (a higher version) is refused rather than risked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .db import APPLICATION_ID
from .errors import WorkspaceError

V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the folder, POSIX separators
    hash TEXT,                          -- content hash (BLAKE2b-128 hex), NULL until hashed
    size INTEGER, mtime_ns INTEGER,
    width INTEGER, height INTEGER,
    present INTEGER NOT NULL DEFAULT 1, -- 0 when the file was not found by the last scan
    added TEXT NOT NULL
);
CREATE INDEX images_hash ON images(hash);
CREATE TABLE labels(                    -- human labels, by content
    hash TEXT PRIMARY KEY,
    label TEXT NOT NULL CHECK (label IN ('crack', 'no_crack')),
    updated TEXT NOT NULL
);
CREATE TABLE predictions(               -- one row per content and model
    hash TEXT NOT NULL,
    model TEXT NOT NULL,                -- model key: name@version
    p_crack REAL NOT NULL,
    label TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (hash, model)
);
CREATE TABLE label_history(             -- every change, for undo and audit
    id INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,             -- one user action (a bulk change is one batch)
    hash TEXT NOT NULL, path TEXT,
    old TEXT, new TEXT,
    at TEXT NOT NULL, source TEXT NOT NULL
);
CREATE INDEX label_history_hash ON label_history(hash);
"""

V2 = """
CREATE TABLE tile_results(              -- sliding-window results of large images, per content and model
    hash TEXT NOT NULL, model TEXT NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    p_crack REAL NOT NULL,
    PRIMARY KEY (hash, model, x, y, w, h)
);
CREATE TABLE tile_labels(               -- human labels of tiles: corrections that feed retraining
    hash TEXT NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('crack', 'no_crack')),
    updated TEXT NOT NULL,
    PRIMARY KEY (hash, x, y, w, h)
);
"""

V3 = """
CREATE TABLE features(                  -- penultimate-layer features per content and model (site adaptation)
    hash TEXT NOT NULL, model TEXT NOT NULL,
    vec BLOB NOT NULL,                  -- encoded by core/features.py (uint8 and a scale: ~1.3 KB for 1280-d)
    PRIMARY KEY (hash, model)
);
CREATE TABLE tile_features(             -- the same for tiles of large photos that the site head needs
    hash TEXT NOT NULL, model TEXT NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (hash, model, x, y, w, h)
);
CREATE TABLE site_heads(                -- this folder's adaptation of a base model (core/site.py)
    model TEXT PRIMARY KEY,             -- the base model's key
    head BLOB NOT NULL,                 -- weights then bias, float64
    labels_key TEXT NOT NULL,           -- which labels it was fitted on (a digest): stale when they change
    summary TEXT NOT NULL,              -- JSON: label counts, cross-validated accuracy, retention
    updated TEXT NOT NULL
);
"""

V4 = """
CREATE TABLE photo_meta(                -- what each content's file says of itself (EXIF, core/exif.py), read once
    hash TEXT PRIMARY KEY,              -- a row of NULLs: read, nothing found (not read again)
    captured TEXT,                      -- capture time, ISO 8601 as the camera wrote it (local; offset if known)
    lat REAL, lon REAL, alt REAL,       -- WGS84 degrees (south and west negative), metres
    make TEXT, model TEXT,
    width INTEGER, height INTEGER,      -- as stored, before the orientation is applied
    orientation INTEGER                 -- EXIF 1..8
);
"""

V5 = """
CREATE TABLE window_features(           -- a large photo's windows that ran through the model (site head, decision 38)
    hash TEXT NOT NULL, model TEXT NOT NULL,
    n_windows INTEGER NOT NULL,         -- the photo's grid, as its tile_results rows (stale if they differ)
    windows BLOB NOT NULL,              -- int32 window indices, row-major (tile_results ordered by y, x)
    vecs BLOB NOT NULL,                 -- their features, core/features.py encode_matrix
    PRIMARY KEY (hash, model)
);
"""

MIGRATIONS = [V1, V2, V3, V4, V5]  # MIGRATIONS[k] takes version k to k+1
SCHEMA_VERSION = len(MIGRATIONS)

def schema_version(db: sqlite3.Connection, path: Path | None = None) -> int:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise WorkspaceError(f"the workspace's schema version is {row[0]!r}, not a number: the file was damaged "
                             "or written by another program", path) from None


def check_is_ours(db: sqlite3.Connection, path: Path) -> None:
    """Refuse another program's SQLite file: adding our tables to it (and switching it to WAL) would
    change a file the user never meant to give us."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if app_id not in (0, APPLICATION_ID):
        raise WorkspaceError(f"not a CrackDesk workspace (SQLite application id {app_id:#x} belongs to another "
                             "program); choose another --workspace file", path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                       "AND name NOT LIKE 'sqlite_%'")}
    if tables and "meta" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise WorkspaceError(f"not a CrackDesk workspace: it is another program's SQLite database (tables {shown}); "
                             "choose another --workspace file", path)


def create_or_migrate(db: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    """Create or upgrade the schema in ONE write transaction: two processes opening a fresh folder at the
    same moment serialise on the write lock, and the second finds the first one's finished schema."""
    db.execute("BEGIN IMMEDIATE")
    try:
        check_is_ours(db, path)
        version = schema_version(db, path)
        if version > SCHEMA_VERSION:
            raise WorkspaceError(f"this workspace was written by a newer CrackDesk (schema version {version}, "
                                 f"this version understands up to {SCHEMA_VERSION}); update CrackDesk to open it",
                                 path)
        for step in range(version, target):
            for statement in MIGRATIONS[step].split(";\n"):  # statements end a line
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(step + 1),))
        if version < target:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
