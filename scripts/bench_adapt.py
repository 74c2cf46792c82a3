"""Site adaptation on a new site (issue 9): error on the photos nobody labelled against the number of corrections,
for three ways of choosing them (`crackdesk suggest`, random, name order), with concrete retention, and the
command line's round time.

    python scripts/bench_adapt.py [--walls ../shared/data/walls] [--ccic ../shared/data/ccic] [--seeds 3]

Walls (612 photos of other surfaces) is the new site; the truth comes from its class folders. Each strategy
starts from an empty workspace and labels rounds of 10 (the truth, as an inspector would give it); after each
round the site head is refitted exactly as the app does (core/site.py) and measured on the unlabelled photos.
Concrete retention: the site head on the ccic TEST split (2,400 images the shipped model never trained on),
and the exported site model (`crackdesk export-model`) evaluated on it end to end. Prints a table and writes a
plot (PNG) with --plot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.datasets import load_class_folders  # noqa: E402
from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.models import ModelRegistry  # noqa: E402
from crackdesk.core.session import FolderSession  # noqa: E402
from crackdesk.core.sitehead import sigmoid  # noqa: E402

CHECKPOINTS = (10, 20, 50, 100)
STRATEGIES = ("suggest", "random", "name")


def site_folder(walls: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """The walls photos in one flat folder (hard links), and their truth by file name."""
    folder = work / "site"
    folder.mkdir(parents=True)
    truth = {}
    for item in load_class_folders(walls):
        os.link(item.path, folder / item.path.name)
        truth[item.path.name] = item.label
    return folder, truth


def ccic_test(ccic: Path, model_path: Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(features, labels, paths) of the ccic test split (the model's own split: training/data.py, seed 0)."""
    from training.data import collect

    examples, _, _ = collect([str(ccic)], 0, None)
    test = [ex for ex in examples if ex.split == "test"]
    rows = []
    for batch in Classifier(model_path).classify([ex.path for ex in test]):
        rows.extend(p.features for p in batch)
    features = np.stack(rows)
    return features, np.array([ex.label for ex in test], np.float64), [ex.path for ex in test]


def run_strategy(strategy: str, seed: int, folder: Path, truth: dict, entry, test_x, test_y) -> dict:
    fresh_workspace(folder)
    session = FolderSession.open(folder)
    session.use_model(entry)
    rows = session.rows(entry.key)
    ids = {r.path: r.id for r in rows}
    rng = np.random.default_rng(seed)
    order = {"random": list(rng.permutation(sorted(truth))), "name": sorted(truth)}.get(strategy)
    labelled: list[str] = []
    out = {"strategy": strategy, "seed": seed, "error": {}, "ccic_test": {}}
    state = session.adapt()
    adapter = session.adapter()
    base_p = session.current_predictions(adapt=False)
    out["error"][0] = error_rate(base_p, truth, set())
    while len(labelled) < max(CHECKPOINTS):
        if strategy == "suggest":
            picks, _ = adapter.suggestions(10, state)
            paths = {r.id: r.path for r in rows}
            chosen = [paths[int(adapter.ids[s.index])] for s in picks]
        else:
            chosen = [p for p in order if p not in set(labelled)][:10]
        session.submit_labels({ids[p]: truth[p] for p in chosen}, source="import").result()
        labelled += chosen
        state = adapter.refit(full=False)
        if len(labelled) in CHECKPOINTS:
            current = session.current_predictions()
            out["error"][len(labelled)] = error_rate(current, truth, set(labelled))
            p = sigmoid(test_x @ state.head.weights + state.head.bias)
            out["ccic_test"][len(labelled)] = float(((p >= 0.5) == (test_y == 1)).mean())
    session.close()
    return out


def fresh_workspace(folder: Path) -> None:
    """The folder as classified, with no label yet."""
    shutil.rmtree(folder / ".crackdesk", ignore_errors=True)
    (folder / ".crackdesk").mkdir()
    shutil.copy(folder.parent / "classified.sqlite", folder / ".crackdesk" / "workspace.sqlite")


def error_rate(current, truth: dict, labelled: set) -> float:
    wrong = [current.predicted(i) != truth[r.path] for i, r in enumerate(current.rows) if r.path not in labelled]
    return float(np.mean(wrong))


def cli_round(folder: Path, truth: dict, work: Path, env: dict) -> float:
    """One round as an inspector scripts it: `suggest -n 10 --csv`, then `labels import` of those ten."""
    started = time.perf_counter()
    out = work / "suggested.csv"
    subprocess.run([sys.executable, "-m", "crackdesk", "suggest", str(folder), "--csv", str(out)], check=True,
                   capture_output=True, env=env)
    import csv

    names = [row["path"] for row in csv.DictReader(out.open())]
    labels = work / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((name, truth[name]) for name in names)
    subprocess.run([sys.executable, "-m", "crackdesk", "labels", "import", str(folder), str(labels)], check=True,
                   capture_output=True, env=env)
    return time.perf_counter() - started


