"""A model's replay memory: what keeps its adaptations from forgetting, without the original dataset.

It is one file beside the model, `NAME.memory.npz` next to `NAME.onnx`, and the registry moves the two as one
unit (import, export, remove). It holds, for a few thousand of the model's own training images and a held-out
set (derived numbers, never images):
  features      [M, D] float16  the graph's penultimate features (what the site head is fitted on)
  labels        [M]    uint8    1 = crack
  holdout       [M]    bool     not for fitting: retention is measured on these
  activations   [K, ...] float16  (optional) the input of the part deep retraining trains, e.g. MobileNetV2's
                                  frozen blocks' output; only training reads it
  activation_rows [K] int32      (optional) which rows the activations belong to; absent: every row (K = M).
                                  Activations cost ~8x the pooled features, so a model may keep them for a
                                  subset only (docs/decisions.md)
  meta          a JSON string: which model computed it, from which data, how it was chosen.
  window_basis  [k, D] float32 (optional) the model's final-layer direction and the principal directions of the
  window_mean   [D]    float32  features, and their mean: what large photos' window features are stored in
                                (core/projection.py, decision 48); absent: stored whole
The app reads the first three with numpy alone (np.load of an .npz reads only the arrays asked for).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes
from .errors import ModelError
from .projection import BASIS, MEAN, fit_basis

MEMORY_SUFFIX = ".memory.npz"


def memory_path(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + MEMORY_SUFFIX)


@dataclass
class ReplayMemory:
    features: np.ndarray  # float32 [M, D]
    labels: np.ndarray  # float64 [M], 1 = crack
    holdout: np.ndarray  # bool [M]
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def fit_features(self) -> np.ndarray:
        return self.features[~self.holdout]

    @property
    def fit_labels(self) -> np.ndarray:
        return self.labels[~self.holdout]

    @property
    def holdout_features(self) -> np.ndarray:
        return self.features[self.holdout]

    @property
    def holdout_labels(self) -> np.ndarray:
        return self.labels[self.holdout]

    def describe(self) -> str:
        return (f"{int((~self.holdout).sum()):,} images to rehearse and {int(self.holdout.sum()):,} held out "
                f"({self.meta.get('source', 'the base model’s training data')})")


def load_memory(model_path: str | Path, dim: int | None = None) -> ReplayMemory | None:
    """The memory beside a model file, checked; None when the model has none. ModelError when it is unusable."""
    path = memory_path(model_path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            features = np.asarray(npz["features"], np.float32)
            labels = np.asarray(npz["labels"]).astype(np.float64)
            holdout = np.asarray(npz["holdout"], bool)
            meta = json.loads(str(npz["meta"])) if "meta" in npz.files else {}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ModelError(f"the replay memory cannot be read ({type(e).__name__}: {str(e)[:200]})", path) from None
    m = len(labels)
    if features.ndim != 2 or len(features) != m or holdout.shape != (m,):
        raise ModelError(f"the replay memory's arrays do not match (features {features.shape}, labels {labels.shape},"
                         f" holdout {holdout.shape})", path)
    if dim is not None and features.shape[1] != dim:
        raise ModelError(f"the replay memory holds {features.shape[1]}-d features, the model gives {dim}-d "
                         "(it belongs to another model)", path)
    if not np.isin(labels, (0, 1)).all() or not np.isfinite(features).all():
        raise ModelError("the replay memory has labels other than 0/1 or non-finite features", path)
    for part, mask in (("rehearsal", ~holdout), ("held-out", holdout)):
        if len(set(labels[mask])) < 2:
            raise ModelError(f"the replay memory's {part} part lacks a class", path)
    return ReplayMemory(features, labels, holdout, meta, path)


def save_memory(path: str | Path, features: np.ndarray, labels: np.ndarray, holdout: np.ndarray, meta: dict,
                activations: np.ndarray | None = None, activation_rows: np.ndarray | None = None,
                head: np.ndarray | None = None) -> None:
    """Write a memory file atomically (compressed), with the window basis of these features and the model's
    final-layer weights `head` (core/projection.py)."""
    arrays = {"features": np.asarray(features, np.float16), "labels": np.asarray(labels, np.uint8),
              "holdout": np.asarray(holdout, bool), "meta": np.array(json.dumps(meta, sort_keys=True))}
    if activations is not None:
        arrays["activations"] = np.asarray(activations, np.float16)
        if activation_rows is not None:
            rows = np.asarray(activation_rows, np.int32)
            if rows.shape != (len(activations),) or len(np.unique(rows)) != len(rows) or \
                    (len(rows) and (rows.min() < 0 or rows.max() >= len(labels))):
                raise ValueError("activation_rows must name one distinct memory row per activation")
            arrays["activation_rows"] = rows
        elif len(activations) != len(labels):
            raise ValueError("activations for a subset of the rows need activation_rows")
    basis = fit_basis(arrays["features"], head)  # what large photos' windows are stored in (decision 48)
    if basis is not None:
        arrays[BASIS], arrays[MEAN] = basis
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), "replay memory")


@dataclass
class MemoryActivations:
    """What deep retraining replays: activations of some memory rows, with those rows' labels and roles."""

    activations: np.ndarray  # float32 [K, ...]
    rows: np.ndarray  # int [K], rows of the memory file
    labels: np.ndarray  # float32 [K]
    holdout: np.ndarray  # bool [K]
    meta: dict = field(default_factory=dict)


