"""The retraining loop, measured: a shipped model meets another site's photos (../shared/data/walls), an
inspector corrects 100 of them in a workspace, CrackDesk retrains from the shipped model the way the app does
(the workspace alone: the model rehearses its replay memory), and the retrained model is measured on the
other walls photos and on ccic (the shipped models' data; the test split by default, the validation split
with --ccic-split val for tuning: never tune on test).

Usage: .venv/bin/python scripts/retrain_walls.py [--model models/mobilenetv2.onnx] [--corrections 100]
       [--seeds 0 1 2] [--sample 0] [--ccic-split test|val] [--epochs N] [--work DIR]
--sample N adds N ccic images to the training data (the old way, before models had a replay memory).
Prints a JSON summary (per seed, and the worst case over seeds at the top level) and markdown rows."""

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
from training.data import Example, collect, decode_all, keyed  # noqa: E402
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


class Evaluator:
    """Decodes each evaluation set once per preprocessing (several seeds and models reuse it)."""

    def __init__(self):
        self._decoded: dict = {}

    def __call__(self, model_path: Path, name: str, examples: list[Example]) -> dict:
        model = load_model(model_path)
        key = (name, model.info.preprocessing, tuple(str(ex.path) for ex in examples))
        if key not in self._decoded:
            kept, images, bad = decode_all(examples, model.info.preprocessing)
            assert not bad, bad
            self._decoded[key] = (images, np.array([ex.label for ex in kept], dtype=np.float32))
        images, y = self._decoded[key]
        p = ort_probabilities(model.session, images, model.info.preprocessing)
        return binary_metrics(y, p, model.info.threshold)


def retrain_once(args, seed: int, ccic_eval: list[Example], evaluate: Evaluator, before_ccic: dict) -> dict:
    work = args.work / f"seed{seed}"
    corrections, rest = split_walls(args.walls, args.corrections, seed)
    site = make_workspace(work / "site", corrections)
    walls_eval = [Example(f.path, int(f.label == CRACK), "", "walls") for f in rest]
    before = {"walls": evaluate(args.model, f"walls{seed}", walls_eval), "ccic": before_ccic}
    out = work / "retrained.onnx"
    cmd = [sys.executable, "-m", "training", str(site)]
    if args.sample:
        cmd += [str(args.ccic), "--sample", str(args.sample)]
    cmd += ["--arch", args.arch, "--base", str(args.model), "--out", str(out), "--seed", str(seed), "--events"]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    done = events[-1]
    after = {"walls": evaluate(out, f"walls{seed}", walls_eval), "ccic": evaluate(out, "ccic", ccic_eval)}
    err_before, err_after = 1 - before["walls"]["accuracy"], 1 - after["walls"]["accuracy"]
    return {
        "seed": seed, "corrections": len(corrections), "walls_eval_images": len(walls_eval),
        "retrain_seconds_end_to_end": round(seconds, 1), "training_counts": done["info"]["training"]["counts"],
        "warnings": [e["message"] for e in events if e["event"] == "warning"],
        "retention_reported": done.get("retention") and {k: done["retention"][k] for k in ("images", "drop_points")},
        "memory_written": done.get("memory"),
        "before": before, "after": after,
        "walls_error_reduction": round(1 - err_after / err_before, 3) if err_before else None,
        "ccic_accuracy_drop_points": round(100 * (before["ccic"]["accuracy"] - after["ccic"]["accuracy"]), 3),
        "command": " ".join(cmd),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "mobilenetv2.onnx")
    ap.add_argument("--arch", default="mobilenetv2")
    ap.add_argument("--walls", type=Path, default=ROOT.parent / "shared" / "data" / "walls")
    ap.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    ap.add_argument("--ccic-split", choices=("test", "val"), default="test")
    ap.add_argument("--corrections", type=int, default=100)
    ap.add_argument("--sample", type=int, default=0, help="ccic images trained on as well (0: none, rehearse)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args(argv)
    args.work = args.work or Path(tempfile.mkdtemp(prefix="retrain_walls_"))
    evaluate = Evaluator()
    ccic_seed = int(load_model(args.model).info.training.get("seed", 0))
    ccic_eval = [ex for ex in collect([str(args.ccic)], ccic_seed, None)[0] if ex.split == args.ccic_split]
    before_ccic = evaluate(args.model, "ccic", ccic_eval)
    runs = [retrain_once(args, seed, ccic_eval, evaluate, before_ccic) for seed in args.seeds]
    summary = {
        "model": str(args.model), "ccic_split": args.ccic_split, "ccic_images": len(ccic_eval),
        "ccic_sample": args.sample, "seeds": args.seeds,
        "walls_error_reduction": min(r["walls_error_reduction"] for r in runs),  # worst over seeds
        "ccic_accuracy_drop_points": max(r["ccic_accuracy_drop_points"] for r in runs),
        f"ccic_{args.ccic_split}_accuracy_drop_points": max(r["ccic_accuracy_drop_points"] for r in runs),
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))
    for r in runs:
        b, a = r["before"], r["after"]
        print(f"| {r['seed']} | {100 * b['walls']['accuracy']:.2f}% -> {100 * a['walls']['accuracy']:.2f}% "
              f"(recall {100 * b['walls']['recall']:.1f}% -> {100 * a['walls']['recall']:.1f}%) | "
              f"{100 * r['walls_error_reduction']:.0f}% | {100 * b['ccic']['accuracy']:.2f}% -> "
              f"{100 * a['ccic']['accuracy']:.2f}% ({-r['ccic_accuracy_drop_points']:+.2f}) | "
              f"{r['retrain_seconds_end_to_end']:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
