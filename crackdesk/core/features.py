"""Compact storage of a model's penultimate features (one vector per image), for the site head.

A vector is stored as uint8 codes with one float32 scale: x ~= code * scale, scale = max(x) / 255. The pooled
features of the shipped models are averages of ReLU/ReLU6 outputs, so non-negative, and the rounding error is
under 0.2% of the largest component: 1,285 bytes for 1,280 dimensions, within the ~3 KB an image may add to a
workspace (its effect on the site head is measured in BENCHMARKS.md). A vector with negative components (another
model's features) also stores its minimum as an offset.
"""

from __future__ import annotations

import numpy as np

_UNSIGNED, _SIGNED = 0, 1


def encode(vector: np.ndarray) -> bytes:
    """One feature vector as bytes: layout byte, float32 scale (and offset), uint8 codes."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("feature vector has NaN or infinite values")
    low = float(v.min()) if v.size else 0.0
    if low >= 0.0:
        high = float(v.max()) if v.size else 0.0
        scale = high / 255.0 if high > 0 else 1.0
        codes = np.rint(v / scale).clip(0, 255).astype(np.uint8)
        return bytes([_UNSIGNED]) + np.float32(scale).tobytes() + codes.tobytes()
    high = float(v.max())
    scale = (high - low) / 255.0 if high > low else 1.0
    codes = np.rint((v - low) / scale).clip(0, 255).astype(np.uint8)
    return bytes([_SIGNED]) + np.float32(scale).tobytes() + np.float32(low).tobytes() + codes.tobytes()


def decode(blob: bytes, dim: int | None = None) -> np.ndarray:
    """float32 vector from `encode`'s bytes."""
    layout = blob[0]
    scale = np.frombuffer(blob, np.float32, 1, 1)[0]
    if layout == _UNSIGNED:
        return np.frombuffer(blob, np.uint8, offset=5).astype(np.float32) * scale
    if layout == _SIGNED:
        low = np.frombuffer(blob, np.float32, 1, 5)[0]
        return np.frombuffer(blob, np.uint8, offset=9).astype(np.float32) * scale + low
    raise ValueError(f"unknown feature encoding {layout}")


def decode_into(out: np.ndarray, row: int, blob: bytes) -> None:
    """Decode straight into a preallocated array's row (reading 40,000 vectors makes no list of arrays)."""
    out[row] = decode(blob)


def encode_many(vectors: np.ndarray) -> list[bytes]:
    """`encode` of every row, the same bytes, in a few array operations (a model batch's features are stored on
    the thread that also feeds the pipeline: one vector at a time cost it 0.08 ms an image)."""
    V = np.asarray(vectors, dtype=np.float32)
    if V.ndim != 2 or not len(V):
        return [encode(v) for v in V]
    finite = np.isfinite(V).all(axis=1)
    low, high = V.min(axis=1).astype(np.float64), V.max(axis=1).astype(np.float64)
    unsigned = finite & (low >= 0.0)
    out: list[bytes | None] = [None] * len(V)
    if unsigned.any():
        part = V[unsigned]
        top = high[unsigned]
        scale = np.where(top > 0, top / 255.0, 1.0).astype(np.float32)  # as encode's Python float, then float32
        codes = np.rint(part / scale[:, None]).clip(0, 255).astype(np.uint8)
        table = np.empty((len(part), 5 + V.shape[1]), np.uint8)
        table[:, 0] = _UNSIGNED
        table[:, 1:5] = scale.view(np.uint8).reshape(-1, 4)
        table[:, 5:] = codes
        for k, row in zip(np.flatnonzero(unsigned).tolist(), table):
            out[k] = row.tobytes()
    for k in np.flatnonzero(~unsigned).tolist():  # signed rows are rare (another model's features); errors raise
        out[k] = encode(V[k])
    return out


_MATRIX = 1  # layout of a matrix of vectors: version, rows, dims, then scales, offsets and codes
_PROJECTED = 2  # the same, of projected vectors: the basis's 8-byte fingerprint after the dims (decision 48)


def quantize_rows(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [k, D] uint8, scale [k], offset [k]) float32 of finite rows: x ~= codes * scale + offset, the offset
    0 for non-negative rows (as `encode`)."""
    low = V.min(axis=1, initial=0.0)
    high = V.max(axis=1, initial=0.0)
    scale = np.where(high > low, (high - low) / 255.0, 1.0).astype(np.float32)
    codes = np.rint((V - low[:, None]) / scale[:, None]).clip(0, 255).astype(np.uint8)
    return codes, scale, low.astype(np.float32)


def encode_matrix(vectors: np.ndarray, projection=None) -> bytes:
    """Many vectors as one blob (a large photo's windows, decision 38): per row a float32 scale and offset
    (0 for non-negative rows, as `encode`), then the uint8 codes row after row. One row in the workspace
    per photo, read back as arrays without a Python step per window. With a `projection` (core/projection.py)
    the rows stored are the vectors' coefficients in its basis, which the blob names."""
    V = np.asarray(vectors, dtype=np.float32)
    if V.ndim != 2:
        raise ValueError(f"a feature matrix must be 2-D, got shape {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("feature vectors have NaN or infinite values")
    fingerprint = b""
    if projection is not None:
        V, fingerprint = projection.project_beside_the_model(V), projection.fingerprint
    codes, scale, offset = quantize_rows(V)
    header = np.array([_PROJECTED if fingerprint else _MATRIX, len(V), V.shape[1]], np.int32)
    return header.tobytes() + fingerprint + scale.tobytes() + offset.tobytes() + codes.tobytes()


def decode_matrix(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes | None]:
    """(codes [k, D] uint8, scale [k], offset [k], the basis's fingerprint or None) of `encode_matrix`'s bytes;
    x ~= codes * scale + offset (coefficients in that basis, when it names one)."""
    layout, k, dim = (int(v) for v in np.frombuffer(blob, np.int32, 3))  # Python ints: no int32 overflow
    start = 12 + (8 if layout == _PROJECTED else 0)
    if layout not in (_MATRIX, _PROJECTED) or k < 0 or dim <= 0 or len(blob) != start + 8 * k + k * dim:
        raise ValueError("not a feature matrix, or a damaged one")
    fingerprint = bytes(blob[12:start]) if layout == _PROJECTED else None
    scale = np.frombuffer(blob, np.float32, k, start)
    offset = np.frombuffer(blob, np.float32, k, start + 4 * k)
    codes = np.frombuffer(blob, np.uint8, k * dim, start + 8 * k).reshape(k, dim)
    return codes, scale, offset, fingerprint
