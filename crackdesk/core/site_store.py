"""The workspace's part for site adaptation (mixed into `Workspace`): stored features, the labels with their
features, and the folder's site head. Reads stream rows (40,000 feature vectors never sit in a Python list);
writes go through the single writer like every other write."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from . import features as codec
from .db import now_iso, path_from_db


@dataclass
class LabelledFeatures:
    found: list  # [(key, label, features)]
    missing: list  # images without features [(id, path)]: not classified by the model yet
    missing_tiles: list  # labelled tiles without features [(id, path, box)]
    photos_unused: list  # labelled large photos with no window to learn from [(id, path, label)]
    photos: dict = field(default_factory=dict)  # labelled large photos that teach: {hash: image id}


def _only_images(image_ids) -> tuple[str, tuple]:
    """A WHERE clause part keeping the images `image_ids` (all when None), as one JSON parameter: no limit on how
    many."""
    if image_ids is None:
        return "", ()
    return "AND i.id IN (SELECT value FROM json_each(?))", (json.dumps([int(i) for i in image_ids]),)


class SiteStore:
    def feature_rows(self, model_key: str):
        """(image id, stored feature bytes) of every present image with features of `model_key`, streamed."""
        yield from self._iterate("SELECT i.id, f.vec FROM images i JOIN features f ON f.hash=i.hash AND f.model=? "
                                 "WHERE i.present=1", (model_key,))

    def labelled_features(self, model_key: str, threshold: float = 0.5,
                          photo_examples: dict | None = None, projection=None) -> LabelledFeatures:
        """The folder's human labels as site-head training data. One entry per distinct content; a labelled tile
        of a large photo is an entry of its own (key 'hash#x,y,w,h'), and a labelled large photo gives some of
        its windows (keys 'hash@x,y,w,h', site_photos.photo_label_examples; `threshold` is the model's,
        `projection` the basis its windows are stored in).
        `photo_examples` keeps those per photo, label and tile labels between calls (a refit after every label
        would otherwise read and decode every labelled photo's windows again); its owner clears it when the
        photos' windows are classified again."""
        from .site_photos import photo_label_examples

        rows = self._read("SELECT i.hash, MIN(i.id), MIN(i.path), l.label, f.vec, "
                          "EXISTS(SELECT 1 FROM tile_results t WHERE t.hash=i.hash AND t.model=?) FROM images i "
                          "JOIN labels l ON l.hash=i.hash LEFT JOIN features f ON f.hash=i.hash AND f.model=? "
                          "WHERE i.present=1 GROUP BY i.hash", (model_key, model_key))
        tile_labelled = {}
        for digest, x, y, w, h in self._read("SELECT hash, x, y, w, h FROM tile_labels"):
            tile_labelled.setdefault(digest, set()).add((x, y, w, h))
        found, missing, missing_tiles, photos_unused, photos = [], [], [], [], {}
        for digest, image_id, path, label, blob, tiled in rows:
            if blob is not None:
                found.append((digest, label, codec.decode(blob)))
            elif tiled:  # a large photo, classified by its windows
                boxes = tile_labelled.get(digest, set())
                key = (digest, label, frozenset(boxes))
                examples = photo_examples.get(key) if photo_examples is not None else None
                if examples is None:
                    examples = photo_label_examples(self, model_key, digest, label, threshold, boxes, projection)
                    if photo_examples is not None:
                        photo_examples[key] = examples
                found.extend(examples)
                if examples:
                    photos[digest] = image_id
                else:
                    photos_unused.append((image_id, path_from_db(path), label))
            else:
                missing.append((image_id, path_from_db(path)))
        tiles = self._read("SELECT t.hash, MIN(i.id), MIN(i.path), t.x, t.y, t.w, t.h, t.label, f.vec "
                           "FROM tile_labels t JOIN images i ON i.hash=t.hash LEFT JOIN tile_features f ON "
                           "f.hash=t.hash AND f.model=? AND f.x=t.x AND f.y=t.y AND f.w=t.w AND f.h=t.h "
                           "WHERE i.present=1 GROUP BY t.hash, t.x, t.y, t.w, t.h", (model_key,))
        for digest, image_id, path, x, y, w, h, label, blob in tiles:
            if blob is None:
                missing_tiles.append((image_id, path_from_db(path), (x, y, w, h)))
            else:
                found.append((f"{digest}#{x},{y},{w},{h}", label, codec.decode(blob)))
        return LabelledFeatures(found, missing, missing_tiles, photos_unused, photos)

    def hashes_of(self, image_ids) -> set[str]:
        """The content hashes of these images, in one query (a merge's photos: up to a quarter of the folder)."""
        where, args = _only_images(image_ids)
        return {h for (h,) in self._read(f"SELECT i.hash FROM images i WHERE i.hash IS NOT NULL {where}", args)}

    def window_probabilities(self, model_key: str, image_ids=None):
        """(image id, x, y, w, h, P) of every window of every present large photo classified by `model_key` (of the
        images `image_ids` only, when given), each photo's windows together in row-major order, streamed."""
        where, args = _only_images(image_ids)
        yield from self._iterate("SELECT i.id, t.x, t.y, t.w, t.h, t.p_crack FROM images i JOIN tile_results t ON "
                                 f"t.hash=i.hash AND t.model=? WHERE i.present=1 {where} ORDER BY i.id, t.y, t.x",
                                 (model_key, *args))

    def window_features(self, model_key: str, digest: str | None = None, image_ids=None):
        """(image id, n_windows, window indices blob, encode_matrix blob) of present large photos (of one content
        with `digest`, or of the images `image_ids`), streamed: one row a photo."""
        where, args = ("AND i.hash=?", (digest,)) if digest else _only_images(image_ids)
        yield from self._iterate("SELECT i.id, f.n_windows, f.windows, f.vecs FROM images i JOIN window_features f "
                                 f"ON f.hash=i.hash AND f.model=? WHERE i.present=1 {where}", (model_key, *args),
                                 batch=16)

    def window_feature_count(self, model_key: str, image_ids=None) -> int:
        """How many windows `window_features` will give (its windows column precedes the large vecs one, so this
        reads no features): the adapter allocates them once instead of concatenating copies."""
        where, args = _only_images(image_ids)
        return int(self._read("SELECT COALESCE(SUM(LENGTH(f.windows)), 0) / 4 FROM images i JOIN window_features f "
                              f"ON f.hash=i.hash AND f.model=? WHERE i.present=1 {where}", (model_key, *args))[0][0])

    def set_window_features(self, model_key: str, rows, wait: bool = True, projection=None):
        """(hash, the photo's number of windows, window indices, [k, D] features) of large photos' windows that
        ran through the model (decision 38), stored as `projection`'s coefficients when given (decision 48);
        replaces what the photo had."""
        rows = [(h, model_key, int(n), np.asarray(w, np.int32).tobytes(), codec.encode_matrix(v, projection))
                for h, n, w, v in rows]
        return self._write(lambda db: db.executemany(
            "INSERT INTO window_features(hash, model, n_windows, windows, vecs) VALUES (?,?,?,?,?) "
            "ON CONFLICT(hash, model) DO UPDATE SET n_windows=excluded.n_windows, windows=excluded.windows, "
            "vecs=excluded.vecs", rows) and None, wait=wait)

    def has_labels(self) -> bool:
        """Whether any image or tile has a human label."""
        return bool(self._read("SELECT EXISTS(SELECT 1 FROM labels) OR EXISTS(SELECT 1 FROM tile_labels)")[0][0])

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
