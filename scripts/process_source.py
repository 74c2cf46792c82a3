"""A measured design option, not the app: the small-image path in worker processes.

    python scripts/process_source.py [--model mobilenetv2-int8] [--images 2000] [--rounds 5]

Each worker process reads, hashes, decodes and normalises its chunks of small images with the app's own
`read_photo` and runs the model on them in a session of its own (one thread); the results come back in order
through `classify_into_workspace`'s `source` hook (as the cluster's do), so the storing is the app's. Against the
threaded pipeline (`classify_into_workspace` as the app runs it), interleaved rounds on the same images and model.
The workers start once, outside the timing; how long they take to start is printed too.

What it tells (BENCHMARKS.md, "ninth session"): with a model as fast as `mobilenetv2-int8`, threads of one
process lose several percent to processes that share nothing but the cores. Large photos (windows, screening,
window features) are not handled here.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CHUNK = 8  # images a task: a model batch, as each of the pipeline's two lanes runs


def _worker(model_path: str, tasks, results) -> None:
    from crackdesk.core.allocator import keep_freed_memory_for_reuse
    from crackdesk.core.inference import Classifier
    from crackdesk.core.models import load_model
    from crackdesk.core.pipeline import read_photo

    keep_freed_memory_for_reuse()
    classifier = Classifier(load_model(model_path, threads=1, spinning=False), exact=True)
    results.put("ready")
    while (task := tasks.get()) is not None:
        k, start, paths = task
        photos = [read_photo(classifier, start + i, Path(p)) for i, p in enumerate(paths)]
        small = [p for p in photos if p.inputs is not None]
        p_crack, features = {}, {}
        if small:
            probs, feats = classifier.run_tensor(classifier.pre.normalize(np.concatenate([p.inputs for p in small])))
            for j, photo in enumerate(small):
                p_crack[photo.index] = float(probs[j])
                features[photo.index] = None if feats is None else feats[j]
        results.put((k, [(p.index, p.hash, p_crack.get(p.index), p.error, p.size, features.get(p.index), p.meta)
                         for p in photos]))


class ProcessSource:
    """`processes` workers; called as a `classify_into_workspace` source, yields each chunk's Predictions in order."""

    def __init__(self, model_path: Path, processes: int = 2):
        context = multiprocessing.get_context("spawn")  # as a program with threads (the GUI's) would have to
        started = time.perf_counter()
        self.tasks, self.results = context.Queue(), context.Queue()
        self.procs = [context.Process(target=_worker, args=(str(model_path), self.tasks, self.results), daemon=True)
                      for _ in range(processes)]
        for proc in self.procs:
            proc.start()
        for _ in self.procs:
            if self.results.get(timeout=120) != "ready":
                raise SystemExit("a worker failed to start")
        self.start_seconds = time.perf_counter() - started

    def __call__(self, paths, cancel=None):
        from crackdesk.core.inference import Prediction, predicted_label

        chunks = [(k, s, [str(p) for p in paths[s:s + CHUNK]]) for k, s in enumerate(range(0, len(paths), CHUNK))]
        for chunk in chunks:
            self.tasks.put(chunk)
        arrived, following = {}, 0
        while following < len(chunks):
            k, rows = self.results.get(timeout=120)
            arrived[k] = rows
            while following in arrived:
                yield [Prediction(index, Path(paths[index]), h, p, None if p is None else predicted_label(p, 0.5),
                                  error, size, features, meta)
                       for index, h, p, error, size, features, meta in arrived.pop(following)]
                following += 1

    def close(self) -> None:
        for _ in self.procs:
            self.tasks.put(None)
        for proc in self.procs:
            proc.join()


def main() -> int:
    from bench_classify import image_folder

    from crackdesk.core.classify import classify_into_workspace
    from crackdesk.core.inference import Classifier
    from crackdesk.core.models import ModelRegistry
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import open_workspace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv2-int8")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model_path = ModelRegistry().find(args.model).path
    rates: dict[str, list[float]] = {"threads (the app)": [], "worker processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = image_folder(args.images, args.data, Path(tmp))
        source = ProcessSource(model_path)
        classifier = Classifier(model_path)
        for r in range(args.rounds):
            for name in list(rates) if r % 2 == 0 else list(rates)[::-1]:
                with open_workspace(folder, Path(tmp) / f"{r}-{len(rates[name])}-{name[0]}.sqlite") as ws:
                    ws.sync(scan_folder(folder))
                    items = [(row.id, row.path) for row in ws.rows()]
                    started = time.perf_counter()
                    report = classify_into_workspace(ws, classifier, items,
                                                     source=source if name.startswith("worker") else None)
                    rates[name].append(report.classified / (time.perf_counter() - started))
                    if report.classified != len(items):
                        raise SystemExit(f"{name}: {report.classified} of {len(items)} classified")
        source.close()
    print(f"{args.model}, {args.images} images, {args.rounds} interleaved rounds, images/s stored "
          f"(classify_into_workspace)")
    for name, values in rates.items():
        print(f"{name:20s} {', '.join(f'{v:.0f}' for v in values)}; median {statistics.median(values):.0f}")
    print(f"two worker processes took {source.start_seconds:.2f} s to start (spawned: imports and a session each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
