"""Batched classification: images are read, hashed, decoded and preprocessed by a pool of threads while
onnxruntime runs the previous batch, so every core stays busy (decoding, not the model, is the
bottleneck on small machines). Results stream back batch by batch; a bad file becomes an error entry,
never an exception; a cancel event stops it between batches.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from .datasets import CRACK, NO_CRACK
from .errors import ImageError
from .exif import PhotoMeta, read_meta
from .hashing import bytes_hash, read_file
from .images import decode_rgb, open_image
from .models import LoadedModel, load_model


@dataclass(frozen=True)
class Prediction:
    index: int  # position in the list of paths given to classify()
    path: Path
    hash: str | None
    p_crack: float | None  # None when the image could not be read
    label: str | None  # CRACK / NO_CRACK at the threshold used
    error: str | None = None  # why the image could not be read
    size: tuple[int, int] | None = None  # (width, height) of the file as stored, before any shrinking
    features: np.ndarray | None = field(default=None, repr=False, compare=False)  # [D] penultimate features
    meta: PhotoMeta | None = field(default=None, repr=False, compare=False)  # EXIF, from the header already read
    # A large photo's windows, (x, y, w, h, p_crack) row-major, when the pipeline tiled it (p_crack is then the
    # photo verdict's); None for a photo classified whole.
    tiles: list | None = field(default=None, repr=False, compare=False)


def read_and_hash(path: Path) -> tuple[bytes, str]:
    """The file's bytes (a regular file only, size-capped) and their content hash, from one read."""
    data = read_file(path)
    return data, bytes_hash(data)


def predicted_label(p_crack: float, threshold: float) -> str:
    """The one definition of "predicted": crack when P(crack) reaches the threshold."""
    return CRACK if p_crack >= threshold else NO_CRACK


