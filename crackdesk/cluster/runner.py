"""Classifying on a Ray cluster: a Ray Data pipeline whose results feed the same seam as the local pipeline.

    rows (index, path[, bytes])  --map_batches(prepare_batch), tasks-->  one model input per row
                                 --map_batches(ModelStage), actor pool-->  P(crack) (+ features) per row
                                 --iter_batches, on the driver-->  Predictions, whole photos put back together

The driver only lists, assembles and stores: `classify_into_workspace` consumes `ClusterSource` exactly as it
consumes the local `Classifier.classify`, so the workspace, its single writer, the CSV and the summary are the
local ones. Results arrive in any order (a row's `index` says whose it is); a row seen twice (a retried task's
output) is dropped, so nothing is stored twice.
"""

from __future__ import annotations

import pickle
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .. import __version__
from ..core.errors import CrackDeskError
from ..core.hashing import read_file
from ..core.inference import Classifier, Prediction
from ..core.tiling import heatmap_of_rows
from ..core.pipeline import failure_reason
from .worker import ROWS_PER_OUTPUT, ModelStage, prepare_batch

# Photos per input block (one task each): results stream back a block at a time, so small blocks keep the
# pipeline full and the progress bar moving; Ray's per-task overhead (a few ms) stays a few percent.
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 8, 64
MODEL_BATCH = 32  # model inputs per actor call
# Photos per Ray Data job when workers read the files: a job's start costs ~10 s (its worker processes), so one
# job for any real archive; a million paths are ~80 MB of Arrow blocks in the object store.
PATH_WINDOW = 1_000_000
SHIP_WINDOW_BYTES = 256 << 20  # bytes shipped per job with --ship-bytes: what the driver holds at most, twice
SHIP_BLOCK_BYTES = 16 << 20
TASK_RETRIES = 3  # a task whose worker died is re-run this often; past that the job stops with Ray's error
ACTOR_RESTARTS = 3  # per actor: a model worker that died is restarted, its unfinished calls re-sent


@dataclass
class ClusterStats:
    """Where a cluster job's time went, seen from the driver (for the summary and the benchmark)."""

    started: float = field(default_factory=time.perf_counter)
    first_result: float | None = None  # seconds from the job's start to the first result
    jobs: int = 0  # Ray Data executions (one per window)
    photos: int = 0
    inputs: int = 0  # model inputs (a large photo's windows each count)
    duplicates: int = 0
    ray_stats: list[str] = field(default_factory=list)  # Ray Data's per-operator report of each execution


def plan(cluster_cpus: float, cluster_gpus: float) -> dict:
    """How to split the cluster between the stages. With GPUs: one model actor per GPU. Without: one single-threaded
    model actor per CPU, reserving 3/4 of it, and reading tasks of 1/4 CPU in the rest, so the cores are shared
    the way the local pipeline shares them (a model lane per core, decoders beside them). The model is 2/3 of the
    work on patches and 4/5 on camera photos; with one 1-CPU actor per two CPUs (as before) a 2-CPU node ran
    camera photos at 150 windows/s with its second core mostly idle, with two actors at 217 (BENCHMARKS.md)."""
    if cluster_gpus >= 1:
        return {"actors": int(cluster_gpus), "actor_cpus": 1.0, "actor_gpus": 1.0, "task_cpus": 0.5}
    return {"actors": max(1, int(cluster_cpus)), "actor_cpus": 0.75, "actor_gpus": 0.0, "task_cpus": 0.25}


def output_block_bytes(info) -> int:
    """Ray Data merges what a task yields into blocks of up to 128 MiB by default: a block of camera photos then
    held 8 photos' 1,768 windows, the model stage ran and returned that block whole, and the first result of a
    24-photo job came after 42 s of its 42. A bound of 3/4 of one yield (worker.ROWS_PER_OUTPUT model inputs)
    keeps every yield a block of its own (Ray cuts a block only past 1.5x the bound): results stream a photo at a
    time, and no block holds more than 64 windows."""
    h, w = info.preprocessing.input_size
    return ROWS_PER_OUTPUT * h * w * 3 * 3 // 4


