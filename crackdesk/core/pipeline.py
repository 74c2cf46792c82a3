"""One pipeline for every photo, small patch or 24-megapixel camera photo.

A pool of threads reads, hashes and decodes the files while onnxruntime runs the previous batches (two side by
side on 2 cores or more, one thread each: `_ModelLanes`), so every core stays busy. A small image becomes one
model input, decoded at the model's size and normalised in the pool. A large photo (shorter side at least
`TILE_FACTOR` training patches) is classified the way the model was trained, by
sliding window: its bytes are read and hashed once in the pool, then a second pool task decodes it once at full
resolution and cuts its windows (`tiling.cut_tiles`), and the model's batches are filled with the windows of
consecutive photos, so the model never runs half-empty batches and the next photos are decoded while it works.

Memory stays bounded whatever the folder: at most `TILE_TASKS_AHEAD` large photos are decoded or cut ahead of the
model (a 12 Mpx photo is ~35 MB decoded and ~17 MB as 221 windows at 160 px), and the read-ahead of small images
is a few chunks. Results come back in input order, batch by batch; a bad file is an error entry, never an
exception; a cancel event stops it between model runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from .allocator import keep_freed_memory_for_reuse
from .errors import CrackDeskError
from .exif import PhotoMeta, read_meta
from .hashing import bytes_hash, read_file
from .images import decode_rgb, open_image

if TYPE_CHECKING:
    from PIL import Image

    from .inference import Classifier
    from .tiling import TileGrid

# A photo whose shorter side spans at least this many training patches is classified by sliding window:
# squashed into one model input, a hairline crack would vanish.
TILE_FACTOR = 2
TILE_TASKS_AHEAD = 3  # large photos decoded and cut ahead of the model: enough to keep 2 cores busy
HOLD_AT_MOST_S = 2.0  # a hold never stops classification for longer (a refit takes a fraction of a second)
QUEUED_BATCHES = 1  # model batches waiting behind the running ones, so a lane that finishes never waits for one
FIRST_CHUNK = 2  # photos per pool task until the folder shows it holds small images (then up to a batch)


def is_large(size: tuple[int, int] | None, patch_px: int) -> bool:
    return size is not None and min(size) >= TILE_FACTOR * patch_px


@dataclass
class Photo:
    """One file on its way through the pipeline, and what came out of it."""

    index: int  # position in the list of paths given to the pipeline
    path: Path
    hash: str | None = None
    error: str | None = None  # why it could not be read; nothing else is then set
    size: tuple[int, int] | None = None  # (width, height) as stored
    meta: PhotoMeta | None = None
    grid: TileGrid | None = None  # set for a photo classified by sliding window
    inputs: np.ndarray | None = field(default=None, repr=False)  # model inputs, NCHW float32 or NHWC uint8
    probs: np.ndarray | None = field(default=None, repr=False)  # P(crack) per input (per window), once run
    # The windows the inputs are, when a screening model settled the others (their P is then the screen's)
    input_windows: np.ndarray | None = field(default=None, repr=False)
    features: np.ndarray | None = field(default=None, repr=False)  # [D] of a small image
    # A large photo's windows that ran through the model, for a site head: [(window indices, [k, D] features)]
    window_features: list | None = field(default=None, repr=False)
    image: Image.Image | None = field(default=None, repr=False)  # the decoded photo, only when asked to keep it
    data: bytes | None = field(default=None, repr=False)  # a large photo's bytes, until its windows are cut
    slices_to_run: int = 0  # slices of its inputs handed to model batches and not run yet (run_photos' thread only)
    seconds: dict = field(default_factory=dict)  # read / decode / cut / model, for benchmarks

    @property
    def tiled(self) -> bool:
        return self.grid is not None

    @property
    def n_inputs(self) -> int:
        return 0 if self.inputs is None else len(self.inputs)


def failure_reason(e: BaseException) -> str:
    """What a photo that could not be read or decoded is reported with (here and on a cluster's workers)."""
    if isinstance(e, CrackDeskError):
        return e.reason
    if isinstance(e, OSError):
        return f"cannot read: {e.strerror or e}"
    return f"cannot decode ({type(e).__name__}: {e})"  # a decoder bug on one odd file must not stop a folder


def _failure(photo: Photo, e: BaseException) -> Photo:
    photo.error = failure_reason(e)
    photo.inputs = photo.data = photo.image = None
    return photo


def read_photo(classifier: Classifier, index: int, path: Path, data: bytes | None = None,
               tile_all: bool = False) -> Photo:
    """Read and hash a file (or hash the bytes given), parse its header (size, EXIF); a small image is decoded
    at the model's size right here, a large one (or any, with `tile_all`) keeps its bytes for `cut_photo`."""
    photo = Photo(index, Path(path))
    started = time.perf_counter()
    try:
        if data is None:
            data = read_file(photo.path)  # a regular file only, size-capped
        photo.hash = bytes_hash(data)
        opened = open_image(photo.path, data=data)  # parsed once: its size and EXIF, then maybe the decode
        photo.size = opened.size
        photo.meta = read_meta(opened)
        if tile_all or is_large(photo.size, classifier.info.patch_px):
            opened.close()
            photo.data = data
        else:
            h, w = classifier.pre.input_size
            photo.inputs = classifier.pre.to_uint8(decode_rgb(opened, photo.path, draft_size=(w, h)))[None]
    except Exception as e:
        return _failure(photo, e)
    photo.seconds["read"] = time.perf_counter() - started
    return photo


def read_chunk(classifier: Classifier, start: int, paths: Sequence, datas: Sequence[bytes | None] | None = None,
               tile_all: bool = False) -> tuple[list[Photo], np.ndarray | None]:
    """`read_photo` on consecutive files (index `start` on), and the small ones' inputs normalised together: the
    photos (each small one's `inputs` a row of the tensor) and that tensor, the model's batch (None if none).
    Normalised here, in the pool or a worker process: the thread feeding onnxruntime only runs it."""
    photos = [read_photo(classifier, start + i, Path(p), datas[i] if datas is not None else None, tile_all)
              for i, p in enumerate(paths)]
    small = [p for p in photos if p.inputs is not None]
    if not small:
        return photos, None
    tensor = classifier.pre.normalize(np.concatenate([p.inputs for p in small]))
    for i, p in enumerate(small):
        p.inputs = tensor[i:i + 1]
    return photos, tensor


def cut_photo(classifier: Classifier, photo: Photo, stride: int | None = None, keep_image: bool = False) -> Photo:
    """Decode a large photo once, at full resolution, and cut its windows (uint8, the model's input size)."""
    from .tiling import PRECUT_TILES, TileGrid, cut_tiles, load_for_heatmap

    started = time.perf_counter()
    try:
        image = load_for_heatmap(photo.path, photo.data)
        decoded = time.perf_counter()
        photo.grid = TileGrid.for_image(image.width, image.height, classifier.info.patch_px, stride)
        screen = getattr(classifier, "screen", None)
        if screen is not None and len(photo.grid) <= PRECUT_TILES:
            photo.probs = screen_windows(screen, image, photo.grid)
            photo.input_windows = np.flatnonzero(photo.probs >= classifier.screen_below)
            photo.inputs = cut_windows(image, photo.grid, classifier, photo.input_windows)
        elif len(photo.grid) <= PRECUT_TILES:
            photo.inputs = cut_tiles(image, photo.grid, classifier)
        else:  # a fine stride: thousands of windows, cut batch by batch from the photo instead
            photo.inputs = _LazyWindows(image, photo.grid, classifier)
    except Exception as e:
        return _failure(photo, e)
    photo.data = None
    photo.image = image if keep_image else None
    photo.seconds.update(decode=decoded - started, cut=time.perf_counter() - decoded)
    return photo


SCREEN_BATCH = 64


def screen_windows(screen: Classifier, image, grid: TileGrid) -> np.ndarray:
    """P(crack) of every window by the screening model (its own input size; runs here, in the pool)."""
    from .tiling import cut_tiles

    probs = np.empty(len(grid))
    for start in range(0, len(grid), SCREEN_BATCH):
        windows = cut_tiles(image, grid, screen, start, SCREEN_BATCH)
        probs[start:start + len(windows)] = screen.predict_tensor(screen.pre.normalize(windows))
    return probs


def cut_windows(image, grid: TileGrid, classifier: Classifier, indices: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8: the windows `indices` (row-major) at the model's input size."""
    h, w = classifier.pre.input_size
    out = np.empty((len(indices), h, w, 3), np.uint8)
    for k, i in enumerate(indices):
        x, y, tw, th = grid.box(int(i))
        out[k] = classifier.pre.to_uint8(image.crop((x, y, x + tw, y + th)))
    return out


class _LazyWindows:
    """A photo's windows cut on demand, a model batch at a time (`inputs[a:b]`), from the decoded photo."""

    dtype = np.uint8

    def __init__(self, image, grid, classifier):
        self.image, self.grid, self.classifier = image, grid, classifier

    def __len__(self) -> int:
        return len(self.grid)

    def __getitem__(self, part: slice) -> np.ndarray:
        from .tiling import cut_tiles

        return cut_tiles(self.image, self.grid, self.classifier, part.start, part.stop - part.start)


class _Chunks:
    """Pool tasks reading consecutive photos, a few at a time; chunks grow to a model batch once the folder shows
    small images (whose decode is the cheap part) and stay tiny while photos are large (held as bytes)."""

    def __init__(self, pool, classifier, paths, tile_all, datas):
        self.pool, self.classifier, self.paths, self.tile_all, self.datas = pool, classifier, paths, tile_all, datas
        self.next = 0
        self.size = FIRST_CHUNK
        self.pending: deque[Future] = deque()

    def submit(self) -> bool:
        if self.next >= len(self.paths):
            return False
        start, stop = self.next, min(len(self.paths), self.next + self.size)
        self.next = stop
        self.pending.append(self.pool.submit(self._read, start, stop))
        return True

    def _read(self, start: int, stop: int) -> list[Photo]:
        paths = self.paths[start:stop]  # sliced here, in the pool: building Paths is not the feeding thread's work
        datas = self.datas[start:stop] if self.datas is not None else None
        return read_chunk(self.classifier, start, paths, datas, self.tile_all)[0]

    def result(self) -> list[Photo]:
        photos = self.pending.popleft().result()
        if any(p.data is not None for p in photos):
            self.size = 1
        elif photos and self.size < self.classifier.batch_size:
            self.size = min(self.classifier.batch_size, self.size * 2)
        return photos

    def cancel(self) -> None:
        for f in self.pending:
            f.cancel()


def run_photos(classifier: Classifier, paths: Sequence, cancel: threading.Event | None = None,
               tile_all: bool = False, stride: int | None = None, keep_image: bool = False,
               datas: Sequence[bytes | None] | None = None, window_features: bool = False) -> Iterator[list[Photo]]:
    """Yield lists of finished Photos, in input order, as model runs complete (each large photo once all its
    windows ran). `paths` may be any sequence supporting len() and slicing (items become Paths in the pool);
    `datas`, when given, holds each file's bytes already read. Stops early when `cancel` is set. With
    `window_features`, a large photo keeps the features of the windows the model ran (for a site head)."""
    keep_freed_memory_for_reuse()  # one photo's buffers reused by the next, not unmapped and faulted in again
    workers = classifier.workers
    batch_size = classifier.batch_size
    with ThreadPoolExecutor(workers, thread_name_prefix="crackdesk-decode") as pool:
        chunks = _Chunks(pool, classifier, paths, tile_all, datas)
        for _ in range(workers * 3):  # bounded read-ahead: bounded memory
            if not chunks.submit():
                break
        ahead: deque[tuple[Photo, Future | None]] = deque()  # read, in order; large ones being cut
        cutting = 0  # entries of `ahead` with a cut task

        def fill_ahead() -> None:
            nonlocal cutting
            while chunks.pending and cutting < TILE_TASKS_AHEAD and len(ahead) < workers * batch_size:
                if ahead and not chunks.pending[0].done() and (cutting or len(ahead) >= batch_size):
                    break  # enough to feed the model meanwhile: do not wait for the pool
                for photo in chunks.result():
                    future = None
                    if photo.data is not None:
                        future = pool.submit(cut_photo, classifier, photo, stride, keep_image)
                        cutting += 1
                    ahead.append((photo, future))
                chunks.submit()

        running: list[tuple[Photo, int, int]] = []  # (photo, first, stop) slices of the next model batch
        filled = 0
        waiting: deque[Photo] = deque()  # taken from `ahead`, in order, until all their inputs have run
        lanes = _ModelLanes(classifier)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    return
                fill_ahead()
                if not ahead:  # everything read: run what is left, and stop
                    if running:
                        lanes.submit(running)
                        running, filled = [], 0
                    lanes.drain()
                    finished = _finished(waiting, lanes)
                    if finished:
                        yield finished
                    break
                photo, future = ahead.popleft()
                if future is not None:
                    cutting -= 1
                    future.result()
                if photo.inputs is not None and photo.probs is None:
                    photo.probs = np.empty(photo.n_inputs)
                if window_features and photo.tiled:
                    photo.window_features = []
                waiting.append(photo)
                first = 0
                while first < photo.n_inputs:  # its inputs, split across model batches
                    take = min(batch_size - filled, photo.n_inputs - first)
                    running.append((photo, first, first + take))
                    photo.slices_to_run += 1
                    filled, first = filled + take, first + take
                    if filled == batch_size:
                        lanes.submit(running)
                        running, filled = [], 0
                        if cancel is not None and cancel.is_set():
                            return
                finished = _finished(waiting, lanes)
                if finished:
                    yield finished
        finally:
            lanes.close()
            chunks.cancel()
            for _, future in ahead:
                if future is not None:
                    future.cancel()


_PHOTO_LOCK = threading.Lock()


def _run_batch(classifier: Classifier, running: list[tuple[Photo, int, int]]) -> None:
    """One onnxruntime call over slices of several photos' inputs (uint8 windows normalised here, per batch)."""
    started = time.perf_counter()
    parts = [photo.inputs[a:b] for photo, a, b in running]
    parts = [classifier.pre.normalize(x) if x.dtype == np.uint8 else x for x in parts]
    p, feats = classifier.run_tensor(parts[0] if len(parts) == 1 else np.concatenate(parts))
    seconds = time.perf_counter() - started
    offset = 0
    for photo, a, b in running:
        where = slice(a, b) if photo.input_windows is None else photo.input_windows[a:b]
        photo.probs[where] = p[offset:offset + b - a]
        if feats is not None and not photo.tiled:
            photo.features = feats[offset]
        with _PHOTO_LOCK:  # two lanes may finish slices of one photo at once
            if feats is not None and photo.window_features is not None:  # a site head rescores them (decision 38)
                photo.window_features.append((np.arange(len(photo.grid))[where], feats[offset:offset + b - a].copy()))
            photo.seconds["model"] = photo.seconds.get("model", 0.0) + seconds * (b - a) / len(p)
        offset += b - a


def _run_when_free(classifier: Classifier, running: list[tuple[Photo, int, int]]) -> None:
    """_run_batch, once no one waits for a refit (Classifier.hold): checked when the batch starts, not when it is
    queued, so a hold keeps even the queued batch back."""
    held = time.monotonic()
    while classifier.hold.is_set() and time.monotonic() - held < HOLD_AT_MOST_S:
        time.sleep(0.005)
    _run_batch(classifier, running)


class _ModelLanes:
    """Model batches in flight, up to `classifier.lanes` running at once, each on a thread of its own by a session
    with fewer intra-op threads. On 2 cores, two single-threaded runs side by side beat one run on two threads
    (10-20%, BENCHMARKS.md): no per-operator barrier waits for a thread that a decoder has just taken the core from.
    One more batch waits queued behind them, so a lane that finishes starts the next batch at once instead of idling
    until the thread feeding the pipeline (busy storing results, or waiting for the GIL) hands it one: that took the
    cores' idle time from 5-8% to 2-5% on 2,000 patches (BENCHMARKS.md, "Classification", runs G-I)."""

    def __init__(self, classifier: Classifier):
        self.classifier = classifier
        self.count = classifier.lanes
        self.pool = ThreadPoolExecutor(self.count, thread_name_prefix="crackdesk-model") if self.count > 1 else None
        self.flight: deque[tuple[Future, list]] = deque()  # (its run, the slices it covers), oldest first

    def submit(self, running: list[tuple[Photo, int, int]]) -> None:
        if self.pool is None:
            _run_when_free(self.classifier, running)
            _ran(running)
            return
        while len(self.flight) >= self.count + QUEUED_BATCHES:  # all busy, the queue full: wait for the oldest
            self._reap(self.flight.popleft())
        self.flight.append((self.pool.submit(_run_when_free, self.classifier, running), running))

    def reap(self) -> None:
        """Count the finished runs off their photos (a finished run's error is raised here)."""
        if any(future.done() for future, _ in self.flight):
            for item in [item for item in self.flight if item[0].done()]:
                self.flight.remove(item)
                self._reap(item)

    @staticmethod
    def _reap(item: tuple[Future, list]) -> None:
        item[0].result()
        _ran(item[1])

    def drain(self) -> None:
        while self.flight:
            self._reap(self.flight.popleft())

    def close(self) -> None:
        """Wait for the runs in flight (they write into photos the caller may still hold), then stop."""
        if self.pool is not None:
            for future, _ in self.flight:
                future.cancel()
            self.pool.shutdown(wait=True)


def _ran(running: list[tuple[Photo, int, int]]) -> None:
    for photo, _, _ in running:
        photo.slices_to_run -= 1


def _finished(waiting: deque[Photo], lanes: _ModelLanes) -> list[Photo]:
    """Photos at the front whose inputs have all run (none in the batch being filled or a run in flight); their
    inputs freed. Counting slices per photo keeps this a few steps a photo, whatever the runs in flight."""
    lanes.reap()
    out = []
    while waiting and waiting[0].slices_to_run == 0:
        photo = waiting.popleft()
        photo.inputs = None
        out.append(photo)
    return out