class Classifier:
    def __init__(self, model: LoadedModel | str | Path, batch_size: int = 16, workers: int | None = None,
                 threshold: float | None = None):
        # A session whose idle threads sleep instead of spinning, so decoding threads get the cores
        # while the model waits for the next batch.
        self.model = model if isinstance(model, LoadedModel) else load_model(model, spinning=False)
        self.info = self.model.info
        self.pre = self.info.preprocessing
        self.batch_size = max(1, int(batch_size))
        self.workers = workers or max(1, os.cpu_count() or 1)
        # `threshold` (e.g. `classify --threshold`) labels this run's results; the workspace always records the
        # model's own verdict, so the app, its CSV export and the stored counts agree whatever a run asked for.
        self.threshold = float(threshold if threshold is not None else self.info.threshold)
        self.session = self.model.session
        self.input_name = self.session.get_inputs()[0].name
        # Model format 2 graphs also output their penultimate features (what the site head is fitted on).
        self.features_name = self.info.features["output"] if self.info.features else None
        self.outputs = [self.session.get_outputs()[0].name] + ([self.features_name] if self.features_name else [])

    @property
    def key(self) -> str:
        return self.model.key

    # -- the model alone --------------------------------------------------------------------------
    def predict_tensor(self, batch: np.ndarray) -> np.ndarray:
        """P(crack) for an NCHW float32 batch."""
        return self.run_tensor(batch)[0]

    def run_tensor(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(P(crack) [N], features [N, D] or None) for an NCHW float32 batch, from one run of the graph."""
        outs = self.session.run(self.outputs, {self.input_name: batch})
        out = np.asarray(outs[0], dtype=np.float64)
        p = out[:, self.info.positive_index] if self.info.output == "softmax" else out.reshape(len(batch))
        return p, (np.asarray(outs[1], np.float32) if self.features_name else None)

    def label_for(self, p_crack: float) -> str:
        return predicted_label(p_crack, self.threshold)

    def stored_label(self, p_crack: float) -> str:
        """The verdict the workspace records: at the model's own threshold."""
        return predicted_label(p_crack, self.info.threshold)

    # -- one image's preparation (runs in the pool) ----------------------------------------------
    def prepare(self, path: Path) -> tuple[np.ndarray | None, str | None, str | None, tuple[int, int] | None]:
        """(uint8 HWC input, content hash, error, stored size). Never raises for a bad file."""
        return self.prepare_photo(path)[:4]

    def prepare_photo(self, path: Path):
        """`prepare`, and the photo's metadata (EXIF) from the header it opened: (..., PhotoMeta or None)."""
        digest = size = meta = None
        try:
            data, digest = read_and_hash(path)
            h, w = self.pre.input_size
            opened = open_image(path, data=data)  # parsed once: its stored size and EXIF, then the decode
            size = opened.size
            meta = read_meta(opened)
            image = decode_rgb(opened, path, draft_size=(w, h))
            return self.pre.to_uint8(image), digest, None, size, meta
        except ImageError as e:
            return None, digest, e.reason, size, meta
        except OSError as e:
            return None, digest, f"cannot read: {e.strerror or e}", size, meta
        except Exception as e:  # a decoder bug on one odd file must not stop a batch of thousands
            return None, digest, f"cannot decode ({type(e).__name__}: {e})", size, meta

    def _prepare_batch(self, start: int, paths: Sequence[Path]):
        """Decode a chunk and normalise it here, in the pool: the thread feeding onnxruntime only runs it."""
        paths = [Path(p) for p in paths]
        prepared = [self.prepare_photo(p) for p in paths]
        good = [item[0] for item in prepared if item[0] is not None]
        tensor = self.pre.normalize(np.stack(good)) if good else None
        return start, paths, prepared, tensor

    def _finish_batch(self, start, paths, prepared, tensors: list[np.ndarray]) -> list[Prediction]:
        good = [i for i, item in enumerate(prepared) if item[0] is not None]
        probs, feats = {}, {}
        if good:
            batch = tensors[0] if len(tensors) == 1 else np.concatenate(tensors)
            p_all, f_all = self.run_tensor(batch)
            for k, i in enumerate(good):
                probs[i] = float(p_all[k])
                if f_all is not None:
                    feats[i] = f_all[k]
        results = []
        for i, (path, (_, digest, error, size, meta)) in enumerate(zip(paths, prepared)):
            p = probs.get(i)
            results.append(Prediction(start + i, Path(path), digest, p,
                                      self.label_for(p) if p is not None else None, error, size, feats.get(i),
                                      meta))
        return results

    # -- the pipeline -----------------------------------------------------------------------------
    def classify(self, paths: Sequence[str | Path], cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Iterator[list[Prediction]]:
        """Yield a list of Predictions per batch, in input order. Stops early when `cancel` is set.
        `paths` may be any sequence supporting len() and slicing; items become Paths chunk by chunk, in the
        pool (turning 40,000 of them into Paths up front is ~0.1 s of pure Python that a GUI thread feels)."""
        total = len(paths)
        # Small chunks keep all workers busy and results flowing; the model gets whole batches.
        chunk = max(1, min(self.batch_size, -(-total // (self.workers * 2)) if total else 1))
        starts = range(0, total, chunk)
        done = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="crackdesk-decode") as pool:
            pending: deque = deque()
            next_start = iter(starts)
            in_flight = self.workers * 3  # bounded read-ahead: bounded memory

            def submit_one() -> bool:
                s = next(next_start, None)
                if s is None:
                    return False
                pending.append(pool.submit(self._prepare_batch, s, paths[s:s + chunk]))
                return True

            for _ in range(in_flight):
                if not submit_one():
                    break
            buffer: list = []  # prepared chunks waiting to fill a model batch
            while pending:
                if cancel is not None and cancel.is_set():
                    for f in pending:
                        f.cancel()
                    return
                buffer.append(pending.popleft().result())
                submit_one()
                if sum(len(b[1]) for b in buffer) >= self.batch_size or not pending:
                    start = buffer[0][0]
                    merged_paths = [p for b in buffer for p in b[1]]
                    merged = [x for b in buffer for x in b[2]]
                    tensors = [b[3] for b in buffer if b[3] is not None]
                    buffer = []
                    results = self._finish_batch(start, merged_paths, merged, tensors)
                    done += len(results)
                    if progress:
                        progress(done, total)
                    yield results


def classify_all(model, paths, **kwargs) -> list[Prediction]:
    """Convenience for scripts and tests: every prediction in one list."""
    classifier = model if isinstance(model, Classifier) else Classifier(model, **kwargs)
    return [p for batch in classifier.classify(paths) for p in batch]
