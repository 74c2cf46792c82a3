"""Training the whole network on decoded images (cnn and seed-cnn from scratch, and a --base retraining that
cannot rehearse): augmented uint8 batches -> normalised -> the whole network. Staged training (MobileNetV2,
and any retraining that rehearses a replay memory) is in staged.py; the batching helpers are shared."""

from __future__ import annotations

import numpy as np
import torch

from crackdesk.core.preprocess import Preprocessing

from .augment import augment, normalize
from .data import TrainingData
from .loop import class_weights, fit, predict_logits

BATCH = 64


def batches(n: int, epoch: int, seed: int, make):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    for start in range(0, n - n % BATCH if n >= 2 * BATCH else n, BATCH):
        idx = order[start:start + BATCH]
        if len(idx) > 1:  # a batch of one breaks BatchNorm in training mode
            yield make(idx)


def steps(n: int) -> int:
    return (n // BATCH) if n >= 2 * BATCH else max(1, -(-n // BATCH))


def train_from_images(model: torch.nn.Module, data: TrainingData, prep: Preprocessing, *, epochs: int, lr: float,
                      seed: int, device: torch.device, reporter=None, cancel=None) -> dict:
    images = {k: torch.from_numpy(v) for k, v in data.images.items()}
    labels = {k: torch.from_numpy(v) for k, v in data.labels.items()}
    gen = torch.Generator().manual_seed(seed)
    model.to(device).to(memory_format=torch.channels_last)

    def make(idx):
        x = normalize(augment(images["train"][idx], gen), prep)
        return x.to(device), labels["train"][idx].to(device)

    def val_inputs(a, b):
        return normalize(images["val"][a:b].float() / 255.0, prep).to(device)

    n = len(labels["train"])
    result = fit(model, model.parameters(), lambda e: batches(n, e, seed, make), steps(n),
                 lambda: predict_logits(model, val_inputs, len(labels["val"]), cancel=cancel), data.labels["val"],
                 class_weights(data.labels["train"]), epochs=epochs, lr=lr, reporter=reporter, cancel=cancel,
                 phase="train", patience=4)
    p_val = 1 / (1 + np.exp(-predict_logits(model, val_inputs, len(labels["val"]))))
    model.to("cpu").to(memory_format=torch.contiguous_format)
    return {"train": summary(result)}, p_val


def summary(result) -> dict:
    return {"epochs_run": len(result.train_losses), "best_epoch": result.best_epoch,
            "train_loss": [round(v, 5) for v in result.train_losses],
            "val_loss": [round(v, 5) for v in result.val_losses], "seconds": round(result.seconds, 1)}
