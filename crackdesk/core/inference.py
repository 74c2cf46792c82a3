"""Classifying images with a CrackDesk model: the Classifier (one onnxruntime session, the model's
preprocessing and threshold) and its Predictions. The pipeline that feeds it is core/pipeline.py."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from .datasets import CRACK, NO_CRACK
from .exif import PhotoMeta
from .hashing import bytes_hash, read_file
from .models import LoadedModel, shared_model
from .photo_verdict import photo_verdict


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
    # Of a tiled photo, the windows the model ran: (indices into `tiles`, [k, D] features), for a site head
    window_features: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)


def read_and_hash(path: Path) -> tuple[bytes, str]:
    """The file's bytes (a regular file only, size-capped) and their content hash, from one read."""
    data = read_file(path)
    return data, bytes_hash(data)


IMAGES_IN_FLIGHT = 16  # model inputs running together, one batch per lane (pipeline._ModelLanes queues one more)


def model_lanes(cores: int) -> int:
    """How many model batches run side by side: two where there are two cores or more (measured on 2 cores:
    BENCHMARKS.md, "Classification"), each with half the cores. CRACKDESK_MODEL_LANES overrides it (1: one batch
    at a time on every core, as before; for comparisons and for machines where that measures faster)."""
    override = os.environ.get("CRACKDESK_MODEL_LANES", "").strip()
    if override.isdigit() and int(override) >= 1:
        return min(int(override), cores)
    return 2 if cores >= 2 else 1


def predicted_label(p_crack: float, threshold: float) -> str:
    """The one definition of "predicted": crack when P(crack) reaches the threshold."""
    return CRACK if p_crack >= threshold else NO_CRACK


