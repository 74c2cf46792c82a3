"""The comparisons a retraining reports, each on data that can answer it (docs/training-events.md):

* `validation_compare`: new and old model on the same validation-split images (when there is a split);
* `retention_report`: base and new model on the replay memory's held-out rows, which neither trained on:
  what the retraining cost on the base's own data (concrete, for the shipped models);
* `site_report`: the current model and the new one on the site's labels. The new model was fitted on them
  (said so, with how many), so it is no estimate of how it does on the site's other photos; the current
  model never saw them, unless it was itself trained on this folder (then said so too).
Mixing the two, as one validation set of mostly concrete did, showed a model at 95-100% on a site where it
got 53% right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crackdesk.core.errors import CrackDeskError
from crackdesk.core.metrics import binary_metrics

from . import export
from .data import decode_all


def _count(labels: np.ndarray) -> dict:
    return {"images": int(len(labels)), "crack": int(labels.sum()), "no_crack": int(len(labels) - labels.sum())}


def _old_probabilities(path: Path, examples, images, prep, cancel) -> tuple[object, np.ndarray]:
    """(the model's info, its P(crack) on these examples) with its own preprocessing."""
    from crackdesk.core.models import load_model

    old = load_model(path)
    if old.info.preprocessing != prep:
        _, images, bad = decode_all(examples, old.info.preprocessing, cancel)
        if bad:
            raise CrackDeskError("training images became unreadable during training", bad[0]["path"])
    return old.info, export.ort_probabilities(old.session, images, old.info.preprocessing, cancel=cancel)


def validation_compare(path: Path | None, new_session, data, prep, threshold: float, cancel) -> dict | None:
    """`compare`: the new and the old model (its own preprocessing and threshold) on the validation split."""
    if data.count("val") == 0:
        return None
    y = data.labels["val"]
    new = binary_metrics(y, export.ort_probabilities(new_session, data.images["val"], prep, cancel=cancel), threshold)
    old = None
    if path is not None:
        info, p = _old_probabilities(path, data.examples["val"], data.images["val"], prep, cancel)
        old = binary_metrics(y, p, info.threshold)
    return {"images": data.count("val"), "new": new, "old": old}


@torch.no_grad()
def staged_probabilities(model, activations: np.ndarray, batch: int = 256) -> np.ndarray:
    """P(crack) of a staged model from its frozen part's output (the memory's activations)."""
    part = model.trainable_part().eval()
    out = [torch.sigmoid(part(torch.from_numpy(activations[a:a + batch]))).view(-1).numpy()
           for a in range(0, len(activations), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def retention_report(base_model, new_model, replay, base_threshold: float, new_threshold: float,
                     base_key: str) -> dict:
    """`retention`: base and new model on the memory's held-out rows (the same float16 activations)."""
    x, y = replay.holdout
    base = binary_metrics(y, staged_probabilities(base_model, x), base_threshold)
    new = binary_metrics(y, staged_probabilities(new_model, x), new_threshold)
    return {**_count(y), "base_model": base_key, "base": base, "new": new,
            "drop_points": round(100 * (base["accuracy"] - new["accuracy"]), 3),
            "data_name": replay.memory.meta.get("data_name") or "the base model's training data",
            "data": f"the replay memory's held-out rows ({replay.memory.meta.get('source') or 'base training data'})"}


def site_examples(data, sources: list[dict]) -> np.ndarray:
    """Indices (into the concatenated splits) of the site's images: the workspaces' labels when there are
    workspaces, else every DATA image."""
    workspaces = {s["path"] for s in sources if s["kind"] == "workspace"}
    every = [ex for split in ("train", "val", "test") for ex in data.examples[split]]
    return np.array([i for i, ex in enumerate(every) if not workspaces or ex.source in workspaces], dtype=int)


def trained_on(info, model_path, sources: list[str]) -> bool:
    """Whether a model was trained on any of these DATA paths (its training summary names its sources)."""
    mine = {str(Path(s).resolve()) for s in sources}
    theirs = [s.get("path", "") for s in (info.training or {}).get("sources", []) if isinstance(s, dict)]
    return any(str(Path(p).resolve()) in mine for p in theirs if isinstance(p, str))


def site_report(current_path: Path | None, new_session, data, prep, threshold: float, sources: list[dict],
                cancel) -> dict | None:
    """`site`: the current model and the new one on the site's labels (see the module docstring)."""
    idx = site_examples(data, sources)
    if not len(idx):
        return None
    splits = ("train", "val", "test")
    examples = [ex for s in splits for ex in data.examples[s]]
    images = np.concatenate([data.images[s] for s in splits])[idx]
    y = np.concatenate([data.labels[s] for s in splits])[idx]
    fitted = np.array([examples[i].split == "train" for i in idx])
    site = [examples[i] for i in idx]
    p_new = export.ort_probabilities(new_session, images, prep, cancel=cancel)
    report = {**_count(y), "current": None,
              "new": {**binary_metrics(y, p_new, threshold), "fitted_on": int(fitted.sum())},
              "new_unseen": None}
    p_old = None
    if current_path is not None:
        info, p_old = _old_probabilities(current_path, site, images, prep, cancel)
        paths = [s["path"] for s in sources]
        report["current"] = {**binary_metrics(y, p_old, info.threshold), "model": f"{info.name}@{info.version}",
                             "trained_on_these": trained_on(info, current_path, paths)}
    if (~fitted).any():  # a class-folder site keeps a split: there the new model can be judged honestly
        unseen = {**binary_metrics(y[~fitted], p_new[~fitted], threshold)}
        if p_old is not None:
            unseen["current"] = binary_metrics(y[~fitted], p_old[~fitted], info.threshold)
        report["new_unseen"] = unseen
    return report
