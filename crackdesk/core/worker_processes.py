"""Small images classified in worker processes, for `crackdesk classify` on folders of patches (decision 51).

The threaded pipeline (core/pipeline.py) keeps two cores busy, but its threads share one interpreter: with a model
as fast as `mobilenetv2-int8`, handing work between them and the GIL cost 5-7% against processes that share
nothing but the cores (BENCHMARKS.md). Here each worker process reads, hashes, decodes and runs its chunks of small
images with the app's own `read_photo` and a one-thread session of the same model file; this process classifies
chunks too, and yields them all in order, as a `classify_into_workspace` source: the storing stays the workspace's
one writer's.

A photo large enough for windows is not the workers' job: at the first one, the rest of the list (that photo on)
goes through the threaded pipeline, which keeps large photos' windows, screening and features in one place. So
does the rest of the list when a worker stops (killed, out of memory, a decoder crash), with `note` saying so: a
folder is never left half done by a worker. `crackdesk classify` starts them first thing (`start_workers`), so
they import while this process starts and scans, keeps them if the folder proves worth it (`small_image_workers`)
and tells them the model file when the run begins; this process classifies meanwhile.
"""

from __future__ import annotations

import itertools
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .images import open_image
from .inference import Classifier, Prediction
from .models import available_providers
from .pipeline import Photo, is_large, read_chunk
from .selfcommand import WORKER_COMMAND, crackdesk_command

CHUNK = 8  # small images a task: a model batch, as each of the threaded pipeline's two lanes runs
TASKS_AHEAD = 3  # chunks queued per worker: enough that none waits for this process, memory stays bounded
# Below this many images a worker's start (imports and a session: 0.25 s of a core) is not won back: 300 patches
# took 0.06-0.08 s longer than with threads alone, 1,000 as long or up to 0.05 s less (BENCHMARKS.md).
MIN_IMAGES = 1000
LEAD_AT_MOST = 64  # chunks finished ahead of the one due (this process's while the workers start): bounded memory
STALL_SECONDS = 120.0  # a worker that returns nothing for this long is taken as stopped (8 small images take ms)
LARGE = "large"  # a worker's answer for a photo large enough for windows


def worker_count(cores: int | None = None) -> int:
    """Worker processes beside this one, which classifies too: one per other core, none on one core.
    CRACKDESK_WORKER_PROCESSES overrides it (0: the threaded pipeline always, for comparisons)."""
    if os.name != "posix":  # select() on pipes and new sessions are POSIX's; elsewhere the threads do it all
        return 0
    override = os.environ.get("CRACKDESK_WORKER_PROCESSES", "").strip()
    if override.isdigit():
        return int(override)
    return max(0, (cores or os.cpu_count() or 1) - 1)


def start_workers() -> SmallImageWorkers | None:
    """Workers started before it is known whether the run wants them, so that they import on the core this process
    leaves idle while it starts and scans; `small_image_workers` then keeps or stops them."""
    count = worker_count()
    return SmallImageWorkers(count) if count >= 1 else None


def small_image_workers(folder: Path, relpaths: Sequence[str], patch_px: int,
                        started: SmallImageWorkers | None = None) -> SmallImageWorkers | None:
    """Workers for classifying these files (`started` ones if given, else new ones), or None where the threaded
    pipeline is the better choice: a short list, one core, a GPU, or a folder whose first file is a photo large
    enough for windows (`started` ones are then stopped)."""
    count = worker_count()
    # On a GPU the model is not what the cores share: one session fed by the threaded pipeline, not one per process
    wanted = count >= 1 and len(relpaths) >= MIN_IMAGES and "CUDAExecutionProvider" not in available_providers()
    if wanted:
        try:
            wanted = not is_large(open_image(folder / relpaths[0]).size, patch_px)
        except Exception:
            pass  # an unreadable first file says nothing about the rest; the workers report it as the pipeline would
    if not wanted:
        if started is not None:
            started.close(kill=True)  # it was told nothing yet: nothing to finish
        return None
    return started or SmallImageWorkers(count)


