"""The workspace: one SQLite file (WAL) per image folder holding images, human labels, model predictions
and the history of every label change.

Labels and predictions are keyed by the image's content hash, so renaming or moving files keeps them
and identical files share them. Every label change is committed with synchronous=FULL before the call
returns: once acknowledged, a crash or kill -9 cannot lose it.

One connection, shared by threads under a lock (the GUI reads; workers write predictions and hashes).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .datasets import CRACK, LABELS, NO_CRACK, LabeledFile
from .errors import WorkspaceError
from .hashing import file_hash
from .scan import ScannedFile
from .schema import SCHEMA_VERSION, create_or_migrate
from .workspace_location import default_workspace_path


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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


class Workspace:
    def __init__(self, folder: str | Path, db_path: str | Path | None = None):
        self.folder = Path(folder).resolve()
        self.db_path = Path(db_path) if db_path else default_workspace_path(self.folder)
        self._lock = threading.RLock()
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            create_or_migrate(self._db, self.db_path)
        except sqlite3.DatabaseError as e:
            raise WorkspaceError(f"cannot open the workspace database ({e})", self.db_path) from None
        except OSError as e:
            raise WorkspaceError(f"cannot create the workspace ({e.strerror or e})", self.db_path) from None

    # -- plumbing ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, fn):
        """Run fn(cursor) in one transaction; disk-full and similar errors become WorkspaceError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(self._db)
                    self._db.execute("COMMIT")
                    return result
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                raise WorkspaceError(f"could not save to the workspace ({e}); nothing was changed",
                                     self.db_path) from None

    def _read(self, sql: str, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def abspath(self, relpath: str) -> Path:
        return self.folder / relpath

    # -- images -----------------------------------------------------------------------------------
    def sync(self, scanned: Iterable[ScannedFile]) -> int:
        """Bring the image table in line with a folder scan; returns the number of new images.
        Changed files (size or mtime) lose their hash so it is recomputed; vanished ones are marked absent."""
        scanned = list(scanned)

        def apply(db):
            known = {p: (s, m) for p, s, m in db.execute("SELECT path, size, mtime_ns FROM images")}
            new = [(f.relpath, f.size, f.mtime_ns, now_iso()) for f in scanned if f.relpath not in known]
            changed = [(f.size, f.mtime_ns, f.relpath) for f in scanned
                       if f.relpath in known and known[f.relpath] != (f.size, f.mtime_ns)]
            db.executemany("INSERT INTO images(path, size, mtime_ns, added) VALUES (?,?,?,?)", new)
            db.executemany("UPDATE images SET size=?, mtime_ns=?, hash=NULL, width=NULL, height=NULL, present=1 "
                           "WHERE path=?", changed)
            present = {f.relpath for f in scanned}
            gone = [(p,) for p in known if p not in present]
            db.execute("UPDATE images SET present=1 WHERE present=0")
            db.executemany("UPDATE images SET present=0 WHERE path=?", gone)
            return len(new)

        return self._write(apply)

    def add_file(self, relpath: str) -> int:
        """Register one file (already inside the folder); returns its id."""
        st = self.abspath(relpath).stat()
        self._write(lambda db: db.execute(
            "INSERT INTO images(path, size, mtime_ns, added) VALUES (?,?,?,?) ON CONFLICT(path) DO UPDATE "
            "SET present=1", (relpath, st.st_size, st.st_mtime_ns, now_iso())))
        return self._read("SELECT id FROM images WHERE path=?", (relpath,))[0][0]

    def unhashed(self, limit: int = 1_000_000) -> list[tuple[int, str]]:
        return self._read("SELECT id, path FROM images WHERE hash IS NULL AND present=1 ORDER BY id LIMIT ?",
                          (limit,))

    def set_hashes(self, rows: Iterable[tuple[int, str]]) -> None:
        rows = [(h, i) for i, h in rows]
        self._write(lambda db: db.executemany("UPDATE images SET hash=? WHERE id=?", rows))

    def ensure_hash(self, image_id: int) -> str:
        """The content hash of an image, computed now if the background hasher has not got to it."""
        (path, digest), = self._read("SELECT path, hash FROM images WHERE id=?", (image_id,))
        if digest is None:
            digest = file_hash(self.abspath(path))
            self.set_hashes([(image_id, digest)])
        return digest

    def hash_of(self, image_id: int) -> str | None:
        """The stored content hash, or None while the background hasher has not reached the image."""
        rows = self._read("SELECT hash FROM images WHERE id=?", (image_id,))
        return rows[0][0] if rows else None

    def image_id(self, relpath: str) -> int | None:
        rows = self._read("SELECT id FROM images WHERE path=?", (relpath,))
        return rows[0][0] if rows else None

    def rows(self, model_key: str | None = None) -> list[ImageRow]:
        """Every present image with its human label and the prediction of `model_key`, in natural order
        of path (the scan order: ids of one sync are assigned in that order)."""
        sql = ("SELECT i.id, i.path, i.hash, l.label, p.p_crack, p.label FROM images i "
               "LEFT JOIN labels l ON l.hash = i.hash "
               "LEFT JOIN predictions p ON p.hash = i.hash AND p.model = ? "
               "WHERE i.present=1 ORDER BY i.id")
        return [ImageRow(*r) for r in self._read(sql, (model_key or "",))]

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM images WHERE present=1")[0][0]

    # -- labels -----------------------------------------------------------------------------------
    def set_labels(self, labels: dict[int, str | None], source: str = "user") -> LabelChange:
        """Set (or clear, with None) the human label of images by id, as one undoable action.
        Returns what changed; committed to disk before returning."""
        for label in labels.values():
            if label is not None and label not in LABELS:
                raise ValueError(f"label must be one of {LABELS} or None, not {label!r}")
        hashes = {i: self.ensure_hash(i) for i in labels}
        paths = dict(self._read(f"SELECT id, path FROM images WHERE id IN ({','.join('?' * len(labels))})",
                                tuple(labels)))

        def apply(db):
            batch = (db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM label_history").fetchone()[0])
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

        return self._write(apply)

    def label_of(self, image_id: int) -> str | None:
        rows = self._read("SELECT l.label FROM images i JOIN labels l ON l.hash=i.hash WHERE i.id=?", (image_id,))
        return rows[0][0] if rows else None

    def history(self, image_id: int) -> list[dict]:
        """Every label change of this image's content, oldest first."""
        rows = self._read("SELECT h.at, h.old, h.new, h.source, h.path FROM label_history h "
                          "JOIN images i ON i.hash = h.hash WHERE i.id=? ORDER BY h.id", (image_id,))
        return [dict(zip(("at", "old", "new", "source", "path"), r)) for r in rows]

    def labeled_files(self) -> list[LabeledFile]:
        """Present images with a human label, as training data (one entry per distinct content)."""
        rows = self._read("SELECT MIN(i.path), l.label FROM images i JOIN labels l ON l.hash=i.hash "
                          "WHERE i.present=1 GROUP BY i.hash ORDER BY MIN(i.id)")
        return [LabeledFile(self.abspath(p), label) for p, label in rows]

    # -- predictions ------------------------------------------------------------------------------
    def set_predictions(self, model_key: str, rows: Iterable[tuple[str, float, str]]) -> None:
        """Store (hash, p_crack, label) predictions of one model, replacing older ones."""
        stamp = now_iso()
        rows = [(h, model_key, float(p), label, stamp) for h, p, label in rows]
        self._write(lambda db: db.executemany(
            "INSERT INTO predictions(hash, model, p_crack, label, created) VALUES (?,?,?,?,?) "
            "ON CONFLICT(hash, model) DO UPDATE SET p_crack=excluded.p_crack, label=excluded.label, "
            "created=excluded.created", rows))

    # -- tiles of large images (sliding-window heatmaps) -------------------------------------------
    def set_tile_results(self, digest: str, model_key: str, tiles: Iterable[tuple[int, int, int, int, float]]) -> None:
        """Replace the tile probabilities (x, y, w, h, p_crack) of one image content and model."""
        rows = [(digest, model_key, int(x), int(y), int(w), int(h), float(p)) for x, y, w, h, p in tiles]

        def apply(db):
            db.execute("DELETE FROM tile_results WHERE hash=? AND model=?", (digest, model_key))
            db.executemany("INSERT INTO tile_results VALUES (?,?,?,?,?,?,?)", rows)

        self._write(apply)

    def tile_results(self, digest: str, model_key: str) -> list[tuple[int, int, int, int, float]]:
        return self._read("SELECT x, y, w, h, p_crack FROM tile_results WHERE hash=? AND model=? ORDER BY y, x",
                          (digest, model_key))

    def set_tile_label(self, image_id: int, box: tuple[int, int, int, int], label: str | None) -> None:
        """Label (or clear) one tile of a large image: a correction that feeds retraining as a patch."""
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {LABELS} or None, not {label!r}")
        digest = self.ensure_hash(image_id)
        x, y, w, h = map(int, box)

        def apply(db):
            if label is None:
                db.execute("DELETE FROM tile_labels WHERE hash=? AND x=? AND y=? AND w=? AND h=?", (digest, x, y, w, h))
            else:
                db.execute("INSERT INTO tile_labels VALUES (?,?,?,?,?,?,?) ON CONFLICT(hash, x, y, w, h) "
                           "DO UPDATE SET label=excluded.label, updated=excluded.updated",
                           (digest, x, y, w, h, label, now_iso()))

        self._write(apply)

    def tile_labels(self, image_id: int) -> list[tuple[int, int, int, int, str]]:
        return self._read("SELECT t.x, t.y, t.w, t.h, t.label FROM tile_labels t JOIN images i ON i.hash=t.hash "
                          "WHERE i.id=? ORDER BY t.y, t.x", (image_id,))

    def labeled_tiles(self) -> list[tuple[Path, tuple[int, int, int, int], str]]:
        """(image path, (x, y, w, h), label) of every labelled tile of a present image: training patches."""
        rows = self._read("SELECT MIN(i.path), t.x, t.y, t.w, t.h, t.label FROM tile_labels t "
                          "JOIN images i ON i.hash=t.hash WHERE i.present=1 GROUP BY t.hash, t.x, t.y, t.w, t.h "
                          "ORDER BY MIN(i.id), t.y, t.x")
        return [(self.abspath(p), (x, y, w, h), label) for p, x, y, w, h, label in rows]

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


__all__ = ["Workspace", "ImageRow", "LabelChange", "open_workspace", "SCHEMA_VERSION"]
