"""Every image's stored features of one model, held as the workspace stores them (uint8 codes, a scale and an
offset per row: 1.3 KB an image, 51 MB at 40,000 images instead of 205 MB as float32), and scored in
chunks: a site head's P(crack) for 40,000 images is one pass of matrix-vector products, ~30 ms on 2 cores.
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096


class _Room:
    """Rows allocated past a matrix's end (zero pages the system maps only when written), so that appending to
    it copies nothing: `used` rows of `buffer` hold data. Only the matrix ending at `used` (the newest) appends
    in place; an older one, whose readers never look past its own end, copies."""

    def __init__(self, buffer: np.ndarray, used: int):
        self.buffer, self.used = buffer, used


class FeatureMatrix:
    def __init__(self, n: int, dim: int, spare: int = 0, projection=None):
        """n rows of `dim` features, with room for `spare` more (`appended`); with a `projection` (large photos'
        windows, core/projection.py), rows of its `dim` coefficients that stand for features."""
        self.projection = projection
        buffer = np.zeros((n + spare, dim), np.uint8)
        self.codes = buffer[:n]
        self._room = _Room(buffer, n) if spare else None
        self.scale = np.zeros(n, np.float32)
        self.offset = np.zeros(n, np.float32)
        self.present = np.zeros(n, bool)  # which rows have features (classified by a format-2 model)

    def appended(self, more: FeatureMatrix) -> FeatureMatrix:
        """These rows, then `more`'s: written into this matrix's spare rows when it has room (the codes of 2,000
        camera photos were 566 MB, and copying them cost 1-2 s on a fresh allocation; 117 MB since decision 48),
        else copied into a matrix with room of its own. Not thread-safe: its owner appends under its lock."""
        n, k = len(self), len(more)
        room = self._room
        if room is None or room.used != n or len(room.buffer) < n + k:
            room = _Room(np.zeros((n + k + max(1024, (n + k) // 8), self.dim), np.uint8), n)
            room.buffer[:n] = self.codes
        room.buffer[n:n + k] = more.codes
        room.used = n + k
        out = FeatureMatrix(0, self.dim, projection=self.projection)
        out.codes, out._room = room.buffer[:n + k], room
        out.scale, out.offset, out.present = (np.concatenate([a, b]) for a, b in (
            (self.scale, more.scale), (self.offset, more.offset), (self.present, more.present)))
        return out

    def head(self, n: int) -> FeatureMatrix:
        """The first n rows (views, no copy)."""
        return self.take(slice(0, n))

    def take(self, rows) -> FeatureMatrix:
        """Some rows (a slice: views; an index array: copies), e.g. one photo's windows."""
        out = FeatureMatrix(0, self.dim, projection=self.projection)
        out.codes, out.scale, out.offset, out.present = (self.codes[rows], self.scale[rows], self.offset[rows],
                                                         self.present[rows])
        return out

    def compacted(self, rows: np.ndarray, more: FeatureMatrix) -> FeatureMatrix:
        """Rows `rows` of this matrix, then `more`'s, copied once into a new matrix with spare rows (no temporary
        copy of the selection: it is most of a folder's window codes)."""
        n = len(rows) + len(more)
        out = FeatureMatrix(n, self.dim, spare=max(1024, n // 8), projection=self.projection)
        for name in ("codes", "scale", "offset", "present"):
            target = getattr(out, name)
            np.take(getattr(self, name), rows, axis=0, out=target[:len(rows)], mode="clip")  # "raise" buffers
            target[len(rows):] = getattr(more, name)
        return out

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    def __len__(self) -> int:
        return len(self.codes)

    def set_row(self, row: int, blob: bytes) -> None:
        """Fill a row from a stored vector (core/features.py layout) without decoding it to floats."""
        layout = blob[0]
        self.scale[row] = np.frombuffer(blob, np.float32, 1, 1)[0]
        start = 5 if layout == 0 else 9
        self.offset[row] = 0.0 if layout == 0 else np.frombuffer(blob, np.float32, 1, 5)[0]
        codes = np.frombuffer(blob, np.uint8, offset=start)
        if len(codes) != self.dim:
            raise ValueError(f"a stored feature vector has {len(codes)} values, the model gives {self.dim}")
        self.codes[row] = codes
        self.present[row] = True

    def set_blobs(self, rows: np.ndarray, blobs: list[bytes]) -> None:
        """Fill many rows from stored vectors at once: the blobs of one layout are joined and viewed as a
        table, so 40,000 rows cost a few array copies instead of 40,000 Python-level row copies."""
        rows = np.asarray(rows, np.int64)
        unsigned = 5 + self.dim
        same = np.fromiter((len(b) == unsigned and b[0] == 0 for b in blobs), bool, len(blobs))
        if same.any():
            table = np.frombuffer(b"".join(b for b, s in zip(blobs, same) if s), np.uint8).reshape(-1, unsigned)
            target = rows[same]
            self.scale[target] = table[:, 1:5].copy().view(np.float32).ravel()
            self.offset[target] = 0.0
            self.codes[target] = table[:, 5:]
            self.present[target] = True
        for k in np.flatnonzero(~same):  # signed vectors (another model's features), or a bad length: one by one
            self.set_row(int(rows[k]), blobs[k])

    def rows(self, index) -> np.ndarray:
        """float32 features of some rows (for fitting: the labelled ones), reconstructed when projected."""
        index = np.asarray(index)
        rows = self.codes[index].astype(np.float32) * self.scale[index, None] + self.offset[index, None]
        return rows if self.projection is None else self.projection.reconstruct(rows)

    def logits(self, weights: np.ndarray, bias: float) -> np.ndarray:
        """features . weights + bias for every row (NaN where a row has no features)."""
        if self.projection is not None:
            weights, bias = self.projection.weights(weights, bias)
        w = np.asarray(weights, np.float32)
        w_sum = float(w.sum())
        out = np.full(len(self), np.nan)
        for start in range(0, len(self), CHUNK):
            part = slice(start, start + CHUNK)
            dots = self.codes[part].astype(np.float32) @ w
            out[part] = dots * self.scale[part] + self.offset[part] * w_sum + bias
        out[~self.present] = np.nan
        return out
