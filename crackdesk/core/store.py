"""The workspace: one SQLite file (WAL) per image folder holding images, human labels, model predictions
and the history of every label change.

Labels and predictions are keyed by the image's content hash, so renaming or moving files keeps them
and identical files share them. All writes go through the workspace's single writer thread
(`writer.py`): each write method either waits for its commit (`wait=True`, the default: once it returns,
a crash or kill -9 cannot lose the change) or returns a Future that says committed or failed. Reads use a
connection of the calling thread's own (WAL lets readers and the writer proceed side by side).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from .datasets import CRACK, LABELS, NO_CRACK, LabeledFile
from .db import connect, now_iso, path_from_db, path_to_db, workspace_error
from .errors import CrackDeskError, WorkspaceError
from .hashing import file_hash
from .scan import ScannedFile
from .schema import SCHEMA_VERSION
from .photo_store import PhotoStore
from .site_store import SiteStore
from .workspace_location import default_workspace_path
from .writer import WorkspaceWriter


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str  # relative to the workspace folder, POSIX
    hash: str | None
    label: str | None  # human label
    p_crack: float | None  # prediction of the model asked for
    predicted: str | None


@dataclass(frozen=True)
class LabelChange:
    """One user action (single or bulk): for each image id, the label before and after."""

    batch: int
    before: dict[int, str | None]
    after: dict[int, str | None]


def safe_relpath(relpath: str) -> bool:
    """A stored path may only name something inside the folder: relative, no `..`, no drive."""
    p = PurePosixPath(relpath)
    return bool(relpath) and not p.is_absolute() and ".." not in p.parts and "\\" not in relpath \
        and ":" not in p.parts[0]


class _Reader:
    """One thread's read connection; closed with the thread (garbage) or with the workspace."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def close(self) -> None:
        self.db.close()

    __del__ = close


