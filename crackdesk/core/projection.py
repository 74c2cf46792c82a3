"""Window features stored in a basis (decision 48): a large photo's windows keep WINDOW_COMPONENTS coefficients
each instead of the model's 1,280 features, 264 bytes a window instead of 1,288 (117 MB instead of 566 MB at 2,000
camera photos, in the workspace and in the adapter).

The basis is the direction of the model's final layer and the principal directions of its replay memory, stored in
the memory file (`save_memory`), so it travels with the model and every machine decodes a workspace's rows with the
same numbers; each stored row names its basis by a fingerprint, and a row of another basis is not used. The site
head stays in the model's feature space: it scores projected rows through its weights mapped into the basis
(`weights`), and fits on rows reconstructed from them.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .paths import file_version

WINDOW_COMPONENTS = 256  # walls, six seeds: no loss against 1,280 features, nor of concrete (BENCHMARKS.md)
MIN_MEMORY_ROWS = 8 * WINDOW_COMPONENTS  # fewer rows than this fit no trustworthy basis: windows keep every feature
BASIS, MEAN = "window_basis", "window_mean"  # the memory file's arrays


@dataclass(frozen=True, eq=False)  # identity: arrays do not compare as one truth value
class Projection:
    basis: np.ndarray  # float32 [k, D], orthonormal rows
    mean: np.ndarray  # float32 [D]
    fingerprint: bytes = field(init=False)  # 8 bytes, stored with every projected row
    _session: object = field(init=False, default=None, repr=False, compare=False)  # project_beside_the_model's

    def __post_init__(self):
        digest = hashlib.sha256(self.basis.tobytes() + self.mean.tobytes()).digest()[:8]
        object.__setattr__(self, "fingerprint", digest)

    @property
    def k(self) -> int:
        return self.basis.shape[0]

    @property
    def dim(self) -> int:
        return self.basis.shape[1]

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """[n, D] features -> [n, k] coefficients."""
        return (np.asarray(vectors, np.float32) - self.mean) @ self.basis.T

    def project_beside_the_model(self, vectors: np.ndarray) -> np.ndarray:
        """`project`, in one thread that sleeps when idle, for classification: numpy's BLAS threads spin between
        calls and took the model lanes' cores (7% slower per camera photo on the exact path, six rounds, BENCHMARKS).
        1.5 ms for a photo's 221 windows."""
        with _session_lock:
            if self._session is None:
                object.__setattr__(self, "_session", _matmul_session(self.basis, self.mean))
        return self._session.run(None, {"x": np.ascontiguousarray(vectors, np.float32)})[0]

    def reconstruct(self, coefficients: np.ndarray) -> np.ndarray:
        """[n, k] coefficients -> [n, D] features (their part in the basis, plus the mean)."""
        return np.asarray(coefficients, np.float32) @ self.basis + self.mean

    def weights(self, weights: np.ndarray, bias: float) -> tuple[np.ndarray, float]:
        """A linear head on features as one on coefficients: w . reconstruct(c) + b = (basis w) . c + (w . mean + b)."""
        w = np.asarray(weights, np.float32)
        return self.basis @ w, float(bias) + float(self.mean.astype(np.float64) @ w.astype(np.float64))


def fit_basis(features: np.ndarray, head: np.ndarray | None = None,
              k: int = WINDOW_COMPONENTS) -> tuple[np.ndarray, np.ndarray] | None:
    """(basis [k, D], mean [D]) float32 of `features` (a replay memory): the direction of the model's own final
    layer `head` [D] when given, so the base model scores a projected window as it scores the window, then the
    memory's principal directions, each signed so its largest component is positive (the same memory and head
    give the same basis). None when too few rows or dimensions."""
    X = np.asarray(features, np.float64)
    if X.ndim != 2 or len(X) < MIN_MEMORY_ROWS or X.shape[1] <= k:
        return None
    mean = X.mean(axis=0)
    centred = X - mean
    given = []
    if head is not None and np.linalg.norm(head) > 0:
        h = np.asarray(head, np.float64).ravel()
        given = [h / np.linalg.norm(h)]
        centred = centred - np.outer(centred @ given[0], given[0])  # the rest: what the head's direction leaves
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    basis = np.vstack(given + [vectors[:, ::-1][:, :k - len(given)].T])
    signs = np.sign(basis[np.arange(k), np.abs(basis).argmax(axis=1)])
    return (basis * signs[:, None]).astype(np.float32), mean.astype(np.float32)


_session_lock = threading.Lock()


def _matmul_session(basis: np.ndarray, mean: np.ndarray):
    """An onnxruntime session computing (x - mean) @ basis.T in one thread that sleeps when idle."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, dim = basis.shape
    graph = helper.make_graph(
        [helper.make_node("Sub", ["x", "mean"], ["centred"]), helper.make_node("MatMul", ["centred", "basis"], ["y"])],
        "window_projection", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(np.ascontiguousarray(basis.T), "basis")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


_cache: dict[tuple, Projection | None] = {}


def load_projection(memory_file: str | Path, dim: int | None = None) -> Projection | None:
    """The window basis stored in a memory file for `dim`-d features, or None (no file, an older memory without
    one, one of another width, or unreadable: windows then keep every feature). Read once per file version and
    process."""
    try:
        key = file_version(memory_file)
    except OSError:
        return None
    if key not in _cache:
        _cache[key] = _read(Path(memory_file))
    found = _cache[key]
    return None if found is None or (dim is not None and found.dim != dim) else found


def _read(path: Path) -> Projection | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if BASIS not in npz.files or MEAN not in npz.files:
                return None
            basis, mean = np.asarray(npz[BASIS], np.float32), np.asarray(npz[MEAN], np.float32)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if basis.ndim != 2 or mean.shape != (basis.shape[1],) or not (np.isfinite(basis).all() and np.isfinite(mean).all()):
        return None
    return Projection(basis, mean)
