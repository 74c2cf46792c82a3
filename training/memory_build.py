"""Building a model's replay memory (crackdesk/core/memory.py) from images of its own training data.

Rows to rehearse come from the TRAINING split, chosen for coverage: per class, half by greedy k-center on the
images' pooled features (the unusual images, whose absence is what makes an adapted head call them cracks) and
half at random (the typical density); measured on walls and ccic validation, this halves the retention loss of
a random memory of the same size (BENCHMARKS.md, "Site adaptation"). The held-out rows are the VALIDATION split
(all of it by default: 2,400 images make "n errors" a count worth reading); never the test split. Each row gets:
  * its pooled `features`, computed by the model's own ONNX graph (its `features` output) through onnxruntime
    with the app's preprocessing: the numbers the app and the site head will see;
  * for a staged architecture (MobileNetV2, the CNN), for the first rows of each class only, the `activations`
    of the frozen part (what deep retraining trains on), stored as float16.
The activation rows are a stratified random subset of each part (a prefix of its order).
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from crackdesk.core.preprocess import Preprocessing

from .data import Example, keyed

# Pooled part (the site head's rehearsal); another measurement may change these, so they stay parameters.
DEFAULT_REHEARSE = 2000
DEFAULT_HOLDOUT = 0  # 0: the whole validation split
KCENTER_FRACTION = 0.5
# Activations (deep retraining): (rehearse, held out) rows, chosen by retention against file size
# (BENCHMARKS.md, docs/decisions.md). A MobileNetV2 row is 19 KB (96x10x10 float16), a CNN row 7 KB.
ACTIVATION_ROWS = {"mobilenetv2": (1000, 500), "cnn": (2000, 1000)}
DEFAULT_ACTIVATION_REHEARSE, DEFAULT_ACTIVATION_HOLDOUT = ACTIVATION_ROWS["mobilenetv2"]
BATCH = 64


@dataclass
class MemorySizes:
    rehearse: int = DEFAULT_REHEARSE
    holdout: int = DEFAULT_HOLDOUT
    activation_rehearse: int = DEFAULT_ACTIVATION_REHEARSE
    activation_holdout: int = DEFAULT_ACTIVATION_HOLDOUT

    @classmethod
    def for_arch(cls, arch: str) -> "MemorySizes":
        rehearse, holdout = ACTIVATION_ROWS.get(arch, (0, 0))
        return cls(activation_rehearse=rehearse, activation_holdout=holdout)


@dataclass
class MemoryContent:
    """The arrays of a memory file, in memory (see crackdesk.core.memory.save_memory)."""

    features: np.ndarray  # float32 [M, D]
    labels: np.ndarray  # [M] 0/1
    holdout: np.ndarray  # bool [M]
    activations: np.ndarray | None = None  # float32 [K, ...]
    activation_rows: np.ndarray | None = None  # int [K]
    meta: dict = field(default_factory=dict)

    def save(self, path, head: np.ndarray | None = None) -> None:
        """`head`: the model's final-layer weights (the memory's window basis keeps their direction)."""
        from crackdesk.core.memory import save_memory

        save_memory(path, self.features, self.labels, self.holdout, self.meta, self.activations,
                    self.activation_rows, head)


def stratified_order(examples: list[Example], seed: int) -> list[int]:
    """Indices ordered so that every prefix is a stratified random sample: each class in seeded keyed-hash
    order, the classes interleaved in proportion to their sizes (member j of n sits at (j + 0.5) / n)."""
    placed = []
    for label in (0, 1):
        members = sorted((i for i, ex in enumerate(examples) if ex.label == label),
                         key=lambda i: keyed(seed, examples[i].hash, "memory"))
        placed += [((j + 0.5) / len(members), label, i) for j, i in enumerate(members)]
    return [i for _, _, i in sorted(placed)]


def stratified_sample(examples: list[Example], n: int, seed: int) -> list[int]:
    order = stratified_order(examples, seed)
    return order if n <= 0 else order[:n]


def coverage_sample(features: np.ndarray, labels: np.ndarray, n: int, seed: int,
                    kcenter_fraction: float = KCENTER_FRACTION) -> np.ndarray:
    """n rows of a candidate pool: per class, `kcenter_fraction` by greedy k-center on unit-length features
    (farthest first from what is already chosen), the rest at random; returned in an order whose every prefix is
    a stratified random subset of the chosen rows (the first ones get activations)."""
    rng = np.random.default_rng(seed)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    parts = []
    for label in (0, 1):
        pool = np.flatnonzero(np.asarray(labels) == label)
        take = min(len(pool), n // 2 if label == 0 else n - n // 2)
        n_center = int(round(take * kcenter_fraction))
        chosen = [int(rng.integers(len(pool)))] if n_center else []
        if chosen:
            nearest = np.maximum(2 - 2 * unit[pool] @ unit[pool[chosen[0]]], 0)
            while len(chosen) < n_center:
                i = int(np.argmax(nearest))
                chosen.append(i)
                nearest = np.minimum(nearest, np.maximum(2 - 2 * unit[pool] @ unit[pool[i]], 0))
        rest = np.setdiff1d(np.arange(len(pool)), chosen)
        picked = pool[np.concatenate([np.array(chosen, int), rng.choice(rest, take - len(chosen), replace=False)])]
        parts.append(rng.permutation(picked))
    placed = [((j + 0.5) / len(part), i) for part in parts for j, i in enumerate(part)]
    return np.array([i for _, i in sorted(placed)], int)


def graph_outputs(sess, images_uint8: np.ndarray, prep: Preprocessing, features_output: str = "features",
                  cancel=None) -> tuple[np.ndarray, np.ndarray]:
    """(p_crack [N], features [N, D]) from a model graph through onnxruntime, with the app's preprocessing."""
    name = sess.get_inputs()[0].name
    first = sess.get_outputs()[0].name
    probs, feats = [], []
    for start in range(0, len(images_uint8), BATCH):
        if cancel is not None:
            cancel.check()
        p, f = sess.run([first, features_output], {name: prep.normalize(images_uint8[start:start + BATCH])})
        probs.append(p.reshape(-1))
        feats.append(f.astype(np.float32))
    if not probs:
        return np.zeros(0, np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


def frozen_activations(frozen_session, images_uint8: np.ndarray, prep: Preprocessing, cancel=None) -> np.ndarray:
    """The frozen part's output for each image (the app's preprocessing), float32 [N, C, h, w]."""
    name = frozen_session.get_inputs()[0].name
    out = []
    for start in range(0, len(images_uint8), BATCH):
        if cancel is not None:
            cancel.check()
        out.append(frozen_session.run(None, {name: prep.normalize(images_uint8[start:start + BATCH])})[0])
    return np.concatenate(out).astype(np.float32)


def build_content(sess, frozen_session, prep: Preprocessing, rehearse: tuple[np.ndarray, np.ndarray],
                  holdout: tuple[np.ndarray, np.ndarray], n_activation_rehearse: int, n_activation_holdout: int,
                  meta: dict, cancel=None) -> MemoryContent:
    """A memory from already chosen images: `rehearse` and `holdout` are (uint8 images, labels), each in
    stratified order (so their first rows are a stratified sample: those get activations)."""
    parts = []
    for (images, labels), held, n_act in ((rehearse, False, n_activation_rehearse),
                                          (holdout, True, n_activation_holdout)):
        _, feats = graph_outputs(sess, images, prep, cancel=cancel)
        act = None
        if frozen_session is not None and n_act > 0:
            act = frozen_activations(frozen_session, images[:n_act], prep, cancel)
        parts.append((feats, np.asarray(labels, np.float32), np.full(len(labels), held), act))
    features = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    held = np.concatenate([p[2] for p in parts])
    activations = rows = None
    if frozen_session is not None:
        n_rehearse = len(parts[0][1])
        acts = [p[3] for p in parts if p[3] is not None]
        activations = np.concatenate(acts) if acts else None
        k0 = len(parts[0][3]) if parts[0][3] is not None else 0
        k1 = len(parts[1][3]) if parts[1][3] is not None else 0
        rows = np.concatenate([np.arange(k0), n_rehearse + np.arange(k1)])
    meta = {**meta, "rows": {"rehearse": int((~held).sum()), "holdout": int(held.sum())}}
    if activations is not None:
        meta["activations"] = {**meta.get("activations", {}), "shape": list(activations.shape[1:]),
                               "rehearse": k0, "holdout": k1}
    return MemoryContent(features, labels, held, activations, rows, meta)


def frozen_session_for(model, prep: Preprocessing):
    """onnxruntime session of a staged model's frozen part, or None for an architecture without one."""
    from .archs import is_staged
    from .export import export_frozen_bytes, session

    if not is_staged(model):
        return None
    return session(export_frozen_bytes(model.frozen_part(), prep))


def activations_meta(model) -> dict:
    return {"input_of": f"features[{model.first_trainable}:] and the head (the part deep retraining trains)",
            "first_trainable": model.first_trainable, "dtype": "float16"}


def memory_from_training(sess, model, prep: Preprocessing, data, sizes: MemorySizes, seed: int, model_key: str,
                         cancel=None) -> MemoryContent:
    """A trained model's memory from its own training and validation splits (already decoded in `data`)."""
    _, pool_features = graph_outputs(sess, data.images["train"], prep, cancel=cancel)
    rehearse_idx = coverage_sample(pool_features, data.labels["train"], sizes.rehearse, seed)
    holdout_idx = stratified_sample(data.examples["val"], sizes.holdout, seed)
    frozen = frozen_session_for(model, prep) if sizes.activation_rehearse or sizes.activation_holdout else None
    meta = {"model": model_key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": ", ".join(s["path"] for s in data.summary.get("sources", [])),
            "data_name": "its training data (" + ", ".join(Path(s["path"]).name for s in
                                                        data.summary.get("sources", [])) + ")",
            "chosen": f"training split rows to rehearse chosen for coverage (half k-center on pooled features, half "
                      f"random, seed {seed}); validation split rows held out",
            "features_from": "the model's ONNX graph (output 'features'), onnxruntime, the app's preprocessing",
            "parts": [{"name": "training data", "kind": "base", "rows": None}]}
    if frozen is not None:
        meta["activations"] = activations_meta(model)
    content = build_content(sess, frozen, prep,
                            (data.images["train"][rehearse_idx], data.labels["train"][rehearse_idx]),
                            (data.images["val"][holdout_idx], data.labels["val"][holdout_idx]),
                            sizes.activation_rehearse, sizes.activation_holdout, meta, cancel)
    content.meta["parts"][0]["rows"] = [0, len(content.labels)]
    return content
