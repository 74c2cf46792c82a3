"""The training loop: plain epochs over in-memory batches, class-balanced loss, cosine learning rate,
early stopping on validation loss, and the best epoch's weights kept."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class FitResult:
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def class_weights(labels: np.ndarray) -> tuple[float, float]:
    """(weight of no_crack, weight of crack) so both classes count equally in the loss."""
    n = len(labels)
    pos = float(labels.sum())
    neg = n - pos
    return (n / (2 * neg) if neg else 1.0, n / (2 * pos) if pos else 1.0)


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: tuple[float, float]) -> torch.Tensor:
    return sample_weighted_bce(logits, y, torch.where(y > 0.5, weights[1], weights[0]))


def sample_weighted_bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (F.binary_cross_entropy_with_logits(logits.view(-1), y, reduction="none") * w).sum() / w.sum()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, inputs: Callable[[int, int], torch.Tensor], n: int,
                   batch: int = 128, cancel=None) -> np.ndarray:
    """Logits of n inputs; `inputs(start, stop)` gives a prepared batch."""
    model.eval()
    out = []
    for start in range(0, n, batch):
        if cancel is not None:
            cancel.check()
        out.append(model(inputs(start, min(start + batch, n))).view(-1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def fit(model: torch.nn.Module, params: Iterable, batches: Callable[[int], Iterable], steps_per_epoch: int,
        val_logits: Callable[[], np.ndarray], y_val: np.ndarray, weights: tuple[float, float], *, epochs: int,
        lr: float, weight_decay: float = 1e-4, patience: int = 3, train_mode: Callable[[], None] | None = None,
        reporter=None, cancel=None, phase: str = "train", keep_best: bool = True) -> FitResult:
    """Train `model` (in place; ends with the best validation epoch's weights, or with keep_best=False the
    last epoch's, without early stopping: for validation data that cannot judge the fit, see staged.py).

    `batches(epoch)` yields (inputs, labels) or (inputs, labels, per-sample loss weights) tensors;
    `train_mode()` puts the model in training mode (callers that keep BatchNorm frozen pass their own)."""
    params = list(params)  # tensors, or param-group dicts with their own "lr"
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total_steps = max(1, epochs * steps_per_epoch)
    warmup = min(50, total_steps // 5)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) * 0.5 *
                                                 (1 + np.cos(np.pi * min(s, total_steps) / total_steps)))
    result, best_state, stale = FitResult(), None, 0
    start = time.monotonic()
    y_val_t = torch.from_numpy(np.asarray(y_val, dtype=np.float32))
    step = 0
    for epoch in range(1, epochs + 1):
        (train_mode or model.train)()
        losses = []
        for batch in batches(epoch):
            if cancel is not None:
                cancel.check()
            x, y = batch[0], batch[1]
            loss = weighted_bce(model(x), y, weights) if len(batch) == 2 else sample_weighted_bce(model(x), y, batch[2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            step += 1
            if reporter:
                reporter.progress(phase, step, total_steps)
        logits = val_logits()
        val_loss = float(weighted_bce(torch.from_numpy(logits), y_val_t, weights))
        val_acc = float(((logits >= 0) == (y_val >= 0.5)).mean())
        result.train_losses.append(float(np.mean(losses)) if losses else float("nan"))
        result.val_losses.append(val_loss)
        result.val_accuracies.append(val_acc)
        elapsed = time.monotonic() - start
        if reporter:
            reporter.epoch(phase, epoch, epochs, result.train_losses[-1], val_loss, val_acc,
                           round(elapsed / epoch * (epochs - epoch), 1))
        if not keep_best:
            result.best_epoch, result.best_val_loss = epoch, val_loss
        elif val_loss < result.best_val_loss - 1e-5:
            result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= patience:
                if reporter:
                    reporter.warning(f"{phase}: validation loss has not improved for {patience} epochs; "
                                     f"stopping early at epoch {epoch}, keeping epoch {result.best_epoch}")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.monotonic() - start
    return result
