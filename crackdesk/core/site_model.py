"""Export a folder's site adaptation as a standard CrackDesk model: the base graph with the site head's weights
in its final layer, metadata saying where it came from and how good it is, and its replay memory. It loads
and classifies anywhere a CrackDesk model does (the packaged program included: no torch, only onnxruntime),
and can itself be adapted to another site or retrained."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, check_output_file
from .errors import CrackDeskError
from .memory import load_activations, load_memory, memory_path, save_memory
from .modeledit import set_head
from .modelformat import ModelInfo, write_metadata
from .projection import load_projection
from .wording import count


def site_slug(folder: Path) -> str:
    """A model-name-safe form of the folder's name (letters, digits, . _ -)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name.encode("ascii", "ignore").decode()).strip(".-_")
    return (slug or "site")[:40]


def export_site_model(session, out: str | Path, name: str | None = None) -> ModelInfo:
    """Write OUT.onnx and OUT.memory.npz for the session's folder and model; returns the new model's info."""
    import onnx

    out = Path(out)
    check_output_file(out, "model")
    check_output_file(memory_path(out), "replay memory")
    entry = session.entry
    state = session.adapt()
    if state is None:
        raise CrackDeskError(session.adaptation_problem or "the folder's model cannot be adapted", session.folder)
    if not state.adapted:
        raise CrackDeskError("this folder has no labels yet: there is no site adaptation to export (label some "
                             "images, or `crackdesk labels import`)", session.folder)
    base = entry.info
    proto = onnx.load(str(entry.path))
    set_head(proto, state.head.weights, state.head.bias)
    stamp = time.strftime("%Y%m%d.%H%M%S", time.gmtime())
    site = {"folder": session.folder.name, "base_model": entry.key, "labels": state.n_labels,
            "crack": state.n_crack, "no_crack": state.n_labels - state.n_crack, "tiles": state.n_tiles,
            "adapted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if state.cv is not None:
        site["cross_validated"] = {"correct": state.cv.correct, "n": state.cv.n, "accuracy": state.cv.value}
    if state.retention is not None:
        before, after = state.retention
        site["retention"] = {"held_out": after.n, "base_accuracy": before.value, "site_accuracy": after.value}
    info = ModelInfo(
        name=name or f"{base.name}-{site_slug(session.folder)}", version=stamp, architecture=base.architecture,
        preprocessing=base.preprocessing, class_names=base.class_names, positive_class=base.positive_class,
        output=base.output, threshold=state.head.threshold, created=site["adapted"], patch_px=base.patch_px,
        description=f"{base.name} {base.version} adapted to the site '{session.folder.name}' on "
                    f"{count(state.n_labels, 'label')} ({state.summary()})",
        base_model=entry.key, training={"site_adaptation": "logistic head on the base model's features, fitted on "
                                                           "the site's labels and the base's replay memory"},
        metrics={}, features=base.features, site=site)
    write_metadata(proto, info)
    _write_memory(session, entry, out, state.head.weights)  # first: a model never exists without its memory
    atomic_write_bytes(out, proto.SerializeToString(), "model")
    from .models import read_model_info

    return read_model_info(out)


def _write_memory(session, entry, out: Path, head: np.ndarray) -> None:
    """The base's memory plus this site's labelled examples (to rehearse if the site model is adapted again); the
    base's activations keep their rows, as the site's rows are appended after them. `head`: the site model's
    final-layer weights (its window basis keeps their direction)."""
    dim = entry.info.features["dim"]
    base = load_memory(entry.path, dim)
    labelled = session.workspace.labelled_features(entry.key, entry.info.threshold,
                                                   projection=load_projection(memory_path(entry.path), dim)).found
    site_x = np.stack([v for _, _, v in labelled]).astype(np.float32)
    site_y = np.array([label == "crack" for _, label, _ in labelled], np.uint8)
    features = np.concatenate([base.features, site_x])
    labels = np.concatenate([base.labels.astype(np.uint8), site_y])
    holdout = np.concatenate([base.holdout, np.zeros(len(site_y), bool)])
    meta = dict(base.meta, site=session.folder.name, site_examples=int(len(site_y)),
                source=f"{base.meta.get('source', entry.key)} + {len(site_y)} labels of '{session.folder.name}'")
    rehearsal = load_activations(entry.path)  # deep retraining's activations (the site's only training computes)
    save_memory(memory_path(out), features, labels, holdout, meta,
                rehearsal.activations if rehearsal else None, rehearsal.rows if rehearsal else None, head)
