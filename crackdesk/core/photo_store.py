"""The workspace's part for photos (mixed into `Workspace`): the windows of large photos (their probabilities
and the inspector's tile labels) and what each photo's EXIF says. Writes go through the single writer like
every other write; `_hashing`, `_inside`, `abspath`, `_read` and `_write` are the Workspace's own."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Iterable

from .datasets import LABELS
from .db import now_iso, path_from_db
from .exif import COLUMNS as META_COLUMNS, PhotoMeta


class PhotoStore:
    # -- tiles of large images (sliding-window heatmaps) -------------------------------------------
    def set_tile_results(self, digest: str, model_key: str, tiles: Iterable[tuple[int, int, int, int, float]],
                         wait: bool = True):
        """Replace the tile probabilities (x, y, w, h, p_crack) of one image content and model."""
        rows = [(digest, model_key, int(x), int(y), int(w), int(h), float(p)) for x, y, w, h, p in tiles]

        def apply(db):
            db.execute("DELETE FROM tile_results WHERE hash=? AND model=?", (digest, model_key))
            db.executemany("INSERT INTO tile_results VALUES (?,?,?,?,?,?,?)", rows)

        return self._write(apply, wait=wait)

    def tile_results(self, digest: str, model_key: str) -> list[tuple[int, int, int, int, float]]:
        return self._read("SELECT x, y, w, h, p_crack FROM tile_results WHERE hash=? AND model=? ORDER BY y, x",
                          (digest, model_key))

    def submit_tile_label(self, image_id: int, box: tuple[int, int, int, int], label: str | None) -> Future:
        """Label (or clear) one tile of a large image: a correction that feeds retraining as a patch."""
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {LABELS} or None, not {label!r}")
        hashes, prepare = self._hashing([image_id])
        x, y, w, h = map(int, box)

        def apply(db):
            digest = hashes[image_id]
            db.execute("UPDATE images SET hash=? WHERE id=? AND hash IS NULL", (digest, image_id))
            if label is None:
                db.execute("DELETE FROM tile_labels WHERE hash=? AND x=? AND y=? AND w=? AND h=?", (digest, x, y, w, h))
            else:
                db.execute("INSERT INTO tile_labels VALUES (?,?,?,?,?,?,?) ON CONFLICT(hash, x, y, w, h) "
                           "DO UPDATE SET label=excluded.label, updated=excluded.updated",
                           (digest, x, y, w, h, label, now_iso()))

        return self._write(apply, prepare, wait=False, what="tile label")

    def set_tile_label(self, image_id: int, box: tuple[int, int, int, int], label: str | None) -> None:
        self.submit_tile_label(image_id, box, label).result()

    def tile_labels(self, image_id: int) -> list[tuple[int, int, int, int, str]]:
        return self._read("SELECT t.x, t.y, t.w, t.h, t.label FROM tile_labels t JOIN images i ON i.hash=t.hash "
                          "WHERE i.id=? ORDER BY t.y, t.x", (image_id,))

    def labeled_tiles(self, skipped: list | None = None) -> list[tuple[Path, tuple[int, int, int, int], str]]:
        """(image path, (x, y, w, h), label) of every labelled tile of a present image: training patches."""
        rows = self._read("SELECT MIN(i.path), t.x, t.y, t.w, t.h, t.label FROM tile_labels t "
                          "JOIN images i ON i.hash=t.hash WHERE i.present=1 GROUP BY t.hash, t.x, t.y, t.w, t.h "
                          "ORDER BY MIN(i.id), t.y, t.x")
        return [(self.abspath(p), (x, y, w, h), label) for p, x, y, w, h, label in self._inside(rows, skipped)]

    # -- photo metadata (EXIF), per content ---------------------------------------------------------
    def set_photo_meta(self, rows: Iterable[tuple[str, PhotoMeta]], wait: bool = True):
        """Store (hash, PhotoMeta) rows: what each content's EXIF says (a pure function of the bytes)."""
        rows = [(h, *m.row()) for h, m in rows]
        marks = ",".join("?" * (1 + len(META_COLUMNS)))
        sql = f"INSERT OR REPLACE INTO photo_meta(hash, {', '.join(META_COLUMNS)}) VALUES ({marks})"
        return self._write(lambda db: db.executemany(sql, rows) and None, wait=wait, what="photo metadata")

    def photo_meta(self, image_id: int) -> PhotoMeta | None:
        """The stored metadata of an image, or None while it has not been read (not hashed yet)."""
        rows = self._read(f"SELECT {', '.join('m.' + c for c in META_COLUMNS)} FROM images i "
                          "JOIN photo_meta m ON m.hash = i.hash WHERE i.id=?", (image_id,))
        return PhotoMeta.from_row(rows[0]) if rows else None

    def photo_meta_by_hash(self) -> dict[str, PhotoMeta]:
        """Every present image's metadata, by content hash (one query for a whole report or export)."""
        rows = self._read(f"SELECT m.hash, {', '.join('m.' + c for c in META_COLUMNS)} FROM photo_meta m "
                          "WHERE m.hash IN (SELECT hash FROM images WHERE present=1)")
        return {r[0]: PhotoMeta.from_row(r[1:]) for r in rows}

    def hashed_without_meta(self, limit: int = 1_000_000) -> list[tuple[str, str]]:
        """(path, hash) of one present image per hashed content whose metadata was never read: hashed by a
        CrackDesk before metadata existed, or by a path that reads no header (a label on an unhashed photo).
        The path is the one of the smallest id (SQLite takes bare columns from the MIN row)."""
        return [(path_from_db(p), h) for _, p, h in self._read(
            "SELECT MIN(i.id), i.path, i.hash FROM images i WHERE i.present=1 AND i.hash IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM photo_meta m WHERE m.hash = i.hash) GROUP BY i.hash ORDER BY MIN(i.id) "
            "LIMIT ?", (limit,))]