class ClusterSource:
    """`source(paths, cancel)` for `classify_into_workspace`: yields lists of Predictions computed on the
    cluster this process is connected to (crackdesk/cluster/__init__.py connects)."""

    def __init__(self, classifier: Classifier, ship_bytes: bool = False, address: str = ""):
        self.classifier = classifier
        self.address = address
        self.model_bytes = Path(classifier.info.path).read_bytes()  # the ONNX file carries its metadata
        self.ship_bytes = ship_bytes
        self.interrupted = False  # Ctrl-C stopped the job: what finished was yielded (and so stored)
        self.stats = ClusterStats()
        self._jobs = weakref.WeakSet()  # generators not finished yet: closed by close()

    def __call__(self, paths: Sequence, cancel: threading.Event | None = None) -> Iterator[list[Prediction]]:
        jobs = self._run(paths, cancel)
        self._jobs.add(jobs)
        return jobs

    def close(self) -> None:
        """Stop what is still running, while this process is connected: a job left to the garbage collector
        (Ctrl-C in the consumer keeps it in the traceback) was closed after the disconnect, and Ray's cleanup then
        started a local Ray instance (which, among other things, left ~/.ray/auth_token behind)."""
        for jobs in list(self._jobs):
            jobs.close()

    def _run(self, paths: Sequence, cancel: threading.Event | None) -> Iterator[list[Prediction]]:
        import ray

        self.stats = ClusterStats()
        model_ref = ray.put(self.model_bytes)
        resources = ray.cluster_resources()
        layout = plan(resources.get("CPU", 1.0), resources.get("GPU", 0.0))
        try:
            for window, early in self._windows(paths):
                if early:  # files the driver could not read for shipping: reported like any unreadable photo
                    yield early
                if window is not None:
                    yield from self._run_window(window, paths, model_ref, layout, cancel)
                if cancel is not None and cancel.is_set():
                    return
        except KeyboardInterrupt:
            # Stop consuming; leaving this generator closes Ray Data's iterator, which stops the job's tasks
            # and actors (the cluster itself keeps running). The caller stores what was yielded.
            self.interrupted = True

    def summary(self) -> str:
        """For the summary line: where it ran and how the photos got there."""
        how = "photos shipped from this machine" if self.ship_bytes else \
            "photos read by the workers from the shared path"
        return f"on the Ray cluster at {self.address}, {how}"

    def interrupted_note(self, stored: int, total: int) -> str:
        return (f"interrupted: the {stored:,} of {total:,} photos that finished are stored; "
                "the cluster keeps running")

    # -- the job's input ---------------------------------------------------------------------------
    def _windows(self, paths: Sequence):
        """(list of pyarrow tables = blocks, driver-side error Predictions) per Ray Data job. Workers reading
        the shared path need one job; shipped bytes are read window by window (the next one while the cluster
        works on this one), so the driver never holds more than two windows of photos."""
        total = len(paths)
        if not self.ship_bytes:
            for start in range(0, total, PATH_WINDOW):
                chunk = paths[start:start + PATH_WINDOW]
                yield self._path_blocks(start, chunk), []
            return
        with ThreadPoolExecutor(1, thread_name_prefix="crackdesk-ship") as reader:
            ahead = reader.submit(self._read_window, paths, 0)
            while ahead is not None:
                blocks, early, end = ahead.result()
                ahead = reader.submit(self._read_window, paths, end) if end < total else None
                yield (blocks or None), early

    def _block_rows(self, total: int) -> int:
        import ray

        cpus = max(1.0, ray.cluster_resources().get("CPU", 1.0))
        return int(min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, total // (4 * cpus))))

    def _path_blocks(self, start: int, chunk: list) -> list:
        import pyarrow as pa

        step = self._block_rows(len(chunk))
        return [pa.table({"index": np.arange(start + s, start + s + len(chunk[s:s + step]), dtype=np.int64),
                          "path": pa.array([str(p) for p in chunk[s:s + step]], pa.string())})
                for s in range(0, len(chunk), step)]

    def _read_window(self, paths: Sequence, start: int):
        """Read photos from `start` until SHIP_WINDOW_BYTES: (blocks, error Predictions, next start)."""
        import pyarrow as pa

        blocks, early, rows, block_bytes, window_bytes = [], [], [], 0, 0
        step = self._block_rows(len(paths))

        def close_block():
            nonlocal rows, block_bytes
            if rows:
                blocks.append(pa.table({"index": pa.array([r[0] for r in rows], pa.int64()),
                                        "path": pa.array([r[1] for r in rows], pa.string()),
                                        "data": pa.array([r[2] for r in rows], pa.binary())}))
            rows, block_bytes = [], 0

        end = start
        while end < len(paths) and window_bytes < SHIP_WINDOW_BYTES:
            path = paths[end]
            try:
                data = read_file(path)
            except Exception as e:
                early.append(Prediction(end, Path(path), None, None, None, failure_reason(e)))
            else:
                rows.append((end, str(path), data))
                block_bytes += len(data)
                window_bytes += len(data)
                if len(rows) >= step or block_bytes >= SHIP_BLOCK_BYTES:
                    close_block()
            end += 1
        close_block()
        return blocks, early, end

    # -- one Ray Data job --------------------------------------------------------------------------
    def _run_window(self, blocks: list, paths: Sequence, model_ref, layout: dict,
                    cancel: threading.Event | None) -> Iterator[list[Prediction]]:
        import warnings

        import ray

        info = self.classifier.info
        with warnings.catch_warnings():
            # Retry counts are still passed as Ray remote arguments in 2.60 (named ones do not cover them).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            ray.data.DataContext.get_current().target_max_block_size = output_block_bytes(info)
            ds = ray.data.from_arrow(blocks)
            ds = ds.map_batches(prepare_batch, fn_kwargs={"info": info},
                                batch_size=None, num_cpus=layout["task_cpus"], max_retries=TASK_RETRIES)
            ds = ds.map_batches(ModelStage, fn_constructor_kwargs={"model": [model_ref], "version": __version__},
                                batch_size=MODEL_BATCH,
                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=layout["actors"]),
                                num_cpus=layout["actor_cpus"], num_gpus=layout["actor_gpus"] or None,
                                max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES)
        assembler = Assembler(self.classifier, paths)
        self.stats.jobs += 1
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        try:
            for batch in batches:
                if self.stats.first_result is None:
                    self.stats.first_result = time.perf_counter() - self.stats.started
                done = assembler.add(batch)
                self.stats.inputs += len(batch["index"])
                if done:
                    self.stats.photos += len(done)
                    yield done
                if cancel is not None and cancel.is_set():
                    return
        except ray.exceptions.RayError as e:
            raise CrackDeskError(f"the cluster job failed: {first_line(e)}") from None
        finally:
            getattr(batches, "close", lambda: None)()  # stops the job's remaining tasks and actors when we leave early
            self.stats.duplicates += assembler.duplicates
            try:
                self.stats.ray_stats.append(ds.stats())
            except Exception:  # the stats of a job stopped early may be incomplete; they are only a report
                pass


