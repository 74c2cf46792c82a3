"""Write the replay memory of a trained model from its training data (crackdesk/core/memory.py): what lets the
app keep that model from forgetting without the original dataset. For the shipped models:

    .venv/bin/python scripts/build_memory.py models/mobilenetv2.onnx --data ../shared/data/ccic --data-name Concrete
    .venv/bin/python scripts/build_memory.py models/cnn.onnx --data ../shared/data/ccic --data-name Concrete

The split is the model's own (its training seed, by content hash): rows to rehearse come from its training
split, held-out rows from its validation split, never from the test split. Derived numbers only, no images.
Prints a JSON summary (sizes, time, the base model's accuracy on the held-out rows)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.memory import memory_path  # noqa: E402
from crackdesk.core.metrics import binary_metrics  # noqa: E402
from crackdesk.core.modeledit import read_head  # noqa: E402
from crackdesk.core.models import load_model  # noqa: E402
from training import archs, export  # noqa: E402
from training.data import collect, decode_all  # noqa: E402
from training.memory_build import (DEFAULT_HOLDOUT, DEFAULT_REHEARSE, MemorySizes, activations_meta,  # noqa: E402
                                   build_content, coverage_sample, frozen_session_for, graph_outputs,
                                   stratified_sample)
from training.memory_derive import pooled_features  # noqa: E402
from training.run import DEEP_MEMORY  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, required=True, nargs="+", help="the model's training data (as trained)")
    ap.add_argument("--rehearse", type=int, default=DEFAULT_REHEARSE, help="rows from the training split")
    ap.add_argument("--holdout", type=int, default=DEFAULT_HOLDOUT,
                    help="rows from the validation split (default 0: all of it)")
    ap.add_argument("--activation-rehearse", type=int, help="rows with activations among those rehearsed "
                    "(default: the architecture's, training/memory_build.py ACTIVATION_ROWS)")
    ap.add_argument("--activation-holdout", type=int, help="rows with activations among those held out")
    ap.add_argument("--activations", choices=("auto", "yes", "no"), default="auto",
                    help="store the frozen part's activations for deep retraining (auto: for the architectures "
                         "that rehearse them, training/run.py DEEP_MEMORY)")
    ap.add_argument("--data-name", help="what the images are, as the app names them (e.g. Concrete)")
    ap.add_argument("--seed", type=int, help="split seed (default: the model's training seed)")
    ap.add_argument("--out", type=Path, help="default: MODEL's memory path (NAME.memory.npz beside it)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    loaded = load_model(args.model)
    info, prep = loaded.info, loaded.info.preprocessing
    seed = args.seed if args.seed is not None else int((info.training or {}).get("seed", 0))
    examples, skipped, _ = collect([str(d) for d in args.data], seed, None)
    chosen = {}
    for split, n in (("train", args.rehearse), ("val", args.holdout)):
        members = [ex for ex in examples if ex.split == split]
        if split == "val":
            members = [members[i] for i in stratified_sample(members, n, seed)]
        kept, images, bad = decode_all(members, prep)
        if bad:
            raise SystemExit(f"unreadable: {bad[0]}")
        labels = np.array([ex.label for ex in kept], np.float32)
        if split == "train":  # the whole split's features, then the rows that cover it (memory_build.py)
            _, pool = graph_outputs(loaded.session, images, prep)
            rows = coverage_sample(pool, labels, n, seed)
            images, labels = images[rows], labels[rows]
        chosen[split] = (images, labels)

    model = frozen = None
    with_activations = {"auto": info.architecture in DEEP_MEMORY, "yes": True, "no": False}[args.activations]
    if with_activations:
        model = archs.build(info.architecture, prep.input_size[0])
        export.load_base(args.model, info.architecture, model)
        frozen = frozen_session_for(model, prep)
    meta = {"model": f"{info.name}@{info.version}", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": ", ".join(d.name for d in args.data) + f" (split seed {seed})",
            "chosen": f"training split rows to rehearse chosen for coverage (half greedy k-center on the pooled "
                      f"features, half random, seed {seed}); the validation split held out; never the test split",
            "features_from": "the model's ONNX graph (output 'features'), onnxruntime, the app's preprocessing",
            "built_by": "scripts/build_memory.py",
            "data_name": args.data_name or ", ".join(d.name for d in args.data)}
    if with_activations:
        meta["activations"] = activations_meta(model)
    sizes = MemorySizes.for_arch(info.architecture)
    n_rehearse = args.activation_rehearse if args.activation_rehearse is not None else sizes.activation_rehearse
    n_holdout = args.activation_holdout if args.activation_holdout is not None else sizes.activation_holdout
    content = build_content(loaded.session, frozen, prep, chosen["train"], chosen["val"],
                            n_rehearse if with_activations else 0, n_holdout if with_activations else 0, meta)
    content.meta["parts"] = [{"name": meta["source"], "kind": "base", "rows": [0, len(content.labels)]}]

    # What float16 storage costs: features recomputed from the stored activations against the graph's.
    p_holdout, _ = graph_outputs(loaded.session, chosen["val"][0], prep)
    report = {"model": str(args.model), "rows": content.meta["rows"],
              "base_holdout_accuracy": binary_metrics(chosen["val"][1], p_holdout, info.threshold)["accuracy"]}
    if content.activations is not None:
        stored = content.activations.astype(np.float16).astype(np.float32)
        error = np.abs(pooled_features(model, stored) - content.features[content.activation_rows]).max()
        content.meta["activations"]["float16_feature_max_abs_diff"] = round(float(error), 5)
        report["activations"] = content.meta["activations"]
    content.meta["model_sha256"] = hashlib.sha256(args.model.read_bytes()).hexdigest()
    out = args.out or memory_path(args.model)
    content.save(out, read_head(args.model)[0])  # the window basis keeps the final layer's direction
    report.update(path=str(out), megabytes=round(out.stat().st_size / 1e6, 2),
                  seconds=round(time.monotonic() - started, 1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
