"""How each architecture is trained on decoded images.

* `train_from_images` (cnn, seed-cnn, and any model retrained from a `--base`'s weights end to end):
  augmented uint8 batches -> normalised -> the whole network.
* `train_mobilenet`: staged transfer learning. The frozen ImageNet blocks run once per image (and per
  augmented view) through onnxruntime, several times faster than torch on CPU, and their activations are
  cached; then (1) the head is fitted on pooled features of the cache (skipped for a --base, whose head
  is already trained) and (2) the last blocks and the head are fine-tuned on the cache with BatchNorm frozen.
"""

from __future__ import annotations

import numpy as np
import torch

from crackdesk.core.preprocess import Preprocessing

from .archs import MobileNetCrack, set_bn_eval
from .augment import augment, augmented_uint8, normalize, normalize_numpy
from .data import TrainingData
from .export import session
from .loop import class_weights, fit, predict_logits

BATCH = 64


def _batches(n: int, epoch: int, seed: int, make):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    for start in range(0, n - n % BATCH if n >= 2 * BATCH else n, BATCH):
        idx = order[start:start + BATCH]
        if len(idx) > 1:  # a batch of one breaks BatchNorm in training mode
            yield make(idx)


def _steps(n: int) -> int:
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
    result = fit(model, model.parameters(), lambda e: _batches(n, e, seed, make), _steps(n),
                 lambda: predict_logits(model, val_inputs, len(labels["val"]), cancel=cancel), data.labels["val"],
                 class_weights(data.labels["train"]), epochs=epochs, lr=lr, reporter=reporter, cancel=cancel,
                 phase="train", patience=4)
    p_val = 1 / (1 + np.exp(-predict_logits(model, val_inputs, len(labels["val"]))))
    model.to("cpu").to(memory_format=torch.contiguous_format)
    return {"train": _summary(result)}, p_val


def _summary(result) -> dict:
    return {"epochs_run": len(result.train_losses), "best_epoch": result.best_epoch,
            "train_loss": [round(v, 5) for v in result.train_losses],
            "val_loss": [round(v, 5) for v in result.val_losses], "seconds": round(result.seconds, 1)}


def views_for(n_train: int) -> int:
    """Augmented copies cached per training image: more for small data sets (cheap there)."""
    return int(min(8, max(3, 24000 // max(n_train, 1))))


def _cache(frozen_session, images: np.ndarray, prep: Preprocessing, n_views: int, gen, reporter, cancel, done_total):
    """Frozen-block activations of `n_views` views (view 0 unaugmented): float32 [views, N, C, h, w]."""
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


def train_mobilenet(model: MobileNetCrack, data: TrainingData, prep: Preprocessing, *, epochs: int, lr: float,
                    seed: int, device: torch.device, from_base: bool, reporter=None, cancel=None) -> dict:
    from .export import export_frozen_bytes

    gen = torch.Generator().manual_seed(seed)
    n_views = views_for(data.count("train"))
    frozen = session(export_frozen_bytes(model.frozen_part(), prep))
    if reporter:
        reporter.phase("features", f"computing frozen-backbone activations ({n_views} views of each training image)")
    progress = [0, n_views * data.count("train") + data.count("val")]
    cache_train = _cache(frozen, data.images["train"], prep, n_views, gen, reporter, cancel, progress)
    cache_val = _cache(frozen, data.images["val"], prep, 1, gen, reporter, cancel, progress)[0]
    y_train = torch.from_numpy(data.labels["train"])
    weights = class_weights(data.labels["train"])
    head = model.trainable_part()
    summary = {"views": n_views, "first_trainable_block": model.first_trainable}
    n = len(y_train)

    def val_inputs(a, b):
        return torch.from_numpy(cache_val[a:b]).to(device).contiguous(memory_format=torch.channels_last)

    if not from_base:
        # Stage 1: the head alone, on pooled features of the cached (unaugmented and augmented) views.
        if reporter:
            reporter.phase("head", "fitting the classifier head on frozen features")
        body = torch.nn.Sequential(*list(head.children())[:-1]).eval()
        with torch.no_grad():
            feats = torch.cat([body(torch.from_numpy(cache_train[v, a:a + 256])) for v in range(min(2, n_views))
                               for a in range(0, n, 256)])
            val_feats = torch.cat([body(torch.from_numpy(cache_val[a:a + 256])) for a in range(0, len(cache_val), 256)])
        y_feats = y_train.repeat(min(2, n_views))
        linear = model.classifier
        result = fit(linear, linear.parameters(),
                     lambda e: _batches(len(feats), e, seed, lambda idx: (feats[idx], y_feats[idx])), _steps(len(feats)),
                     lambda: predict_logits(linear, lambda a, b: val_feats[a:b], len(val_feats)), data.labels["val"],
                     weights, epochs=15, lr=3e-3, patience=4, reporter=reporter, cancel=cancel, phase="head")
        summary["head"] = _summary(result)

    # Stage 2: fine-tune the last blocks and the head on the cache, BatchNorm statistics frozen.
    if reporter:
        reporter.phase("finetune", f"fine-tuning blocks {model.first_trainable}-18 and the head (BatchNorm frozen)")
    head.to(device).to(memory_format=torch.channels_last)

    # An epoch passes over the cached views (views x images), capped for large sets at one view per image
    # or 8192 samples: small retraining sets get enough steps, large ones stay within minutes per epoch.
    per_epoch = min(n_views * n, max(n, 8192))

    def make(flat):
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

    # The head is already fitted: a tenth of the blocks' rate keeps Adam's first steps from undoing it.
    groups = [{"params": model.features[model.first_trainable:].parameters()},
              {"params": model.classifier.parameters(), "lr": lr / 10}]
    result = fit(head, groups, lambda e: _batches(per_epoch, e, seed, make), _steps(per_epoch),
                 lambda: predict_logits(head, val_inputs, len(cache_val), cancel=cancel), data.labels["val"],
                 weights, epochs=epochs, lr=lr, patience=3, train_mode=train_mode, reporter=reporter,
                 cancel=cancel, phase="finetune")
    p_val = 1 / (1 + np.exp(-predict_logits(head, val_inputs, len(cache_val))))
    head.to("cpu").to(memory_format=torch.contiguous_format)
    summary["finetune"] = _summary(result)
    return summary, p_val