class Assembler:
    """Rows from the model stage -> Predictions: whole photos at once, a large photo when its last window
    arrives. Rows of a photo already complete (a retried task's second output) are counted and dropped."""

    def __init__(self, classifier: Classifier, paths: Sequence):
        self.classifier = classifier
        self.paths = paths
        self.finished = bytearray(len(paths))  # one byte a photo: a million photos, 1 MB
        self.partial: dict[int, dict] = {}  # a large photo's windows so far
        self.duplicates = 0

    def add(self, batch: dict) -> list[Prediction]:
        done = []
        features = batch["features"]
        for k, (index, part, nparts) in enumerate(zip(batch["index"].tolist(), batch["part"].tolist(),
                                                      batch["nparts"].tolist())):
            if self.finished[index]:
                self.duplicates += 1
                continue
            if nparts <= 1:  # unreadable (0) or classified whole (1)
                facts = pickle.loads(batch["info"][k])
                p = None if nparts == 0 else float(batch["p"][k])
                vector = np.frombuffer(features[k], np.float32) if nparts == 1 and len(features[k]) else None
                done.append(self._prediction(index, facts, p, vector, None))
                continue
            pending = self.partial.setdefault(index, {"probs": np.full(nparts, np.nan), "facts": None,
                                                      "features": [None] * nparts})
            if not np.isnan(pending["probs"][part]):
                self.duplicates += 1
                continue
            pending["probs"][part] = batch["p"][k]
            if len(features[k]):
                pending["features"][part] = np.frombuffer(features[k], np.float32)
            if part == 0:
                pending["facts"] = pickle.loads(batch["info"][k])
            if not np.isnan(pending["probs"]).any():
                del self.partial[index]
                facts, probs, vectors = pending["facts"], pending["probs"], pending["features"]
                tiles = [(*box, float(p)) for box, p in zip(facts["boxes"], probs)]
                grid = heatmap_of_rows(tiles, self.classifier.info.threshold).probs
                windows = None  # every window ran through the model: all of them, for a site head (decision 38)
                if all(v is not None for v in vectors):
                    windows = (np.arange(nparts), np.stack(vectors))
                done.append(self._prediction(index, facts, self.classifier.photo_p(grid), None, tiles, windows))
        return done

    def _prediction(self, index: int, facts: dict, p: float | None, vector, tiles, windows=None) -> Prediction:
        self.finished[index] = 1
        label = self.classifier.label_for(p) if p is not None else None
        return Prediction(index, Path(self.paths[index]), facts["hash"], p, label, facts["error"], facts["size"],
                          vector, facts["meta"], tiles, windows)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[-1] if text else type(error).__name__)[:300]