class Workspace(SiteStore, PhotoStore):
    def __init__(self, folder: str | Path, db_path: str | Path | None = None):
        self.folder = Path(folder).resolve()
        self.db_path = Path(db_path) if db_path else default_workspace_path(self.folder)
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(f"cannot create the workspace's folder ({e.strerror or e})",
                                 self.db_path.parent) from None
        if self.db_path.is_dir():
            raise WorkspaceError("is a folder, not a workspace file", self.db_path)
        if self.db_path.exists() and not (os.access(self.db_path, os.W_OK) and
                                          os.access(self.db_path.parent, os.W_OK)):
            raise WorkspaceError("the workspace is read-only (no permission to write the file or its folder): its "
                                 "labels are safe but could not be changed; make it writable, or copy it and open "
                                 "the copy with --workspace", self.db_path)
        self._local = threading.local()
        self._readers: weakref.WeakSet = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._writer = WorkspaceWriter(self.db_path)

    # -- plumbing ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._writer.close()
        with self._readers_lock:
            for reader in list(self._readers):
                reader.close()
            self._readers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read connection, opened on first use and closed when the thread ends
        (threading.local works for Qt's threads too, which threading.enumerate() does not list)."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = _Reader(connect(self.db_path, readonly=True))
            with self._readers_lock:
                self._readers.add(reader)
        return reader.db

    def _read(self, sql: str, args=()) -> list:
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise workspace_error(e, self.db_path, "read") from None

    def _iterate(self, sql: str, args=(), batch: int = 512):
        """Rows of a query a batch at a time (for large results: never all of them in one list)."""
        try:
            cursor = self._reader().execute(sql, args)
            while rows := cursor.fetchmany(batch):
                yield from rows
        except sqlite3.Error as e:
            raise workspace_error(e, self.db_path, "read") from None

    def _write(self, apply, prepare=None, wait: bool = True, what: str = "save"):
        """Run apply(db) in the writer's transaction; the result once committed, or the Future."""
        future = self._writer.submit(apply, prepare, what)
        return future.result() if wait else future

    def flush(self) -> None:
        """Wait until every write queued so far is committed (or has failed)."""
        self._writer.submit(lambda db: None, what="flush").exception()

    def abspath(self, relpath: str) -> Path:
        if not safe_relpath(relpath):
            raise WorkspaceError(f"the stored path {relpath!r} points outside the folder; it is ignored",
                                 self.db_path)
        return self.folder / relpath

    # -- settings of this folder (the meta table) -------------------------------------------------
    def meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str | None, wait: bool = True):
        if key == "schema_version":
            raise ValueError("the schema version is the migrations' to set")
        if value is None:
            return self._write(lambda db: db.execute("DELETE FROM meta WHERE key=?", (key,)) and None, wait=wait)
        return self._write(lambda db: db.execute("INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) "
                                                 "DO UPDATE SET value=excluded.value", (key, value)) and None,
                           wait=wait)

    # -- images -----------------------------------------------------------------------------------
    def sync(self, scanned: Iterable[ScannedFile]) -> int:
        """Bring the image table in line with a folder scan; returns the number of new images.
        Changed files (size or mtime) lose their hash so it is recomputed; vanished ones are marked absent."""
        scanned = list(scanned)

        def apply(db):
            known = {path_from_db(p): (s, m) for p, s, m in db.execute("SELECT path, size, mtime_ns FROM images")}
            added = now_iso()
            new = [(path_to_db(f.relpath), f.size, f.mtime_ns, added) for f in scanned if f.relpath not in known]
            changed = [(f.size, f.mtime_ns, path_to_db(f.relpath)) for f in scanned
                       if f.relpath in known and known[f.relpath] != (f.size, f.mtime_ns)]
            db.executemany("INSERT INTO images(path, size, mtime_ns, added) VALUES (?,?,?,?)", new)
            db.executemany("UPDATE images SET size=?, mtime_ns=?, hash=NULL, width=NULL, height=NULL, present=1 "
                           "WHERE path=?", changed)
            present = {f.relpath for f in scanned}
            gone = [(path_to_db(p),) for p in known if p not in present]
            db.execute("UPDATE images SET present=1 WHERE present=0")
            db.executemany("UPDATE images SET present=0 WHERE path=?", gone)
            return len(new)

        return self._write(apply)

    def add_file(self, relpath: str) -> int:
        """Register one file (already inside the folder); returns its id."""
        st = self.abspath(relpath).stat()
        return self._write(lambda db: db.execute(
            "INSERT INTO images(path, size, mtime_ns, added) VALUES (?,?,?,?) ON CONFLICT(path) DO UPDATE "
            "SET present=1 RETURNING id", (path_to_db(relpath), st.st_size, st.st_mtime_ns, now_iso())).fetchone()[0])

    def unhashed(self, limit: int = 1_000_000) -> list[tuple[int, str]]:
        return [(i, path_from_db(p)) for i, p in self._read(
            "SELECT id, path FROM images WHERE hash IS NULL AND present=1 ORDER BY id LIMIT ?", (limit,))]

    def set_hashes(self, rows: Iterable[tuple[int, str]], wait: bool = True):
        rows = [(h, i) for i, h in rows]
        return self._write(lambda db: db.executemany("UPDATE images SET hash=? WHERE id=?", rows) and None,
                           wait=wait)

    def _hashing(self, image_ids) -> tuple[dict[int, str], callable]:
        """(hashes, prepare): `prepare` fills `hashes` for every id, reading the files not hashed yet, in the
        writer thread (never on a GUI thread); an image whose file is gone fails the command, naming it."""
        hashes: dict[int, str] = {}

        def prepare(db):
            ids = list(image_ids)
            marks = ",".join("?" * len(ids))
            found = {i: (path_from_db(p), h) for i, p, h in
                     db.execute(f"SELECT id, path, hash FROM images WHERE id IN ({marks})", ids)}
            for image_id in ids:
                if image_id not in found:
                    raise WorkspaceError(f"no image with id {image_id} in this workspace", self.db_path)
                path, digest = found[image_id]
                hashes[image_id] = digest if digest is not None else file_hash(self.abspath(path))

        return hashes, prepare

    def ensure_hash(self, image_id: int) -> str:
        """The content hash of an image, computed now if the background hasher has not got to it."""
        hashes, prepare = self._hashing([image_id])

        def apply(db):
            db.execute("UPDATE images SET hash=? WHERE id=? AND hash IS NULL", (hashes[image_id], image_id))
            return hashes[image_id]

        return self._write(apply, prepare)

    def hash_of(self, image_id: int) -> str | None:
        """The stored content hash, or None while the background hasher has not reached the image."""
        rows = self._read("SELECT hash FROM images WHERE id=?", (image_id,))
        return rows[0][0] if rows else None

    def image_id(self, relpath: str) -> int | None:
        rows = self._read("SELECT id FROM images WHERE path=?", (path_to_db(relpath),))
        return rows[0][0] if rows else None

    def rows(self, model_key: str | None = None) -> list[ImageRow]:
        """Every present image with its human label and the prediction of `model_key`, in natural order
        of path (the scan order: ids of one sync are assigned in that order)."""
        sql = ("SELECT i.id, i.path, i.hash, l.label, p.p_crack, p.label FROM images i "
               "LEFT JOIN labels l ON l.hash = i.hash "
               "LEFT JOIN predictions p ON p.hash = i.hash AND p.model = ? "
               "WHERE i.present=1 ORDER BY i.id")
        return [ImageRow(i, path_from_db(p), h, lab, pc, pl) for i, p, h, lab, pc, pl in self._read(sql, (model_key or "",))]

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM images WHERE present=1")[0][0]

    # -- labels -----------------------------------------------------------------------------------
    def submit_labels(self, labels: dict[int, str | None], source: str = "user") -> Future:
        """Set (or clear, with None) the human label of images by id, as one undoable action. The Future
        gives the LabelChange once committed, or a CrackDeskError (nothing of the action was saved)."""
        for label in labels.values():
            if label is not None and label not in LABELS:
                raise ValueError(f"label must be one of {LABELS} or None, not {label!r}")
        labels = dict(labels)
        hashes, prepare = self._hashing(labels)

        def apply(db):
            db.executemany("UPDATE images SET hash=? WHERE id=? AND hash IS NULL",
                           [(h, i) for i, h in hashes.items()])
            marks = ",".join("?" * len(labels))
            paths = {i: p for i, p in db.execute(f"SELECT id, path FROM images WHERE id IN ({marks})", list(labels))}
            batch = db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM label_history").fetchone()[0]
            before, after, stamp = {}, {}, now_iso()
            for image_id, label in labels.items():
                digest = hashes[image_id]
                row = db.execute("SELECT label FROM labels WHERE hash=?", (digest,)).fetchone()
                old = row[0] if row else None
                if old == label:
                    continue
                if label is None:
                    db.execute("DELETE FROM labels WHERE hash=?", (digest,))
                else:
                    db.execute("INSERT INTO labels(hash, label, updated) VALUES (?,?,?) "
                               "ON CONFLICT(hash) DO UPDATE SET label=excluded.label, updated=excluded.updated",
                               (digest, label, stamp))
                db.execute("INSERT INTO label_history(batch, hash, path, old, new, at, source) "
                           "VALUES (?,?,?,?,?,?,?)", (batch, digest, paths.get(image_id), old, label, stamp, source))
                before[image_id], after[image_id] = old, label
            return LabelChange(batch, before, after)

        return self._write(apply, prepare, wait=False, what="labels")

    def set_labels(self, labels: dict[int, str | None], source: str = "user") -> LabelChange:
        """`submit_labels`, waiting for the commit: once this returns, the change is on disk."""
        return self.submit_labels(labels, source).result()

    def label_of(self, image_id: int) -> str | None:
        rows = self._read("SELECT l.label FROM images i JOIN labels l ON l.hash=i.hash WHERE i.id=?", (image_id,))
        return rows[0][0] if rows else None

    def history(self, image_id: int) -> list[dict]:
        """Every label change of this image's content, oldest first."""
        rows = self._read("SELECT h.at, h.old, h.new, h.source, h.path FROM label_history h "
                          "JOIN images i ON i.hash = h.hash WHERE i.id=? ORDER BY h.id", (image_id,))
        return [dict(zip(("at", "old", "new", "source", "path"), (*r[:4], path_from_db(r[4]) if r[4] else r[4])))
                for r in rows]

    def labelled_rows(self) -> list[tuple[str, str, str]]:
        """(path, label, updated) of every present image with a human label, in folder order."""
        rows = self._read("SELECT i.path, l.label, l.updated FROM images i JOIN labels l ON l.hash=i.hash "
                          "WHERE i.present=1 ORDER BY i.id")
        return [(path_from_db(p), label, updated) for p, label, updated in rows]

    def labeled_files(self, skipped: list | None = None) -> list[LabeledFile]:
        """Present images with a human label, as training data (one entry per distinct content). A stored
        path that points outside the folder is never read; it goes to `skipped` as (path, reason)."""
        rows = self._read("SELECT MIN(i.path), l.label FROM images i JOIN labels l ON l.hash=i.hash "
                          "WHERE i.present=1 GROUP BY i.hash ORDER BY MIN(i.id)")
        return [LabeledFile(self.abspath(p), label) for p, label in self._inside(rows, skipped)]

    def _inside(self, rows, skipped):
        for row in rows:
            path = path_from_db(row[0])
            if safe_relpath(path):
                yield (path, *row[1:])
            elif skipped is not None:
                skipped.append((path, "the stored path points outside the folder"))

    # -- predictions ------------------------------------------------------------------------------
    def set_predictions(self, model_key: str, rows: Iterable[tuple[str, float, str]], wait: bool = True):
        """Store (hash, p_crack, label) predictions of one model, replacing older ones."""
        stamp = now_iso()
        rows = [(h, model_key, float(p), label, stamp) for h, p, label in rows]
        return self._write(lambda db: db.executemany(
            "INSERT INTO predictions(hash, model, p_crack, label, created) VALUES (?,?,?,?,?) "
            "ON CONFLICT(hash, model) DO UPDATE SET p_crack=excluded.p_crack, label=excluded.label, "
            "created=excluded.created", rows) and None, wait=wait)

    def set_results(self, model_key: str, hashes, predictions, features=(), wait: bool = True):
        """One classification flush in one transaction: image hashes (id, hash), predictions (hash, p, label)
        and encoded features (hash, bytes) of one model."""
        stamp = now_iso()
        hashes = [(h, i) for i, h in hashes]
        predictions = [(h, model_key, float(p), label, stamp) for h, p, label in predictions]
        features = [(h, model_key, blob) for h, blob in features]

        def apply(db):
            db.executemany("UPDATE images SET hash=? WHERE id=?", hashes)
            db.executemany("INSERT INTO predictions(hash, model, p_crack, label, created) VALUES (?,?,?,?,?) "
                           "ON CONFLICT(hash, model) DO UPDATE SET p_crack=excluded.p_crack, label=excluded.label, "
                           "created=excluded.created", predictions)
            db.executemany("INSERT INTO features(hash, model, vec) VALUES (?,?,?) "
                           "ON CONFLICT(hash, model) DO UPDATE SET vec=excluded.vec", features)

        return self._write(apply, wait=wait, what="classification results")

    def prediction_models(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT model FROM predictions ORDER BY model")]

    def counts(self, model_key: str | None = None) -> dict[str, int]:
        """images, classified, reviewed, crack / no_crack (human label if any, else prediction), disagree."""
        (n, classified, reviewed, crack, no_crack, disagree), = self._read(
            "SELECT COUNT(*), COUNT(p.p_crack), COUNT(l.label), "
            "SUM(COALESCE(l.label, p.label) = ?), SUM(COALESCE(l.label, p.label) = ?), "
            "SUM(l.label IS NOT NULL AND p.label IS NOT NULL AND l.label != p.label) "
            "FROM images i LEFT JOIN labels l ON l.hash=i.hash "
            "LEFT JOIN predictions p ON p.hash=i.hash AND p.model=? WHERE i.present=1",
            (CRACK, NO_CRACK, model_key or ""))
        return {"images": n, "classified": classified, "reviewed": reviewed, "crack": crack or 0,
                "no_crack": no_crack or 0, "disagree": disagree or 0}


def open_workspace(folder: str | Path, workspace: str | Path | None = None) -> Workspace:
    folder = Path(folder)
    if not folder.is_dir():
        raise WorkspaceError("not a folder", folder)
    return Workspace(folder, workspace)


__all__ = ["Workspace", "ImageRow", "LabelChange", "open_workspace", "safe_relpath", "SCHEMA_VERSION",
           "CrackDeskError"]
