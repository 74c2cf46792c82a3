"""Rehearsing a base model's replay memory during a deep retraining (issue 9, part 7).

The memory's activations are the input of the part that retraining trains, so they go straight into it:
every batch is half the new images (augmented views from the cache) and half memory rows, and each half has
a fixed share of the loss whatever their sizes (the memory 0.75: at 0.5 the shipped MobileNetV2 lost up to
0.29 points on ccic val, at 0.75 at most 0.17, with the same gain on the site; BENCHMARKS.md), so a hundred
corrections neither drown in thousands of remembered images nor override them. Within each half both
classes count equally. The memory's held-out rows (never trained on) measure retention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crackdesk.core.errors import ModelError
from crackdesk.core.memory import MemoryActivations, load_activations, memory_path

from .loop import class_weights

MEMORY_WEIGHT = 0.75  # the memory half's share of each batch's loss (the site's: the rest); see BENCHMARKS.md


@dataclass
class Replay:
    """The base model's memory, ready to rehearse."""

    memory: MemoryActivations
    path: str
    megabytes: float

    @property
    def rehearse(self) -> tuple[np.ndarray, np.ndarray]:
        keep = ~self.memory.holdout
        return self.memory.activations[keep], self.memory.labels[keep]

    @property
    def holdout(self) -> tuple[np.ndarray, np.ndarray]:
        keep = self.memory.holdout
        return self.memory.activations[keep], self.memory.labels[keep]

    def describe(self) -> dict:
        """The `memory` field of the `start` event (docs/training-events.md)."""
        m = self.memory
        return {"path": self.path, "rehearse": int((~m.holdout).sum()), "holdout": int(m.holdout.sum()),
                "crack": int(m.labels.sum()), "no_crack": int(len(m.labels) - m.labels.sum()),
                "megabytes": round(self.megabytes, 1), "source": m.meta.get("source", "")}


def load_replay(base_path, model, frozen_shape: tuple[int, ...]) -> tuple[Replay | None, str | None]:
    """(the base's replay memory, None), or (None, why it cannot rehearse) for the warning event.
    A memory that exists but is unusable is an error: silently retraining without it would forget."""
    path = memory_path(base_path)
    if not path.is_file():
        return None, (f"the base model has no replay memory ({path.name}): it cannot rehearse what it knew, "
                      "so retraining on these images alone may make it forget (add a dataset of its original "
                      "data to train on as well)")
    if not hasattr(model, "first_trainable"):
        return None, f"{type(model).__name__} models are retrained whole: the replay memory cannot be rehearsed"
    memory = load_activations(base_path)
    if memory is None:
        return None, (f"the base model's replay memory ({path.name}) holds pooled features only, no activations "
                      "for deep retraining: it cannot rehearse, so retraining on these images alone may forget")
    stored = memory.meta.get("activations", {}).get("first_trainable")
    if stored != model.first_trainable or tuple(memory.activations.shape[1:]) != tuple(frozen_shape):
        raise ModelError(f"the replay memory's activations ({list(memory.activations.shape[1:])}, input of part "
                         f"{stored}) do not fit this model's trainable part ({list(frozen_shape)}, part "
                         f"{model.first_trainable})", path)
    for role, mask in (("rehearsal", ~memory.holdout), ("held-out", memory.holdout)):
        if len(set(memory.labels[mask].tolist())) < 2:
            raise ModelError(f"the replay memory's {role} activations lack a class", path)
    return Replay(memory, str(path), path.stat().st_size / 1e6), None


def mixed_batches(site_count: int, site_make, memory_labels: np.ndarray, memory_make, site_labels: np.ndarray,
                  per_epoch: int, batch: int, epoch: int, seed: int):
    """Batches of `batch // 2` site samples and as many memory rows, with per-sample loss weights that give
    each half its share of the loss (MEMORY_WEIGHT) and, within each half, both classes equally.

    `site_make(flat_indices)` gives (inputs, labels) for site samples (flat over views x images, as in
    staged.py), `memory_make(rows)` the memory's."""
    half = batch // 2
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    site_order = torch.randperm(site_count, generator=gen)[:per_epoch]
    memory_order = torch.randperm(len(memory_labels), generator=gen)
    site_w = torch.tensor(class_weights(site_labels), dtype=torch.float32)
    memory_w = torch.tensor(class_weights(memory_labels), dtype=torch.float32)
    used = 0
    for start in range(0, len(site_order), half):
        idx = site_order[start:start + half]
        if len(idx) < 2:  # a lone leftover sample: BatchNorm is frozen, but one sample is no batch
            break
        rows = memory_order[torch.arange(used, used + len(idx)) % len(memory_order)]
        used += len(idx)
        x_site, y_site = site_make(idx)
        x_mem, y_mem = memory_make(rows)
        w_site = site_w[y_site.long().cpu()]
        w_mem = memory_w[y_mem.long().cpu()]
        w = torch.cat([(1 - MEMORY_WEIGHT) * w_site / w_site.sum(), MEMORY_WEIGHT * w_mem / w_mem.sum()])
        w = w.to(x_site.device)
        yield torch.cat([x_site, x_mem]), torch.cat([y_site, y_mem]), w


def mixed_steps(per_epoch: int, batch: int) -> int:
    half = batch // 2
    return max(1, per_epoch // half + (1 if per_epoch % half >= 2 else 0))