class SmallImageWorkers:
    """`count` worker processes, started now; `source(classifier)` runs a list through them. Close when done."""

    def __init__(self, count: int):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # one core each: no BLAS spinning
        self.procs = [subprocess.Popen(crackdesk_command(WORKER_COMMAND), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, bufsize=0, env=env, start_new_session=True)
                      for _ in range(count)]
        self.model_path: str | None = None
        self.note = ""  # why the threaded pipeline took over, when a worker stopped

    def source(self, classifier: Classifier):
        """A `classify_into_workspace` source classifying with `classifier`'s model file in the workers."""
        if classifier.info.path is None:
            raise ValueError("worker processes need a model file")
        return lambda paths, cancel=None: self._run(classifier, paths, cancel)

    def _run(self, classifier: Classifier, paths: Sequence, cancel) -> Iterator[list[Prediction]]:
        """Chunks go to the workers, a few queued each; this process classifies the next chunk itself whenever the
        one due next is not back yet (so it works while the workers start, and is one of the cores' classifiers),
        and yields every chunk in order."""
        self._tell_model(classifier)
        starts = range(0, len(paths), CHUNK)
        done: dict[int, object] = {}  # chunk -> its rows (or why a worker stopped), until yielded
        queued = [deque() for _ in self.procs]  # the chunks each worker was given, oldest first
        given = 0  # chunks handed out so far, to a worker or to this process
        for k, start in enumerate(starts):
            if cancel is not None and cancel.is_set():
                return
            while k not in done:
                if cancel is not None and cancel.is_set():
                    return
                for i, chunks in enumerate(queued):
                    while given < len(starts) and len(chunks) < TASKS_AHEAD:
                        self._send(i, (starts[given], [str(p) for p in paths[starts[given]:starts[given] + CHUNK]]))
                        chunks.append(given)
                        given += 1
                    while chunks and self._ready(i):
                        done[chunks.popleft()] = self._receive(i, cancel)
                if k in done:
                    break
                if given < len(starts) and len(done) < LEAD_AT_MOST:
                    s = starts[given]
                    done[given] = _classify_chunk(classifier, s, [str(p) for p in paths[s:s + CHUNK]])
                    given += 1
                else:  # k is a worker's: wait for it
                    i = next(i for i, chunks in enumerate(queued) if chunks and chunks[0] == k)
                    done[queued[i].popleft()] = self._receive(i, cancel)
            answer = done.pop(k)
            if answer is None:  # cancelled
                return
            if isinstance(answer, str):  # a worker stopped: the rest in this process
                self.note = f"{answer}; the rest was classified in this process"
                self.close(kill=True)
                yield from _threaded_from(classifier, paths, start, cancel)
                return
            finished = list(itertools.takewhile(lambda row: row != LARGE, answer))
            if finished:
                yield [_prediction(classifier, paths, row) for row in finished]
            if len(finished) < len(answer):  # this photo on: the threaded pipeline, which cuts windows
                self.close(kill=True)
                yield from _threaded_from(classifier, paths, start + len(finished), cancel)
                return

    def prepare(self, classifier: Classifier) -> None:
        """Tell the workers the model now and wait until each has loaded it (benchmarks time the run alone)."""
        self._tell_model(classifier, ack=True)
        for i in range(len(self.procs)):
            answer = self._receive(i, None)
            if answer != "ready":
                self.note = str(answer)

    def _tell_model(self, classifier: Classifier, ack: bool = False) -> None:
        path = str(classifier.info.path)
        if self.model_path not in (None, path):
            raise ValueError("the workers were told another model")
        if self.model_path is None:
            self.model_path = path
            for i in range(len(self.procs)):
                self._send(i, ("model", path, classifier.key, ack))

    def _ready(self, i: int, timeout: float = 0.0) -> bool:
        """Whether worker i's next answer (or its end) can be read now, waiting up to `timeout` seconds."""
        return bool(select.select([self.procs[i].stdout], [], [], timeout)[0])

    def _send(self, i: int, message) -> None:
        try:
            self.procs[i].stdin.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError, ValueError):
            pass  # a stopped worker: told when its answer is awaited

    def _receive(self, i: int, cancel: threading.Event | None):
        """Worker i's next answer; None when cancelled; a string saying why when the worker stopped."""
        proc = self.procs[i]
        fd = proc.stdout.fileno()
        stalled = time.monotonic() + STALL_SECONDS
        while not self._ready(i, timeout=0.1):
            if cancel is not None and cancel.is_set():
                return None
            if time.monotonic() > stalled:
                proc.kill()
                proc.wait()
                return f"a worker process returned nothing for {STALL_SECONDS:.0f} s"
        try:
            answer = pickle.loads(_read_exactly(fd, int.from_bytes(_read_exactly(fd, 8), "little")))
        except (EOFError, OSError, pickle.UnpicklingError):
            proc.kill()
            return f"a worker process stopped ({_how(proc.wait())})"
        if isinstance(answer, tuple) and answer[:1] == ("failed",):
            return f"a worker process failed ({answer[1]})"
        return answer

    def close(self, kill: bool = False) -> None:
        """Stop the workers: told to finish (their stdin closed), killed when `kill` or after a second."""
        for proc in self.procs:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + 1.0
        for proc in self.procs:
            if kill:
                proc.kill()
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _read_exactly(fd: int, n: int) -> bytes:
    parts = []
    while n:
        part = os.read(fd, min(n, 1 << 20))
        if not part:
            raise EOFError
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _answer(out, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(8, "little") + data)
    out.flush()


