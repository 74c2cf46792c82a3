"""The replay memory of a model retrained from a base that rehearsed its memory.

A base memory's pooled features belong to the base's graph; the new model's differ. Rows with activations
get their features recomputed through the NEW trainable part (the frozen part did not change, so the stored
activations are still its output); rows without activations cannot be recomputed and are dropped (their
features would describe another model). This run's training images are added as a new part, with their
features from the new graph and their activations, so the next adaptation rehearses them too. Parts are
named in `meta["parts"]` (contiguous row ranges); a site retrained again supersedes its earlier part.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from crackdesk.core.memory import load_memory

from .memory_build import MemoryContent, frozen_activations, graph_outputs, stratified_sample

MAX_PART_ROWS = 1000  # of one retraining's own images
MAX_ADDED_ROWS = 3000  # of all retrainings' images together: the oldest parts go first


@torch.no_grad()
def pooled_features(model, activations: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = [model.pooled_features(torch.from_numpy(activations[a:a + batch])).numpy()
           for a in range(0, len(activations), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def _base_parts(meta: dict, n_rows: int) -> list[dict]:
    parts = meta.get("parts") or [{"name": meta.get("source", "base training data"), "kind": "base",
                                   "rows": [0, n_rows]}]
    return [dict(p) for p in parts]


def derive_memory(base_path, replay, model, final_session, frozen_session, prep, data, sources: list[str],
                  model_key: str, seed: int, cancel=None) -> MemoryContent:
    """The new model's memory: the base's rows with activations (features recomputed) plus this run's
    training images. `sources` are this run's DATA paths (a part from the same path is superseded)."""
    base = load_memory(base_path)
    act = replay.memory
    kept_parts, rows_of_part = [], []
    for part in _base_parts(base.meta, len(base.labels)):
        if part.get("kind") == "site" and part.get("source") in sources:
            continue  # this folder's current labels replace the ones it was retrained on before
        start, stop = part["rows"]
        with_act = np.flatnonzero((act.rows >= start) & (act.rows < stop))  # positions in the activations
        if len(with_act):
            kept_parts.append(part)
            rows_of_part.append(with_act)
    added = sum(len(r) for p, r in zip(kept_parts, rows_of_part) if p.get("kind") == "site")
    new_idx = stratified_sample(data.examples["train"], MAX_PART_ROWS, seed)
    while added + len(new_idx) > MAX_ADDED_ROWS:  # the oldest retraining's images make room first
        oldest = next(i for i, p in enumerate(kept_parts) if p.get("kind") == "site")
        added -= len(rows_of_part[oldest])
        del kept_parts[oldest], rows_of_part[oldest]

    features, labels, holdout, activations, parts = [], [], [], [], []
    start = 0
    for part, positions in zip(kept_parts, rows_of_part):
        features.append(pooled_features(model, act.activations[positions]))
        labels.append(act.labels[positions])
        holdout.append(act.holdout[positions])
        activations.append(act.activations[positions])
        parts.append({**part, "rows": [start, start + len(positions)]})
        start += len(positions)
    images = data.images["train"][new_idx]
    _, site_features = graph_outputs(final_session, images, prep, cancel=cancel)
    site_act = frozen_activations(frozen_session, images, prep, cancel)
    # The graph and the trainable part on the stored activations must agree: the memory's features are
    # meant to be the graph's.
    parity = float(np.abs(pooled_features(model, site_act) - site_features).max()) if len(images) else 0.0
    features.append(site_features)
    labels.append(data.labels["train"][new_idx])
    holdout.append(np.zeros(len(new_idx), bool))
    activations.append(site_act)
    parts.append({"name": ", ".join(sources), "kind": "site", "source": sources[0] if len(sources) == 1 else
                  ", ".join(sources), "rows": [start, start + len(new_idx)]})
    dropped = len(base.labels) - len(act.rows)
    meta = {"model": model_key, "derived_from": base.meta.get("model"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": base.meta.get("source", ""), "data_name": base.meta.get("data_name", ""),
            "chosen": base.meta.get("chosen", ""),
            "features_from": "base rows: the new trainable part applied to the stored activations; this "
                             "retraining's images: the new ONNX graph (output 'features'), the app's preprocessing",
            "features_parity_max_abs_diff": round(parity, 6),
            "dropped_rows_without_activations": int(dropped),
            "parts": parts, "activations": {**act.meta.get("activations", {})}}
    content = MemoryContent(np.concatenate(features), np.concatenate(labels).astype(np.float32),
                            np.concatenate(holdout), np.concatenate(activations), None, meta)
    held = content.holdout
    meta["rows"] = {"rehearse": int((~held).sum()), "holdout": int(held.sum())}
    meta["activations"].update({"shape": list(content.activations.shape[1:]), "rehearse": int((~held).sum()),
                                "holdout": int(held.sum())})
    return content
