"""The ideal split, a reference for `bench_classify.py`: one process per core, each decoding its share of the images
and running the model on them in batches, with nothing shared: no threads, no GIL, no queues, no storing.

L = 1/(1/c + 1/(cores*d)) assumes decoding and the model run on the cores as fast as each does alone. They do not
quite: beside each other they share the cores' caches and memory bandwidth (on this VM perhaps one physical core).
The ideal split pays that, and nothing else: a program with threads, queues and storing that runs at its rate
loses nothing of its own at that moment, whatever its fraction of L. (Batches of other sizes, or a cleverer order of
work, might beat it by a little; it is a reference, not a bound.)
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np


def _worker(model_path: str, batch: int, barrier, conn) -> None:
    from crackdesk.core.images import load_rgb
    from crackdesk.core.models import load_model

    model = load_model(model_path, threads=1)  # one session: the model's metadata and the runs
    pre, session = model.info.preprocessing, model.session
    name = session.get_inputs()[0].name
    h, w = pre.input_size
    session.run(None, {name: np.zeros((batch, 3, h, w), np.float32)})  # warm-up, outside the timing
    conn.send("ready")
    while True:
        paths = conn.recv()
        if paths is None:
            return
        barrier.wait()  # every process starts together
        started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
        for i in range(0, len(paths), batch):
            session.run(None, {name: np.stack([pre(load_rgb(Path(p))) for p in paths[i:i + batch]])})
        conn.send((started, time.monotonic()))


class IdealSplit:
    """`processes` workers, each with its own single-threaded session, started once (imports and session outside
    the timing); `rate(paths)` gives the images/s of all of them together on those paths."""

    def __init__(self, model_path: Path, processes: int, batch: int):
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and sessions
        barrier = context.Barrier(processes)
        self.conns, self.procs = [], []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            proc = context.Process(target=_worker, args=(str(model_path), batch, barrier, theirs), daemon=True)
            proc.start()
            self.conns.append(ours)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("ideal split: a worker did not start")

    def rate(self, paths: list[Path]) -> float:
        n = len(self.conns)
        for k, conn in enumerate(self.conns):
            conn.send([str(p) for p in paths[k::n]])
        spans = [conn.recv() for conn in self.conns]
        return len(paths) / (max(end for _, end in spans) - min(start for start, _ in spans))

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)

    def __enter__(self) -> IdealSplit:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