class Classifier:
    def __init__(self, model: LoadedModel | str | Path, batch_size: int | None = None, workers: int | None = None,
                 threshold: float | None = None, exact: bool = False, lanes: int | None = None):
        # The pipeline runs `lanes` model batches side by side (pipeline._ModelLanes), each on a session with its
        # share of the cores; a session whose idle threads sleep instead of spinning, so decoding threads get the
        # cores while the model waits for the next batch. A model loaded by the caller keeps its own threads.
        cores = max(1, os.cpu_count() or 1)
        if isinstance(model, LoadedModel):
            self.lanes = lanes or 1
            self.model = model
        else:
            self.lanes = lanes or model_lanes(cores)
            self.model = shared_model(model, threads=max(1, cores // self.lanes))
        self.info = self.model.info
        self.pre = self.info.preprocessing
        # Images in flight stay IMAGES_IN_FLIGHT whatever the lanes: two lanes of 8 ran as fast as two of 16 and
        # peaked 130 MB lower (less than one lane of 16), BENCHMARKS.md.
        self.batch_size = max(1, int(batch_size or IMAGES_IN_FLIGHT // self.lanes))
        self.workers = workers or max(1, os.cpu_count() or 1)
        # `threshold` (e.g. `classify --threshold`) labels this run's results; the workspace always records the
        # model's own verdict, so the app, its CSV export and the stored counts agree whatever a run asked for.
        self.threshold = float(threshold if threshold is not None else self.info.threshold)
        self.session = self.model.session
        self.input_name = self.session.get_inputs()[0].name
        # Model format 2 graphs also output their penultimate features (what the site head is fitted on).
        self.features_name = self.info.features["output"] if self.info.features else None
        self.outputs = [self.session.get_outputs()[0].name] + ([self.features_name] if self.features_name else [])
        # A model whose metadata names a screening model (`screen`) lets it settle the windows of large photos it
        # puts below `below`; `exact` (or a screen that is not installed) runs every window through this model.
        self.screen: Classifier | None = None
        self.screen_below = 0.0
        self.screen_note = ""
        # Set while work the user is waiting for runs (a site refit after a label): the pipeline starts no model
        # batch meanwhile, so that work is not starved of the GIL and the cores by throughput work.
        self.hold = threading.Event()
        if self.info.screen and not exact:
            self._attach_screen()

    def _attach_screen(self) -> None:
        from .errors import ModelError
        from .models import related_model

        key = self.info.screen["model"]
        try:
            entry = related_model(self.info, key)
            if entry is None:
                raise ModelError(f"{key} is not installed")
            # one thread: it runs in the decoding pool's threads, which give the parallelism
            self.screen = Classifier(shared_model(entry.path, threads=1), exact=True)
            self.screen_below = float(self.info.screen["below"])
        except ModelError as e:
            self.screen_note = (f"screening model {key} unavailable ({e.reason}): every window of a large photo runs "
                                f"through {self.key}")

    @cached_property
    def window_projection(self):
        """The basis a large photo's window features are stored in (its replay memory's, decision 48), or None."""
        from .memory import memory_path
        from .projection import load_projection

        if self.features_name is None or self.info.path is None:
            return None
        return load_projection(memory_path(self.info.path), self.info.features["dim"])

    def unscreen(self, note: str) -> None:
        """Run every window of the large photos read from now on through this model (the pool reads `screen` per
        photo; those already cut keep their screen's P). Safe while a classification runs."""
        self.screen = None
        self.screen_note = note

    @property
    def key(self) -> str:
        return self.model.key

    @property
    def how(self) -> str:
        """How large photos' windows are classified, for summaries."""
        if self.screen is None:
            return ""
        return f"windows screened by {self.screen.key} (below {self.screen_below:g} settled by it)"

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

    # -- one image's preparation (what the pool does) -------------------------------------------
    def prepare(self, path: Path) -> tuple[np.ndarray | None, str | None, str | None, tuple[int, int] | None]:
        """(uint8 HWC input of a small image, content hash, error, stored size). Never raises for a bad file."""
        from .pipeline import read_photo

        photo = read_photo(self, 0, Path(path))
        return (photo.inputs[0] if photo.inputs is not None else None), photo.hash, photo.error, photo.size

    # -- the pipeline -----------------------------------------------------------------------------
    def classify(self, paths: Sequence[str | Path], cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 datas: Sequence[bytes | None] | None = None) -> Iterator[list[Prediction]]:
        """Yield a list of Predictions per model batch, in input order (core/pipeline.py: large photos by sliding
        window, their verdict from their windows). Stops early when `cancel` is set. `paths` may be any sequence
        supporting len() and slicing; `datas`, each file's bytes when already read."""
        from .pipeline import run_photos

        total, done = len(paths), 0
        for photos in run_photos(self, paths, cancel, datas=datas, window_features=self.features_name is not None):
            done += len(photos)
            if progress:
                progress(done, total)
            yield [self.prediction(photo) for photo in photos]

    def prediction(self, photo) -> Prediction:
        """A pipeline Photo as a Prediction: a tiled photo's P(crack) is its verdict's (core/photo_verdict.py)."""
        if photo.error is not None or photo.probs is None:
            return Prediction(photo.index, photo.path, photo.hash, None, None, photo.error or "not classified",
                              photo.size, None, photo.meta)
        if not photo.tiled:
            p = float(photo.probs[0])
            return Prediction(photo.index, photo.path, photo.hash, p, self.label_for(p), None, photo.size,
                              photo.features, photo.meta)
        heatmap = self.heatmap(photo)
        p = self.photo_p(heatmap.probs)
        windows = None
        if photo.window_features:  # slices come back in the order the model lanes finished them: sorted here
            index = np.concatenate([w for w, _ in photo.window_features])
            order = np.argsort(index, kind="stable")
            windows = (index[order], np.concatenate([f for _, f in photo.window_features])[order])
        return Prediction(photo.index, photo.path, photo.hash, p, self.label_for(p), None, photo.size, None,
                          photo.meta, heatmap.tiles(), windows)

    def photo_p(self, grid: np.ndarray) -> float:
        """A tiled photo's P(crack) from its windows' grid by the verdict rule (core/photo_verdict.py), at the
        model's own threshold: the one the workspace records (a run's --threshold only labels the run)."""
        return photo_verdict(grid, self.info.threshold).p_crack

    def heatmap(self, photo):
        from .tiling import Heatmap

        return Heatmap(photo.grid, photo.probs.reshape(photo.grid.shape), self.threshold, self.key, photo.path,
                       photo.hash, dict(photo.seconds))


def classify_all(model, paths, **kwargs) -> list[Prediction]:
    """Convenience for scripts and tests: every prediction in one list."""
    classifier = model if isinstance(model, Classifier) else Classifier(model, **kwargs)
    return [p for batch in classifier.classify(paths) for p in batch]
