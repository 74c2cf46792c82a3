"""Large photos under a site head (decision 38): their verdicts follow the site's labels like small images' do.

A large photo's verdict comes from its windows (core/photo_verdict.py). Classification stores the features of
every window the model ran; a window a screening model settled (decision 31) keeps that model's P. Under a site
head a photo's verdict is the same rule on its windows' P with the windows that have features rescored by the
head, all photos of one grid shape in one vectorised pass.

A whole-photo label teaches the site head through the photo's own windows: "no crack" makes its
`WINDOWS_PER_PHOTO` most crack-like windows no-crack examples (the false alarms, if it had any); "crack" makes its
windows at or above the threshold crack examples (a real crack lights several) or, when the model saw none, its
likeliest window (the one it came closest on: a multiple-instance guess; a tile label in the viewer says exactly
where). A window's own tile label wins over its photo's.
"""

from __future__ import annotations

import numpy as np

from . import features as codec
from .datasets import CRACK
from .feature_matrix import FeatureMatrix
from .photo_verdict import photo_score
from .sitehead import sigmoid

WINDOWS_PER_PHOTO = 16  # a photo label's examples at most: it stays one label among the folder's
UNSEEN_CRACK_WINDOWS = 1  # a crack the model saw nowhere: its likeliest window only
UNUSED = -1  # `feature_at` and `feature_photo` of a feature row whose photo was classified again since
UNUSED_AT_MOST = 1 / 8  # of the feature rows, before a merge copies the rows in use (as the matrix's spare rows)