def load_activations(model_path: str | Path) -> MemoryActivations | None:
    """The memory's activations for deep retraining, or None when the model has no memory or no activations.
    ModelError when the file is unusable."""
    path = memory_path(model_path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "activations" not in npz.files:
                return None
            activations = np.asarray(npz["activations"], np.float32)
            labels = np.asarray(npz["labels"]).astype(np.float32)
            holdout = np.asarray(npz["holdout"], bool)
            rows = (np.asarray(npz["activation_rows"]).astype(np.int64) if "activation_rows" in npz.files
                    else np.arange(len(labels)))
            meta = json.loads(str(npz["meta"])) if "meta" in npz.files else {}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ModelError(f"the replay memory cannot be read ({type(e).__name__}: {str(e)[:200]})", path) from None
    if len(rows) != len(activations) or (len(rows) and (rows.min() < 0 or rows.max() >= len(labels))):
        raise ModelError("the replay memory's activation rows do not match its other arrays", path)
    if not np.isfinite(activations).all():
        raise ModelError("the replay memory has non-finite activations", path)
    return MemoryActivations(activations, rows, labels[rows], holdout[rows], meta)


@dataclass
class MemorySummary:
    """What a memory file holds, read without loading its arrays of features or activations."""

    path: Path
    rehearse: int
    holdout: int
    activations: int  # rows with activations (0: deep retraining cannot rehearse it)
    megabytes: float
    data_name: str  # what its images are, e.g. "Concrete"

    def describe(self) -> str:
        what = (f"{self.activations:,} of them with the activations deep retraining rehearses" if self.activations
                else "pooled features only (deep retraining cannot rehearse them)")
        return (f"{self.rehearse:,} images to rehearse and {self.holdout:,} held out ({self.data_name}); {what}; "
                f"{self.megabytes:.1f} MB")


def summarize_memory(model_path: str | Path) -> MemorySummary | None:
    """The memory beside a model, summarised; None without one; ModelError when it cannot be read."""
    path = memory_path(model_path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            holdout = np.asarray(npz["holdout"], bool)
            meta = json.loads(str(npz["meta"])) if "meta" in npz.files else {}
            if "activation_rows" in npz.files:
                activations = len(npz["activation_rows"])
            else:  # all rows; the header says so without reading the (large) array
                activations = len(holdout) if "activations" in npz.files else 0
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ModelError(f"the replay memory cannot be read ({type(e).__name__}: {str(e)[:200]})", path) from None
    return MemorySummary(path, int((~holdout).sum()), int(holdout.sum()), int(activations),
                         path.stat().st_size / 1e6, str(meta.get("data_name") or "the base model's training data"))