def _prediction(classifier: Classifier, paths: Sequence, row) -> Prediction:
    index, photo_hash, p_crack, error, size, features, meta = row
    photo = Photo(index, Path(paths[index]), photo_hash, error, size, meta)
    if p_crack is not None:
        photo.probs = np.array([p_crack])
        photo.features = features
    return classifier.prediction(photo)


class _Tail:
    """paths[start:], sliced lazily as the threaded pipeline takes chunks."""

    def __init__(self, paths: Sequence, start: int):
        self.paths, self.start = paths, start

    def __len__(self) -> int:
        return len(self.paths) - self.start

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.paths[slice(self.start + (index.start or 0), self.start + (index.stop or len(self)))]
        return self.paths[self.start + index]


def _threaded_from(classifier: Classifier, paths: Sequence, start: int, cancel) -> Iterator[list[Prediction]]:
    for batch in classifier.classify(_Tail(paths, start), cancel=cancel):
        yield [replace(p, index=p.index + start) for p in batch]


# -- the worker's side ----------------------------------------------------------------------------------------


def serve() -> int:
    """A worker: `("model", path, key, ack)` (answered "ready" once loaded, when `ack`), then `(start, [paths])`
    tasks, each answered with one row per photo (or LARGE for a photo large enough for windows), until its stdin
    closes. Ctrl-C is its parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break the answers
    tasks = sys.stdin.buffer
    from .allocator import keep_freed_memory_for_reuse
    from .models import load_model

    keep_freed_memory_for_reuse()
    try:
        _, model_path, key, ack = pickle.load(tasks)
    except EOFError:
        return 0  # closed before a run began
    try:
        classifier = Classifier(load_model(model_path, threads=1, spinning=False), exact=True)
        if classifier.key != key:
            raise ValueError(f"{model_path} is {classifier.key} now, not {key}")
        if ack:
            _answer(answers, "ready")
        while True:
            try:
                start, paths = pickle.load(tasks)
            except EOFError:  # done: every answer is written, nothing else to clean up; the teardown takes 50 ms
                os._exit(0)
            _answer(answers, _classify_chunk(classifier, start, paths))
    except Exception as e:  # said to the parent in one line, which goes on in its own threads
        try:
            _answer(answers, ("failed", f"{type(e).__name__}: {e}"))
        except OSError:
            pass  # the parent is gone
        return 1


def _classify_chunk(classifier: Classifier, start: int, paths: list[str]) -> list:
    """One chunk read, decoded and run here: a row per photo, as a worker answers."""
    photos, tensor = read_chunk(classifier, start, paths)
    if tensor is not None:
        probs, feats = classifier.run_tensor(tensor)
        for j, photo in enumerate(p for p in photos if p.inputs is not None):
            photo.probs = probs[j:j + 1]
            photo.features = None if feats is None else feats[j]
    return [LARGE if p.data is not None else
            (p.index, p.hash, None if p.probs is None else float(p.probs[0]), p.error, p.size, p.features, p.meta)
            for p in photos]
