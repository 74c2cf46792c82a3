"""The workspace's part for site adaptation (mixed into `Workspace`): stored features, the labels with their
features, and the folder's site head. Reads stream rows (40,000 feature vectors never sit in a Python list);
writes go through the single writer like every other write."""

from __future__ import annotations

import json

import numpy as np

from . import features as codec
from .db import now_iso, path_from_db


class SiteStore:
    def feature_rows(self, model_key: str):
        """(image id, stored feature bytes) of every present image with features of `model_key`, streamed."""
        yield from self._iterate("SELECT i.id, f.vec FROM images i JOIN features f ON f.hash=i.hash AND f.model=? "
                                 "WHERE i.present=1", (model_key,))

    def labelled_features(self, model_key: str) -> tuple[list[tuple[str, str, np.ndarray]], list, list]:
        """The folder's human labels as site-head training data: ([(key, label, features)], images without
        features [(id, path)], tiles without features [(id, path, box)]). One entry per distinct content; a
        labelled tile of a large photo is an entry of its own (key 'hash#x,y,w,h')."""
        rows = self._read("SELECT i.hash, MIN(i.id), MIN(i.path), l.label, f.vec FROM images i "
                          "JOIN labels l ON l.hash=i.hash LEFT JOIN features f ON f.hash=i.hash AND f.model=? "
                          "WHERE i.present=1 GROUP BY i.hash", (model_key,))
        found, missing, missing_tiles = [], [], []
        for digest, image_id, path, label, blob in rows:
            if blob is None:
                missing.append((image_id, path_from_db(path)))
            else:
                found.append((digest, label, codec.decode(blob)))
        tiles = self._read("SELECT t.hash, MIN(i.id), MIN(i.path), t.x, t.y, t.w, t.h, t.label, f.vec "
                           "FROM tile_labels t JOIN images i ON i.hash=t.hash LEFT JOIN tile_features f ON "
                           "f.hash=t.hash AND f.model=? AND f.x=t.x AND f.y=t.y AND f.w=t.w AND f.h=t.h "
                           "WHERE i.present=1 GROUP BY t.hash, t.x, t.y, t.w, t.h", (model_key,))
        for digest, image_id, path, x, y, w, h, label, blob in tiles:
            if blob is None:
                missing_tiles.append((image_id, path_from_db(path), (x, y, w, h)))
            else:
                found.append((f"{digest}#{x},{y},{w},{h}", label, codec.decode(blob)))
        return found, missing, missing_tiles

    def labelled_ids(self) -> list[int]:
        """Ids of present images with a human label."""
        return [r[0] for r in self._read("SELECT i.id FROM images i JOIN labels l ON l.hash=i.hash WHERE i.present=1")]

    def set_features(self, model_key: str, rows, wait: bool = True):
        """(hash, stored feature bytes) of images, without predictions (features computed for a site head)."""
        rows = [(h, model_key, blob) for h, blob in rows]
        return self._write(lambda db: db.executemany(
            "INSERT INTO features(hash, model, vec) VALUES (?,?,?) ON CONFLICT(hash, model) DO UPDATE SET "
            "vec=excluded.vec", rows) and None, wait=wait)

    def set_tile_features(self, model_key: str, rows, wait: bool = True):
        """(hash, (x, y, w, h), stored bytes) of tiles whose features a site head needs."""
        rows = [(h, model_key, *map(int, box), blob) for h, box, blob in rows]
        return self._write(lambda db: db.executemany(
            "INSERT INTO tile_features(hash, model, x, y, w, h, vec) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(hash, model, x, y, w, h) DO UPDATE SET vec=excluded.vec", rows) and None, wait=wait)

    def site_head(self, model_key: str):
        """((weights, bias), labels key, summary JSON) of the stored site head of `model_key`, or None."""
        rows = self._read("SELECT head, labels_key, summary FROM site_heads WHERE model=?", (model_key,))
        if not rows:
            return None
        head, key, summary = rows[0]
        values = np.frombuffer(head, np.float64)
        return (values[:-1].copy(), float(values[-1])), key, summary

    def set_site_head(self, model_key: str, value, wait: bool = True):
        """Store (weights, bias, labels key, summary JSON) as the folder's site head of `model_key`; None clears."""
        if value is None:
            return self._write(lambda db: db.execute("DELETE FROM site_heads WHERE model=?", (model_key,)) and None,
                               wait=wait)
        weights, bias, key, summary = value
        blob = np.append(np.asarray(weights, np.float64), float(bias)).tobytes()
        json.loads(summary)  # a summary that is not JSON is a bug, not something to store
        return self._write(lambda db: db.execute(
            "INSERT INTO site_heads(model, head, labels_key, summary, updated) VALUES (?,?,?,?,?) "
            "ON CONFLICT(model) DO UPDATE SET head=excluded.head, labels_key=excluded.labels_key, "
            "summary=excluded.summary, updated=excluded.updated", (model_key, blob, key, summary, now_iso())) and None,
            wait=wait)
