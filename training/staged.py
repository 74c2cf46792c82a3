"""Staged training of a model split into a frozen part and a trainable part (archs.py): MobileNetV2 always,
the CNN when it retrains from a --base with a replay memory.

The frozen part runs once per image (and per augmented view) through onnxruntime, several times faster than
torch on CPU, and its activations are cached; then (1) the head is fitted on pooled features of the cache
(only when training from ImageNet weights: a --base's head is already trained) and (2) the trainable part is
fine-tuned on the cache with BatchNorm frozen. With a replay memory (rehearsal.py) every fine-tuning batch is
half cached views of the new images and half memory activations, and the memory's held-out rows are the
validation data.
"""

from __future__ import annotations

import numpy as np
import torch

from crackdesk.core.preprocess import Preprocessing

from .archs import set_bn_eval
from .augment import augmented_uint8, normalize_numpy
from .data import TrainingData
from .export import export_frozen_bytes, session
from .loop import class_weights, fit, predict_logits
from . import rehearsal
from .rehearsal import Replay, mixed_batches, mixed_steps
from .trainers import BATCH, batches, steps, summary


def views_for(n_train: int) -> int:
    """Augmented copies cached per training image: more for small data sets (cheap there)."""
    return int(min(8, max(3, 24000 // max(n_train, 1))))


def cache_views(frozen_session, images: np.ndarray, prep: Preprocessing, n_views: int, gen, reporter, cancel,
                done_total):
    """Frozen-part activations of `n_views` views (view 0 unaugmented): float32 [views, N, C, h, w]."""
    name = frozen_session.get_inputs()[0].name
    out = None
    for v in range(n_views):
        for start in range(0, len(images), 128):
            if cancel is not None:
                cancel.check()
            batch = images[start:start + 128]
            if v > 0:
                batch = augmented_uint8(batch, gen)
            act = frozen_session.run(None, {name: normalize_numpy(batch, prep)})[0]
            if out is None:
                out = np.empty((n_views, len(images)) + act.shape[1:], dtype=np.float32)
            out[v, start:start + len(batch)] = act
            done_total[0] += len(batch)
            if reporter:
                reporter.progress("features", done_total[0], done_total[1])
    return out


def frozen_output_shape(model, prep: Preprocessing) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(model.frozen_part().eval()(torch.zeros(1, 3, *prep.input_size)).shape[1:])


def _fit_head(model, cache_train, cache_val, y_train, y_val, weights, seed, reporter, cancel) -> dict:
    """Stage 1: the final layer alone, on pooled features of the cached (unaugmented and augmented) views."""
    if reporter:
        reporter.phase("head", "fitting the classifier head on frozen features")
    n, n_views = len(y_train), len(cache_train)
    with torch.no_grad():
        feats = torch.cat([model.pooled_features(torch.from_numpy(cache_train[v, a:a + 256]))
                           for v in range(min(2, n_views)) for a in range(0, n, 256)])
        val_feats = torch.cat([model.pooled_features(torch.from_numpy(cache_val[a:a + 256]))
                               for a in range(0, len(cache_val), 256)])
    y_feats = y_train.repeat(min(2, n_views))
    linear = model.final_layer
    result = fit(linear, linear.parameters(),
                 lambda e: batches(len(feats), e, seed, lambda idx: (feats[idx], y_feats[idx])), steps(len(feats)),
                 lambda: predict_logits(linear, lambda a, b: val_feats[a:b], len(val_feats)), y_val,
                 weights, epochs=15, lr=3e-3, patience=4, reporter=reporter, cancel=cancel, phase="head")
    return summary(result)


def train_staged(model, data: TrainingData, prep: Preprocessing, *, epochs: int, lr: float, seed: int,
                 device: torch.device, fit_head_first: bool, replay: Replay | None = None, reporter=None,
                 cancel=None) -> tuple[dict, np.ndarray]:
    """Returns (training summary, P(crack) of the validation split's images: empty when it has none)."""
    gen = torch.Generator().manual_seed(seed)
    n = data.count("train")
    n_views = views_for(n)
    frozen = session(export_frozen_bytes(model.frozen_part(), prep))
    if reporter:
        reporter.phase("features", f"computing frozen-part activations ({n_views} views of each training image)")
    progress = [0, n_views * n + data.count("val")]
    cache_train = cache_views(frozen, data.images["train"], prep, n_views, gen, reporter, cancel, progress)
    cache_val = (cache_views(frozen, data.images["val"], prep, 1, gen, reporter, cancel, progress)[0]
                 if data.count("val") else None)
    y_train = torch.from_numpy(data.labels["train"])
    head = model.trainable_part()
    result_summary = {"views": n_views, "first_trainable_block": model.first_trainable}
    if fit_head_first:
        result_summary["head"] = _fit_head(model, cache_train, cache_val, y_train, data.labels["val"],
                                           class_weights(data.labels["train"]), seed, reporter, cancel)

    # Validation: the memory's held-out rows when rehearsing (retention), else the validation split.
    if replay is not None:
        val_x, val_y = replay.holdout
    else:
        val_x, val_y = cache_val, data.labels["val"]

    def val_inputs(a, b):
        return torch.from_numpy(val_x[a:b]).to(device).contiguous(memory_format=torch.channels_last)

    if reporter:
        what = " rehearsing the replay memory (half of every batch)" if replay is not None else ""
        reporter.phase("finetune", f"fine-tuning the trainable part (from block {model.first_trainable}) and the "
                                   f"head, BatchNorm frozen{what}")
    head.to(device).to(memory_format=torch.channels_last)
    # An epoch passes over the cached views (views x images), capped for large sets at one view per image
    # or 8192 samples: small retraining sets get enough steps, large ones stay within minutes per epoch.
    per_epoch = min(n_views * n, max(n, 8192))

    def site_make(flat):
        flat = flat.numpy()
        if per_epoch == n_views * n:
            view, idx = flat // n, flat % n
        else:
            idx = flat % n
            view = torch.randint(0, n_views, (len(idx),), generator=gen).numpy()
        x = torch.from_numpy(cache_train[view, idx])
        return x.to(device).contiguous(memory_format=torch.channels_last), y_train[torch.from_numpy(idx)].to(device)

    def train_mode():
        head.train()
        set_bn_eval(head)

    if replay is not None:
        memory_x, memory_y = replay.rehearse
        memory_y_t = torch.from_numpy(memory_y.astype(np.float32))

        def memory_make(rows):
            x = torch.from_numpy(memory_x[rows.numpy()])
            return x.to(device).contiguous(memory_format=torch.channels_last), memory_y_t[rows].to(device)

        def epoch_batches(e):
            return mixed_batches(n_views * n, site_make, memory_y, memory_make, data.labels["train"], per_epoch,
                                 BATCH, e, seed)

        n_steps = mixed_steps(per_epoch, BATCH)
    else:
        def epoch_batches(e):
            return batches(per_epoch, e, seed, site_make)

        n_steps = steps(per_epoch)

    # The head is already fitted: a tenth of the blocks' rate keeps Adam's first steps from undoing it.
    groups = [{"params": model.features[model.first_trainable:].parameters()},
              {"params": model.final_layer.parameters(), "lr": lr / 10}]
    # Rehearsing, the validation rows are the memory's: they can tell forgetting, not whether the new images
    # are learnt, so early stopping on them would stop learning the site; the last epoch is kept.
    result = fit(head, groups, epoch_batches, n_steps,
                 lambda: predict_logits(head, val_inputs, len(val_x), cancel=cancel), val_y,
                 class_weights(val_y), epochs=epochs, lr=lr, patience=3, train_mode=train_mode,
                 reporter=reporter, cancel=cancel, phase="finetune", keep_best=replay is None)
    p_val = np.zeros(0, np.float32)
    if cache_val is not None:
        p_val = 1 / (1 + np.exp(-predict_logits(head, lambda a, b: torch.from_numpy(cache_val[a:b]).to(device),
                                                len(cache_val))))
    head.to("cpu").to(memory_format=torch.contiguous_format)
    result_summary["finetune"] = summary(result)
    if replay is not None:
        result_summary["rehearsal"] = {"memory_rows": int(len(memory_y)), "memory_share_of_each_batch": 0.5,
                                       "memory_share_of_the_loss": rehearsal.MEMORY_WEIGHT,
                                       "validation": "the replay memory's held-out rows", "kept_epoch": "last"}
    return result_summary, p_val