class LargePhotos:
    """The folder's large photos for one model: each one's grid of base P and the windows with features."""

    def __init__(self, dim: int, projection=None):
        """`dim`: the model's features; `projection`: the basis its windows are stored in (None: every feature)."""
        self.dim, self.projection = dim, projection
        self.rows = np.zeros(0, np.int64)  # each photo's row among the adapter's images
        self.shapes = np.zeros((0, 2), np.int64)  # grid (rows, cols)
        self.starts = np.zeros(0, np.int64)  # where its windows begin in `base`
        self.base = np.zeros(0)  # every window's base P, photo after photo, row-major
        self.features = FeatureMatrix(0, projection.k if projection else dim, projection=projection)
        self.feature_at = np.zeros(0, np.int64)  # the window (index into `base`) of each feature row, or UNUSED
        self.feature_photo = np.zeros(0, np.int64)  # the photo (index into `rows`) of each feature row, or UNUSED
        self._scored: tuple = (None, None)  # (head, every window's P under it): a refit's verdicts and review
        # order score the windows under the same head, so once

    def __len__(self) -> int:
        return len(self.rows)

    def _features_per_photo(self) -> np.ndarray:
        return np.bincount(self.feature_photo[self._in_use()], minlength=len(self.rows))

    def _in_use(self) -> np.ndarray:
        """The feature rows of the photos' present windows (the others: replaced, kept to save a copy)."""
        return np.flatnonzero(self.feature_photo >= 0)

    def rescorable(self) -> np.ndarray:
        """Which photos have features for every window, so the site head judges them whole. The others had
        windows settled by a screening model, or were classified by an older CrackDesk."""
        return self._features_per_photo() >= self.shapes[:, 0] * self.shapes[:, 1]

    def with_features(self) -> int:
        """How many photos have at least one window with features."""
        return int((self._features_per_photo() > 0).sum())

    @classmethod
    def load(cls, workspace, model_key: str, positions, dim: int, image_ids=None, projection=None) -> LargePhotos:
        """Read the windows of the present large photos among the adapter's images (`positions(ids)` gives their
        rows, -1 for others; of the images `image_ids` only, when given) and the stored features of the windows
        the model ran, as `projection`'s coefficients when given (rows stored whole are projected here)."""
        out = cls(dim, projection)
        windows = list(workspace.window_probabilities(model_key, image_ids))
        if not windows:
            return out
        table = np.array([w[:3] for w in windows], np.int64)  # image id, x, y
        out.base = np.array([w[5] for w in windows], np.float64)
        ids, starts, counts = np.unique(table[:, 0], return_index=True, return_counts=True)
        cols = np.array([len(np.unique(table[s:s + n, 1])) for s, n in zip(starts, counts)], np.int64)
        rows = positions(ids)
        whole = (counts % np.maximum(cols, 1) == 0) & (rows >= 0)  # a grid stored whole, of a loaded image
        out.rows, out.starts = rows[whole], starts[whole]
        out.shapes = np.stack([counts[whole] // cols[whole], cols[whole]], axis=1)
        # Filled in place, a photo at a time: concatenating copies held the folder's features twice (1.1 GB at
        # 2,000 camera photos) and took half the read.
        capacity = workspace.window_feature_count(model_key, image_ids)
        # Room for photos classified later (`merged`): pages only reserved until written
        features = FeatureMatrix(capacity, out.features.dim, spare=max(1024, capacity // 8), projection=projection)
        at = np.empty(capacity, np.int64)
        filled = 0
        for image_id, n_windows, indices, blob in workspace.window_features(model_key, image_ids=image_ids):
            k = int(np.searchsorted(ids, image_id))
            index = np.frombuffer(indices, np.int32)
            if k >= len(ids) or ids[k] != image_id or not whole[k] or counts[k] != n_windows or not len(index) \
                    or index.max() >= n_windows or filled + len(index) > capacity:
                continue  # its grid changed since (not these windows' features), or stored after the count
            try:
                codes, scale, offset = stored_windows(blob, projection)
            except ValueError:
                continue  # a damaged row, or of another basis: the photo keeps the base model's P
            if len(codes) != len(index) or codes.shape[1] != features.dim:
                continue
            part = slice(filled, filled + len(index))
            features.codes[part], features.scale[part], features.offset[part] = codes, scale, offset
            at[part] = starts[k] + index
            filled += len(index)
        features.present[:filled] = True
        out.features = features if filled == capacity else features.head(filled)  # a skipped row: no room
        out.feature_at = at[:filled]
        out.feature_photo = np.searchsorted(out.starts, out.feature_at, side="right") - 1  # starts ascend
        return out

    def merged(self, fresh: LargePhotos, replaced_rows) -> LargePhotos:
        """These photos, those at adapter rows `replaced_rows` (just classified: at a refit, for a label given
        before classification, or by a classification of a few images) replaced by `fresh`, read for them alone
        instead of with the whole folder's windows (2.5-4.9 s at 2,000 camera photos; decision 41)."""
        gone = np.concatenate([np.asarray(replaced_rows, np.int64), fresh.rows])
        kept_photo = ~np.isin(self.rows, gone)
        keep = np.flatnonzero(kept_photo)
        sizes = self.shapes[keep, 0] * self.shapes[keep, 1]
        kept = int(sizes.sum())
        starts = np.cumsum(sizes) - sizes  # the kept photos' windows, packed
        out = LargePhotos(self.dim, self.projection)
        out.rows = np.concatenate([self.rows[keep], fresh.rows])
        out.shapes = np.concatenate([self.shapes[keep], fresh.shapes])
        out.starts = np.concatenate([starts, fresh.starts + kept])
        out.base = np.concatenate([self.base[np.arange(kept) + np.repeat(self.starts[keep] - starts, sizes)],
                                   fresh.base])
        moved = np.zeros(len(self.rows), np.int64)
        moved[keep] = starts - self.starts[keep]  # how far each kept photo's windows moved
        in_use = self.feature_photo >= 0
        in_use[in_use] = kept_photo[self.feature_photo[in_use]]
        at = np.where(in_use, self.feature_at + moved[self.feature_photo], UNUSED)
        if len(in_use) - np.count_nonzero(in_use) <= UNUSED_AT_MOST * (len(in_use) + len(fresh.features)):
            # The replaced photos' rows stay, unused, and the new photos' are appended into the matrix's spare
            # rows: nothing of the folder's codes is copied (117 MB at 2,000 camera photos; 566 MB and 1-2 s before
            # decision 48)
            out.features = self.features.appended(fresh.features)
        else:  # too much unused: the rows in use are copied, once
            mine = np.flatnonzero(in_use)
            out.features = self.features.compacted(mine, fresh.features)
            at = at[mine]
        out.feature_at = np.concatenate([at, fresh.feature_at + kept])
        out.feature_photo = np.where(out.feature_at >= 0,
                                     np.searchsorted(out.starts, out.feature_at, side="right") - 1, UNUSED)
        return out

    def window_probabilities(self, head) -> np.ndarray:
        """Every window's P under `head`: the head's where the window has features, the base model's elsewhere
        (read-only: kept for the next call with the same head)."""
        scored_head, p = self._scored
        if scored_head is head:
            return p
        p = self.base.copy()
        if len(self.feature_at):
            used = self._in_use()
            p[self.feature_at[used]] = sigmoid(self.features.logits(head.weights, head.bias)[used])
        p.flags.writeable = False
        self._scored = (head, p)
        return p

    def verdicts(self, head) -> np.ndarray:
        """Each photo's P(crack) by the verdict rule on its windows under `head` (>= head.threshold: crack)."""
        p = self.window_probabilities(head)
        out = np.empty(len(self.rows))
        for shape in np.unique(self.shapes, axis=0):
            same = np.flatnonzero((self.shapes == shape).all(axis=1))
            size = int(shape[0] * shape[1])
            grids = p[self.starts[same, None] + np.arange(size)].reshape(len(same), *map(int, shape))
            out[same] = photo_score(grids, head.threshold)
        return out

    def for_review(self, head) -> tuple[np.ndarray, np.ndarray]:
        """What "most useful next" ranks a photo by (core/suggest.py): (the logit of each photo's P under `head`,
        the feature row of its most crack-like window that has features, -1 where none has). A photo is as unsure
        as its verdict, and looks like the window that decides it."""
        p = np.clip(self.verdicts(head), 1e-9, 1 - 1e-9)
        logits = np.log(p / (1 - p))
        strongest = np.full(len(self.rows), -1, np.int64)
        used = self._in_use()
        if len(used):
            photo = self.feature_photo[used]
            window_p = self.window_probabilities(head)[self.feature_at[used]]
            order = np.lexsort((-window_p, photo))
            first = order[np.r_[True, photo[order][1:] != photo[order][:-1]]]
            strongest[photo[first]] = used[first]
        return logits, strongest

    def index_of(self, rows) -> np.ndarray:
        """The photo (index into `rows`) at each of the adapter rows `rows`; -1 where there is no large photo."""
        return PositionIndex(self.rows).positions(rows)

    def verdict_logits(self, head, photos=None) -> np.ndarray:
        """Each photo's verdict under `head` as a logit relative to its threshold (>= 0: crack), of the photos at
        indices `photos` (every photo when None): what cross-validation judges a labelled photo by, and the
        accuracy estimate an unlabelled one."""
        if photos is None:
            p = self.verdicts(head)
        else:  # each photo's feature rows found once, not by a scan of the folder's windows per photo and fold
            by_photo = np.argsort(self.feature_photo, kind="stable")  # UNUSED rows first, before photo 0
            ends = np.searchsorted(self.feature_photo[by_photo], np.arange(len(self.rows) + 1))
            p = np.array([photo_score(self._window_p(int(k), head, by_photo[ends[k]:ends[k + 1]]).reshape(
                1, *map(int, self.shapes[k])), head.threshold)[0] for k in photos], np.float64)
        p = np.clip(p, 1e-12, 1 - 1e-12)
        t = head.threshold
        return np.log(p / (1 - p)) - np.log(t / (1 - t))

    def grid(self, row: int, head) -> np.ndarray | None:
        """The windows' P of the photo at adapter row `row` under `head`, (rows, cols); None if not a large photo."""
        k = np.flatnonzero(self.rows == row)
        if not len(k):
            return None
        k = int(k[0])
        return self._window_p(k, head).reshape(*map(int, self.shapes[k]))

    def _window_p(self, k: int, head, mine: np.ndarray | None = None) -> np.ndarray:
        """Photo `k`'s window P under `head`, row-major (a copy); `mine`: its feature rows, when known."""
        start, (r, c) = int(self.starts[k]), map(int, self.shapes[k])
        scored_head, scored = self._scored  # read once: a refit in a worker thread may replace it
        if scored_head is head:  # the refit's own scores
            return scored[start:start + r * c].copy()
        p = self.base[start:start + r * c].copy()
        if mine is None:
            mine = np.flatnonzero(self.feature_photo == k)
        if len(mine):  # only this photo's windows: the viewer asks for it on the GUI thread
            p[self.feature_at[mine] - start] = sigmoid(self.features.take(mine).logits(head.weights, head.bias))
        return p


class PositionIndex:
    """Id -> row, for many ids at once (image ids -> the site adapter's rows, adapter rows -> large photos): a
    sorted copy and a binary search, no dict of 40,000 entries rebuilt per classified batch."""

    def __init__(self, ids: np.ndarray):
        self.order = np.argsort(ids, kind="stable")
        self.sorted = ids[self.order]

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Each id's row, -1 for ids not loaded."""
        ids = np.asarray(ids, np.int64)
        if not len(self.sorted) or not len(ids):
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(self.sorted, ids).clip(0, len(self.sorted) - 1)
        return np.where(self.sorted[at] == ids, self.order[at], -1)


def stored_windows(blob: bytes, projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, scale, offset) of a stored window-features blob as `projection`'s coefficients (or, without one,
    as stored): a row stored whole under a projection (by a CrackDesk before decision 48, or by a model
    without a basis then) is projected now. ValueError: damaged, or of another basis or model."""
    codes, scale, offset, fingerprint = codec.decode_matrix(blob)
    if fingerprint is None:
        if projection is None:
            return codes, scale, offset
        if codes.shape[1] == projection.dim:
            whole = codes.astype(np.float32) * scale[:, None] + offset[:, None]
            return codec.quantize_rows(projection.project(whole))
    elif projection is not None and fingerprint == projection.fingerprint and codes.shape[1] == projection.k:
        return codes, scale, offset
    raise ValueError("the windows' features were stored in another basis, or by another model")


def photo_p_under(head, tiles: list, window_features, projection=None) -> float:
    """A just-classified large photo's P(crack) under `head`: its windows (x, y, w, h, p) row-major, those the model
    ran (indices, [k, D] features) rescored, then the verdict rule (what the GUI shows while classifying). With the
    `projection` their rows are stored in, scored in it as the adapter will score them: whole, an adapted head
    called 0.7-2% of walls photos otherwise (decision 48)."""
    p = np.array([t[4] for t in tiles], np.float64)
    if window_features is not None:
        index, vectors = window_features
        if projection is None:
            p[index] = head.probabilities(np.asarray(vectors, np.float64))
        else:
            weights, bias = projection.weights(head.weights, head.bias)
            p[index] = sigmoid(projection.project_beside_the_model(vectors).astype(np.float64) @ weights + bias)
    shape = (len({t[1] for t in tiles}), len({t[0] for t in tiles}))
    return float(photo_score(p.reshape(shape), head.threshold))


def photo_label_examples(workspace, model_key: str, digest: str, label: str, threshold: float,
                         tile_labelled: set[tuple[int, int, int, int]],
                         projection=None) -> list[tuple[str, str, np.ndarray]]:
    """The site-head examples a whole-photo label of a large photo gives: (key 'hash@x,y,w,h', label, features);
    its windows' stored rows are read as `stored_windows` reads them for the adapter."""
    tiles = workspace.tile_results(digest, model_key)  # row-major, as the window indices
    for _, n_windows, indices, blob in workspace.window_features(model_key, digest):
        index = np.frombuffer(indices, np.int32)
        if n_windows != len(tiles) or not len(index) or index.max() >= len(tiles):
            continue
        try:
            codes, scale, offset = stored_windows(blob, projection)
        except ValueError:
            continue  # a damaged row teaches nothing (the sidebar says the photo has no window to learn from)
        windows = [(tiles[i][4], tuple(tiles[i][:4]), k) for k, i in enumerate(index.tolist())
                   if tuple(tiles[i][:4]) not in tile_labelled]
        windows.sort(key=lambda w: (-w[0], w[1]))
        if label == CRACK:  # the windows that found it; if none did, the likeliest place of the crack it missed
            windows = [w for w in windows if w[0] >= threshold] or windows[:UNSEEN_CRACK_WINDOWS]
        windows = windows[:WINDOWS_PER_PHOTO]
        rows = np.array([k for _, _, k in windows], np.int64)
        vectors = codes[rows].astype(np.float32) * scale[rows, None] + offset[rows, None]
        if projection is not None:
            vectors = projection.reconstruct(vectors)
        return [(f"{digest}@{','.join(map(str, box))}", label, v) for (_, box, _), v in zip(windows, vectors)]
    return []