def exported_accuracy(folder: Path, work: Path, test_paths: list[Path], test_y: np.ndarray, env: dict) -> float:
    out = work / "site-model.onnx"
    subprocess.run([sys.executable, "-m", "crackdesk", "export-model", str(folder), "--out", str(out)], check=True,
                   capture_output=True, env=env)
    p = np.array([r.p_crack for batch in Classifier(out).classify(test_paths) for r in batch])
    return float(((p >= 0.5) == (test_y == 1)).mean())


def plot(results: list[dict], path: Path) -> None:
    """Error on the unlabelled photos against corrections, one line per strategy (Pillow only)."""
    from PIL import Image, ImageDraw

    width, height, pad = 640, 400, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    xs = (0,) + CHECKPOINTS
    top = max(np.mean([r["error"][0] for r in results]), 0.05)

    def at(x, y):
        return pad + (width - 2 * pad) * x / xs[-1], height - pad - (height - 2 * pad) * y / top

    draw.line([at(0, 0), at(xs[-1], 0)], fill="black")
    draw.line([at(0, 0), at(0, top)], fill="black")
    for k in xs:
        draw.text((at(k, 0)[0] - 6, height - pad + 6), str(k), fill="black")
    for level in np.linspace(0, top, 5):
        draw.text((6, at(0, level)[1] - 6), f"{100 * level:.0f}%", fill="black")
    colours = {"suggest": (200, 40, 40), "random": (40, 90, 200), "name": (120, 120, 120)}
    for i, strategy in enumerate(STRATEGIES):
        runs = [r for r in results if r["strategy"] == strategy]
        points = [at(k, np.mean([r["error"][k] for r in runs])) for k in xs]
        draw.line(points, fill=colours[strategy], width=3)
        draw.text((width - 170, pad + 16 * i), f"{strategy}", fill=colours[strategy])
    draw.text((pad, 12), "error on the photos nobody labelled (walls) vs corrections", fill="black")
    image.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walls", type=Path, default=ROOT.parent / "shared" / "data" / "walls")
    parser.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    parser.add_argument("--model", default=None, help="base model (default: the default shipped model)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--plot", type=Path, help="write the plot here (PNG)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    entry = ModelRegistry().find(args.model)
    work = Path(tempfile.mkdtemp(prefix="crackdesk-adapt-"))
    try:
        folder, truth = site_folder(args.walls, work)
        with FolderSession.open(folder) as session:  # classified once; every run starts from a copy of it
            session.use_model(entry)
            session.classify(Classifier(entry.path))
            base = session.adapter().base
        shutil.copy(folder / ".crackdesk" / "workspace.sqlite", work / "classified.sqlite")
        test_x, test_y, test_paths = ccic_test(args.ccic, entry.path)
        base_test = float(((sigmoid(test_x @ base.weights + base.bias) >= 0.5) == (test_y == 1)).mean())
        results = [run_strategy(s, seed, folder, truth, entry, test_x, test_y)
                   for s in STRATEGIES for seed in (range(args.seeds) if s == "random" else range(1))]
        # The command line: five rounds of `suggest` + `labels import` from a fresh workspace, then export.
        fresh_workspace(folder)
        env = dict(os.environ)
        rounds = [cli_round(folder, truth, work, env) for _ in range(5)]
        exported = exported_accuracy(folder, work, test_paths, test_y, env)
        summary = {"model": entry.key, "photos": len(truth), "base_ccic_test": base_test, "results": results,
                   "cli_round_seconds": rounds, "exported_after_50_ccic_test": exported}
        if args.plot:
            plot(results, args.plot)
        if args.json:
            print(json.dumps(summary))
        else:
            report(summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(s: dict) -> None:
    print(f"site adaptation of {s['model']} on walls ({s['photos']} photos); ccic test of the base head "
          f"{100 * s['base_ccic_test']:.2f}%")
    print("strategy   error on the unlabelled photos at 0 / " + " / ".join(map(str, CHECKPOINTS))
          + " corrections    ccic test at " + " / ".join(map(str, CHECKPOINTS)))
    for strategy in STRATEGIES:
        runs = [r for r in s["results"] if r["strategy"] == strategy]
        errors = " / ".join(f"{100 * np.mean([r['error'][k] for r in runs]):4.1f}%" for k in (0,) + CHECKPOINTS)
        tests = " / ".join(f"{100 * np.mean([r['ccic_test'][k] for r in runs]):.2f}%" for k in CHECKPOINTS)
        print(f"{strategy:<10} {errors}    {tests}   ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    r = s["cli_round_seconds"]
    print(f"command line round (suggest + labels import, {s['photos']} photos): {min(r):.2f}-{max(r):.2f} s")
    print(f"exported site model after 50 suggested corrections, ccic test: {100 * s['exported_after_50_ccic_test']:.2f}%")


if __name__ == "__main__":
    sys.exit(main())
