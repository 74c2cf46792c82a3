"""The retraining loop, measured: a shipped model meets another site's photos (../shared/data/walls), an
inspector corrects 100 of them, CrackDesk retrains from the shipped model on those corrections plus a
sample of the original data, and the retrained model is measured on the other walls images and on the
ccic test split (which no retraining step ever trains on: --sample keeps each image's split).

Usage: .venv/bin/python scripts/retrain_walls.py [--model models/mobilenetv2.onnx] [--corrections 100]
       [--sample 400] [--seed 0] [--work DIR]
Prints a JSON summary (and the markdown rows used in BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.datasets import CRACK, load_class_folders  # noqa: E402
from crackdesk.core.metrics import binary_metrics  # noqa: E402
from crackdesk.core.models import load_model  # noqa: E402
from training.data import collect, decode_all, keyed, Example  # noqa: E402
from training.export import ort_probabilities  # noqa: E402


def split_walls(walls: Path, n: int, seed: int):
    """n images (stratified by class, seeded by content hash) as corrections; the rest for evaluation."""
    from crackdesk.core.hashing import file_hash

    files = load_class_folders(walls)
    chosen, rest = [], []
    for label in ("crack", "no_crack"):
        members = sorted((f for f in files if f.label == label), key=lambda f: keyed(seed, file_hash(f.path), "walls"))
        quota = round(n * len(members) / len(files))
        chosen += members[:quota]
        rest += members[quota:]
    return chosen, rest


def make_workspace(folder: Path, corrections) -> Path:
    """A CrackDesk workspace on a folder of the corrected photos, labelled as an inspector would."""
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import Workspace

    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i, f in enumerate(corrections):
        name = f"site_{i:03d}{f.path.suffix}"
        os.symlink(f.path, folder / name)
        labels[name] = f.label
    with Workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        ws.set_labels({ws.image_id(name): label for name, label in labels.items()})
    return folder


def evaluate(model_path: Path, examples: list[Example]) -> dict:
    model = load_model(model_path)
    kept, images, bad = decode_all(examples, model.info.preprocessing)
    assert not bad, bad
    y = np.array([ex.label for ex in kept], dtype=np.float32)
    p = ort_probabilities(model.session, images, model.info.preprocessing)
    return binary_metrics(y, p, model.info.threshold)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "mobilenetv2.onnx")
    ap.add_argument("--arch", default="mobilenetv2")
    ap.add_argument("--walls", type=Path, default=ROOT.parent / "shared" / "data" / "walls")
    ap.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    ap.add_argument("--corrections", type=int, default=100)
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="retrain_walls_"))
    corrections, rest = split_walls(args.walls, args.corrections, args.seed)
    site = make_workspace(work / "site", corrections)
    walls_eval = [Example(f.path, int(f.label == CRACK), "", "walls") for f in rest]
    shipped_info = load_model(args.model).info
    ccic_seed = int(shipped_info.training.get("seed", 0))
    ccic_test = [ex for ex in collect([str(args.ccic)], ccic_seed, None)[0] if ex.split == "test"]

    before = {"walls": evaluate(args.model, walls_eval), "ccic_test": evaluate(args.model, ccic_test)}
    out = work / "retrained.onnx"
    cmd = [sys.executable, "-m", "training", str(site), str(args.ccic), "--sample", str(args.sample),
           "--arch", args.arch, "--base", str(args.model), "--out", str(out), "--seed", str(ccic_seed), "--events"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return 1
    done = json.loads(proc.stdout.strip().splitlines()[-1])
    after = {"walls": evaluate(out, walls_eval), "ccic_test": evaluate(out, ccic_test)}
    err_before, err_after = 1 - before["walls"]["accuracy"], 1 - after["walls"]["accuracy"]
    summary = {
        "model": str(args.model), "corrections": len(corrections), "walls_eval_images": len(walls_eval),
        "ccic_test_images": len(ccic_test), "ccic_sample": args.sample,
        "retrain_seconds_end_to_end": round(seconds, 1), "retrain_training_counts": done["info"]["training"]["counts"],
        "before": before, "after": after,
        "walls_error_reduction": round(1 - err_after / err_before, 3) if err_before else None,
        "ccic_test_accuracy_drop_points": round(100 * (before["ccic_test"]["accuracy"] - after["ccic_test"]["accuracy"]), 3),
        "command": " ".join(cmd),
    }
    print(json.dumps(summary, indent=1))
    print(f"| walls ({len(walls_eval)} images) | {100 * before['walls']['accuracy']:.2f}% | {100 * after['walls']['accuracy']:.2f}% |")
    print(f"| ccic test ({len(ccic_test)} images) | {100 * before['ccic_test']['accuracy']:.2f}% | "
          f"{100 * after['ccic_test']['accuracy']:.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
