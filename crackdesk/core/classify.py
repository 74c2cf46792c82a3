"""Classifying the images of a workspace and storing the results: the one routine behind
`crackdesk classify` and the GUI's classify job."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .features import encode_many as encode_features
from .inference import Classifier, Prediction
from .store import Workspace

FLUSH_SECONDS = 0.5


class _JoinedPaths:
    """folder / relpath, joined only when a slice is taken (by the decode pool, a chunk at a time)."""

    def __init__(self, folder, relpaths: list[str]):
        self.folder, self.relpaths = folder, relpaths

    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.folder / p for p in self.relpaths[index]]
        return self.folder / self.relpaths[index]


@dataclass
class ClassifyReport:
    total: int = 0
    classified: int = 0
    crack: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    cancelled: bool = False
    tiled: int = 0  # large photos classified by their windows (a site adapter re-reads them afterwards)


PredictionSource = Callable[[Sequence, threading.Event | None], Iterable[list[Prediction]]]


def classify_into_workspace(workspace: Workspace, classifier: Classifier, items: Sequence[tuple[int, str]],
                            cancel: threading.Event | None = None,
                            on_batch: Callable[[list[tuple[int, Prediction]], int, int], None] | None = None,
                            source: PredictionSource | None = None,
                            on_features: Callable[[list[int], list[bytes]], None] | None = None) -> ClassifyReport:
    """Classify (image id, relative path) items, streaming each batch to `on_batch(pairs, done, total)`.
    Hashes and predictions are committed at most `FLUSH_SECONDS` apart (each commit is an fsync; per batch
    they cost ~10% of the throughput) and always before returning, even on cancel or error: a crash loses
    at most half a second of predictions, which a re-run recomputes. Labels are never at stake here.
    Large photos get the sliding-window verdict, with their tiles stored.
    `source(paths, cancel)` yields the batches of Predictions (index = position in `items`); by default the
    local pipeline, `classifier.classify`. Whatever the source, this thread alone stores the results.
    `on_features(image ids, stored feature bytes)` gets each batch's features as they are stored (encoded once)."""
    report = ClassifyReport(total=len(items))
    ids = [i for i, _ in items]
    paths = _JoinedPaths(workspace.folder, [p for _, p in items])
    done = 0
    hashes: list[tuple[int, str]] = []
    predictions: list[tuple[str, float, str]] = []
    features: list[tuple[str, bytes]] = []
    metas: list = []  # (hash, PhotoMeta): EXIF read from the header the classifier opened anyway
    last_flush = time.monotonic()

    def flush():
        # Queued back to back, so the writer mostly commits both in one transaction; both are waited for.
        stored_meta = workspace.set_photo_meta(metas, wait=False)
        workspace.set_results(classifier.key, hashes, predictions, features, wait=False).result()
        stored_meta.result()
        hashes.clear()
        predictions.clear()
        features.clear()
        metas.clear()

    batches = source(paths, cancel) if source is not None else classifier.classify(paths, cancel=cancel)
    try:
        for batch in batches:
            for p in batch:
                if p.tiles is not None and p.hash:
                    report.tiled += 1
                    workspace.set_tile_results(p.hash, classifier.key, p.tiles, wait=False)
                    if p.window_features is not None:
                        workspace.set_window_features(classifier.key, [(p.hash, len(p.tiles), *p.window_features)],
                                                      wait=False, projection=classifier.window_projection)
            hashes.extend((ids[p.index], p.hash) for p in batch if p.hash)
            predictions.extend((p.hash, p.p_crack, classifier.stored_label(p.p_crack)) for p in batch
                               if p.p_crack is not None and p.hash)
            with_features = [p for p in batch if p.features is not None and p.hash]
            if with_features:
                blobs = encode_features(np.stack([p.features for p in with_features]))
                features.extend(zip((p.hash for p in with_features), blobs))
                if on_features:
                    on_features([ids[p.index] for p in with_features], blobs)
            metas.extend((p.hash, p.meta) for p in batch if p.meta is not None and p.hash)
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                flush()
                last_flush = time.monotonic()
            for p in batch:
                if p.error:
                    report.errors.append((items[p.index][1], p.error))
                else:
                    report.classified += 1
                    report.crack += p.label == "crack"
            done += len(batch)
            if on_batch:
                on_batch([(ids[p.index], p) for p in batch], done, report.total)
    finally:
        # Stop the source here, not whenever the generator is collected: an exception (Ctrl-C in this loop)
        # would keep it alive in its traceback until after the caller had disconnected from a Ray cluster, and
        # closing a Ray Data job then made Ray start a local instance of its own.
        try:
            getattr(batches, "close", lambda: None)()
        finally:
            flush()
    report.cancelled = bool(cancel is not None and cancel.is_set() and done < report.total)
    return report
