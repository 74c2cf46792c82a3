"""What runs on a Ray cluster's workers: reading and cutting photos (stateless tasks) and the model (actors).

The two stages exchange rows of one model input each: a photo classified whole is one row, a large photo is one
row per window (tile), and a photo that cannot be read is one row without an input. Every row carries the
photo's position (`index`), which part of it the row is (`part` of `nparts`; `nparts` 0 for an unreadable
photo) and, on part 0 only, the photo's facts (hash, error, stored size, EXIF, window boxes) pickled in `info`.
Rows of one input size keep Ray's blocks plain uint8 tensors, whatever mix of small and large photos a block
holds; the driver puts a large photo's windows back together (crackdesk/cluster/runner.py).

The steps are the app's own (core/pipeline.py's `read_photo` and `cut_photo`), so a photo gets the
probabilities it gets on the desktop (|dp| < 1e-5) and an unreadable one the same reason.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.modelformat import ModelInfo
from ..core.pipeline import cut_photo, read_photo

ROWS_PER_OUTPUT = 64  # model inputs per block a task yields: a 4032x3024 photo alone is 252 windows (19 MB)


@dataclass
class PhotoInputs:
    """One photo read on a worker: its model inputs (uint8 [k, H, W, 3]) or the reason it has none."""

    hash: str | None = None
    error: str | None = None
    size: tuple[int, int] | None = None  # as stored, before EXIF rotation (what the local pipeline records)
    meta: object = None  # PhotoMeta
    inputs: np.ndarray | None = None
    boxes: list | None = None  # a large photo's windows (x, y, w, h), row-major; None when classified whole


class _Preparer:
    """What the pipeline's preparation uses of a Classifier (its model facts and preprocessing), without loading
    a model in a task."""

    def __init__(self, info: ModelInfo):
        self.info, self.pre = info, info.preprocessing


def prepare_photo(path: str, data: bytes | None, info: ModelInfo) -> PhotoInputs:
    """The local pipeline's own preparation (core/pipeline.py: read or take the shipped `data`, hash, open once
    for size and EXIF, then a small image decoded at the model's size or a large one decoded whole and cut into
    the model's windows). Never raises for a bad file."""
    preparer = _Preparer(info)
    photo = read_photo(preparer, 0, Path(path), data)
    if photo.data is not None:
        photo = cut_photo(preparer, photo)
    return PhotoInputs(photo.hash, photo.error, photo.size, photo.meta, photo.inputs,
                       photo.grid.boxes() if photo.grid is not None else None)


def prepare_batch(batch: dict, info: ModelInfo):
    """The task stage (`map_batches` function): rows (index, path[, data]) -> rows of one model input each,
    yielded a bounded block at a time."""
    h, w = info.preprocessing.input_size
    shipped = batch.get("data")
    out: list[tuple] = []  # (index, part, nparts, info bytes, input or None)
    for k, (index, path) in enumerate(zip(batch["index"], batch["path"])):
        data = shipped[k] if shipped is not None else None
        photo = prepare_photo(str(path), bytes(data) if data is not None else None, info)
        facts = pickle.dumps({"hash": photo.hash, "error": photo.error, "size": photo.size, "meta": photo.meta,
                              "boxes": photo.boxes})
        if photo.inputs is None:
            out.append((int(index), 0, 0, facts, None))
        else:
            n = len(photo.inputs)
            out.extend((int(index), part, n, facts if part == 0 else b"", photo.inputs[part]) for part in range(n))
        while len(out) >= ROWS_PER_OUTPUT:
            yield _rows_to_block(out[:ROWS_PER_OUTPUT], h, w)
            del out[:ROWS_PER_OUTPUT]
    if out:
        yield _rows_to_block(out, h, w)


def _rows_to_block(rows: list[tuple], h: int, w: int) -> dict:
    inputs = np.zeros((len(rows), h, w, 3), np.uint8)
    for i, row in enumerate(rows):
        if row[4] is not None:
            inputs[i] = row[4]
    facts = np.empty(len(rows), dtype=object)
    facts[:] = [r[3] for r in rows]
    return {"index": np.array([r[0] for r in rows], np.int64), "part": np.array([r[1] for r in rows], np.int32),
            "nparts": np.array([r[2] for r in rows], np.int32), "info": facts, "input": inputs}


def actor_threads() -> int:
    """onnxruntime's intra-op threads: the CPUs Ray gave this actor (at least one)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, int(round(cpus)))


class ModelStage:
    """The actor stage (`map_batches` class): one onnxruntime session per actor, loaded once from the model's
    bytes (shipped through the object store, so no node needs the file), run on batches of prepared rows."""

    def __init__(self, model: list, version: str, threads: int | None = None):
        import ray

        from .. import __version__
        from ..core.errors import CrackDeskError
        from ..core.inference import Classifier
        from ..core.models import load_model

        if version != __version__:  # another preprocessing could give other probabilities: refuse, and say so
            raise CrackDeskError(f"node {ray.util.get_node_ip_address()} runs crackdesk {__version__}, the driver "
                                 f"{version}: install the same CrackDesk on every node")
        # [ref]: put once by the driver, fetched once per actor (a bare ref would make Ray pin it as an argument)
        model = ray.get(model[0])
        # onnxruntime takes a path; the file is only read while the session is built.
        fd, name = tempfile.mkstemp(suffix=".onnx", prefix="crackdesk-model-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(model)
            self.classifier = Classifier(load_model(Path(name), threads=threads or actor_threads(), spinning=False))
        finally:
            os.unlink(name)

    def __call__(self, batch: dict) -> dict:
        nparts = batch["nparts"]
        good = np.flatnonzero(nparts > 0)
        p = np.full(len(nparts), np.nan)
        features = np.empty(len(nparts), dtype=object)
        features[:] = [b""] * len(nparts)
        if len(good):
            pre = self.classifier.pre
            probs, feats = self.classifier.run_tensor(pre.normalize(np.asarray(batch["input"])[good]))
            p[good] = probs
            if feats is not None:  # a whole photo's, or a window's (the site head rescores windows, decision 38)
                for k, i in enumerate(good):
                    features[i] = np.ascontiguousarray(feats[k], np.float32).tobytes()
        return {"index": batch["index"], "part": batch["part"], "nparts": nparts, "info": batch["info"], "p": p,
                "features": features}
