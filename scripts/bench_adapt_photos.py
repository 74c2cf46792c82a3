"""Site adaptation of large photos (decision 38): does labelling whole camera photos fix the verdicts of the rest
of the site as labelling small images does?

    python scripts/bench_adapt_photos.py [--walls ../shared/data/walls] [--ccic ../shared/data/ccic] [--seeds 3]

The same 612 walls photos (the new site) are classified by the default shipped model in four forms: as they
are (448 px: small images, one model input each, the site head scores their features); enlarged to 454 px (1.3%),
which makes each a large photo of 2 x 2 windows at the training patches' own scale, judged by the photo verdict
rule, every window run through the model (as classification does once a folder has labels); those large photos
as the first classification of a new folder leaves them (the screening model settles some windows, which the site
head cannot rescore); and as a first classification leaves them when the inspector's first label comes after a
tenth of it (decision 42: the rest of that run goes unscreened). Each run labels random photos with their truth
(whole-photo labels, the same photos in every form) and measures the error on the photos nobody labelled, with
the site head's accuracy on the ccic TEST split (concrete retention); then, for the whole and the large forms,
labels in rounds of 10 in the order `crackdesk suggest` gives them. Also prints how many windows have features and
their bytes a photo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_adapt import ccic_test, error_rate, fresh_workspace  # noqa: E402

from crackdesk.core.datasets import load_class_folders  # noqa: E402
from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.memory import memory_path  # noqa: E402
from crackdesk.core.models import ModelRegistry  # noqa: E402
from crackdesk.core.projection import load_projection  # noqa: E402
from crackdesk.core.session import FolderSession  # noqa: E402
from crackdesk.core.sitehead import sigmoid  # noqa: E402

CHECKPOINTS = (10, 20, 50, 100)
FORMS = ("small", "large", "screened", "switched")  # random labels, --seeds runs each
SWITCH_AT = 0.1  # "switched": the first label comes after this fraction of the first pass
SUGGESTED = ("small suggest", "large suggest")  # labels in `crackdesk suggest`'s order
LARGE_SIDE = 454  # two 227-px windows a side: the smallest photo classified by its windows


def site_folders(walls: Path, work: Path) -> tuple[Path, Path, dict[str, str]]:
    """(the photos as they are, the photos enlarged to LARGE_SIDE, truth by file name)."""
    small, large = work / "small" / "site", work / "large" / "site"
    small.mkdir(parents=True)
    large.mkdir(parents=True)
    truth = {}
    for item in load_class_folders(walls):
        name = item.path.stem + ".png"  # lossless: the two forms differ by the enlargement alone
        with Image.open(item.path) as image:
            image = image.convert("RGB")
            image.save(small / name)
            image.resize((LARGE_SIDE, LARGE_SIDE), Image.BICUBIC).save(large / name)
        truth[name] = item.label
    return small, large, truth


def classify_once(folder: Path, entry, exact: bool, switch_at: float | None = None) -> dict:
    """Classify the folder once (screened unless `exact`); past `switch_at` of it, unscreened, as a label given
    then makes it (FolderSession.unscreen_for_labels)."""
    with FolderSession.open(folder) as session:
        session.use_model(entry)
        classifier = Classifier(entry.path, exact=exact)

        def on_batch(pairs, done, total):
            if switch_at is not None and done >= switch_at * total and classifier.screen is not None:
                classifier.unscreen("the first label (simulated)")

        report = session.classify(classifier, on_batch=on_batch)
        ws = session.workspace
        windows = ws._read("SELECT COALESCE(SUM(LENGTH(windows)) / 4, 0), COALESCE(SUM(LENGTH(vecs)), 0) "
                           "FROM window_features")[0]
        results = ws._read("SELECT COUNT(*) FROM tile_results")[0][0]
    (folder.parent / "classified.sqlite").write_bytes((folder / ".crackdesk" / "workspace.sqlite").read_bytes())
    return {"tiled": report.tiled, "windows": results, "windows_with_features": windows[0],
            "feature_bytes": windows[1]}


def run(folder: Path, truth: dict, entry, order: list[str] | None, test_x, test_y) -> dict:
    """Label photos in rounds of 10, in `order`, or (None) as `crackdesk suggest` picks them after each round."""
    fresh_workspace(folder)
    out = {"error": {}, "ccic_test": {}, "figures": {}}
    with FolderSession.open(folder) as session:
        session.use_model(entry)
        rows = session.rows(entry.key)
        ids, paths = {r.path: r.id for r in rows}, {r.id: r.path for r in rows}
        state = session.adapt()
        adapter = session.adapter()
        out["error"][0] = error_rate(session.current_predictions(adapt=False), truth, set())
        labelled: list[str] = []
        while len(labelled) < max(CHECKPOINTS):
            if order is None:
                picks, _ = adapter.suggestions(10, state)
                chosen = [paths[int(adapter.ids[s.index])] for s in picks]
            else:
                chosen = [p for p in order if p not in set(labelled)][:10]
            session.submit_labels({ids[p]: truth[p] for p in chosen}, source="import").result()
            labelled += chosen
            state = adapter.refit(full=False)
            if len(labelled) in CHECKPOINTS:
                out["error"][len(labelled)] = error_rate(session.current_predictions(), truth, set(labelled))
                p = sigmoid(test_x @ state.head.weights + state.head.bias)
                out["ccic_test"][len(labelled)] = float(((p >= 0.5) == (test_y == 1)).mean())
                if len(labelled) >= 50:  # the sidebar's figures against the truth on the unlabelled photos
                    assessed = adapter.assess(state)
                    # the photos the estimate covers: small ones with features, large ones with every window's
                    judged = set(adapter.ids[adapter.features.present].tolist())
                    judged |= set(adapter.ids[adapter.photos.rows[adapter.photos.rescorable()]].tolist())
                    judged_paths = {paths[i] for i in judged} - set(labelled)
                    out["figures"][len(labelled)] = {
                        "cv": assessed.cv.correct / assessed.cv.n, "estimate": assessed.estimate,
                        "n_unlabelled": assessed.n_unlabelled,
                        "actual": 1 - error_rate(session.current_predictions(), truth,
                                                 set(truth) - judged_paths)}
    return out


def at_scale(entry, work: Path, photos: int, grid=(13, 17)) -> dict:
    """What the site adapter costs with `photos` camera photos of 13 x 17 windows (3859x2951), every window with
    features: reading them when the folder opens, and one refit's verdicts of every photo (what the GUI waits for
    after a label). The workspace holds real rows through the real writer, in the model's window basis; the features
    are random codes."""
    from crackdesk.core.sitehead import Head

    folder = work / "scale"
    folder.mkdir()
    for i in range(photos):
        Image.new("RGB", (4, 4), (i % 256, i // 256, 0)).save(folder / f"photo_{i:05d}.png")
    rng = np.random.default_rng(0)
    dim = entry.info.features["dim"]
    projection = load_projection(memory_path(entry.path), dim)  # stored as classification stores them (decision 48)
    with FolderSession.open(folder) as session:
        session.use_model(entry)
        session.hash_missing()
        rows = session.rows()
        ws = session.workspace
        boxes = [(x * 227, y * 227, 227, 227) for y in range(grid[0]) for x in range(grid[1])]
        for r in rows:
            ws.set_tile_results(r.hash, entry.key, [b + (float(rng.random() * 0.2),) for b in boxes], wait=False)
            vectors = (rng.random((len(boxes), dim)) * rng.random((len(boxes), 1)) * 6).astype(np.float32)
            ws.set_window_features(entry.key, [(r.hash, len(boxes), np.arange(len(boxes)), vectors)], wait=False,
                                   projection=projection)
        ws._write(lambda db: None)  # everything queued is committed
        size = (folder / ".crackdesk" / "workspace.sqlite").stat().st_size
        adapter = session.adapter()
        ids = np.array([r.id for r in rows], np.int64)
        started = time.perf_counter()
        adapter.load_features(ids)
        loaded = time.perf_counter() - started
        times = []
        for _ in range(5):  # a new head each time: the adapter keeps the last head's window scores
            head = Head(adapter.base.weights + rng.normal(0, 0.01, dim), adapter.base.bias, 0.5)
            started = time.perf_counter()
            adapter.photos.verdicts(head)
            times.append(time.perf_counter() - started)
        memory = adapter.photos.features.codes.nbytes + adapter.photos.base.nbytes * 4
        # A label after 99 others, all whole-photo labels: what the GUI waits for after it (site_flow: examples read
        # from the labelled photos' windows, the head fitted, every photo's verdict, the "most useful next" order).
        session.workspace.set_labels({r.id: ("crack" if k % 2 else "no_crack") for k, r in enumerate(rows[:99])})
        session.adapt(full=False)
        refits = []
        for k in range(3):
            session.workspace.set_labels({rows[99 + k].id: "no_crack"})
            started = time.perf_counter()
            state = adapter.refit(full=False)
            adapter.probabilities(state)
            adapter.suggestions(state=state)
            refits.append(time.perf_counter() - started)
    return {"photos": photos, "windows": photos * len(boxes), "workspace_mb": size / 2**20, "load_s": loaded,
            "verdicts_s": float(np.median(times)), "adapter_mb": memory / 2**20,
            "refit_100_labels_s": float(np.median(refits))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walls", type=Path, default=ROOT.parent / "shared" / "data" / "walls")
    parser.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    parser.add_argument("--model", default=None, help="base model (default: the default shipped model)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="only measure the adapter's costs with N camera photos (e.g. 500)")
    args = parser.parse_args()
    entry = ModelRegistry().find(args.model)
    work = Path(tempfile.mkdtemp(prefix="crackdesk-adapt-photos-"))
    if args.scale:
        cost = at_scale(entry, work, args.scale)
        print(json.dumps(cost) if args.json else
              f"{cost['photos']:,} photos, {cost['windows']:,} windows with features: workspace "
              f"{cost['workspace_mb']:.0f} MB; read in {cost['load_s']:.2f} s; the adapter holds "
              f"{cost['adapter_mb']:.0f} MB; every photo's verdict under a new head in {cost['verdicts_s']:.3f} s; "
              f"a refit, every verdict and the review order after the 100th photo label {cost['refit_100_labels_s']:.2f} s")
        shutil.rmtree(work)
        return 0
    small, large, truth = site_folders(args.walls, work)
    screened, switched = work / "screened" / "site", work / "switched" / "site"
    shutil.copytree(large, screened)
    shutil.copytree(large, switched)
    stored = {"small": classify_once(small, entry, True), "large": classify_once(large, entry, True),
              "screened": classify_once(screened, entry, False),
              "switched": classify_once(switched, entry, False, SWITCH_AT)}
    test_x, test_y, _ = ccic_test(args.ccic, entry.path)
    results = []
    for seed in range(args.seeds):
        order = list(np.random.default_rng(seed).permutation(sorted(truth)))
        for form, folder in (("small", small), ("large", large), ("screened", screened), ("switched", switched)):
            results.append(dict(run(folder, truth, entry, order, test_x, test_y), form=form, seed=seed))
    for form, folder in (("small", small), ("large", large)):  # deterministic: one run each
        results.append(dict(run(folder, truth, entry, None, test_x, test_y), form=form + " suggest", seed=0))
    summary = {"model": entry.key, "photos": len(truth), "stored": stored, "results": results}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{entry.key}, {len(truth)} walls photos, random labels, {args.seeds} seeds (mean; min-max)")
    for form in ("large", "screened", "switched"):
        print(f"{form}: {stored[form]['windows']:,} windows, {stored[form]['windows_with_features']:,} with features "
              f"({stored[form]['feature_bytes'] / len(truth) / 1024:.1f} KB a photo)")
    print("labels  " + "  ".join(f"{form + ' error':>22}" for form in FORMS + SUGGESTED) + "   ccic test (large)")
    for n in (0,) + CHECKPOINTS:
        cells = []
        for form in FORMS + SUGGESTED:
            e = [r["error"][n] for r in results if r["form"] == form]
            cells.append(f"{100 * np.mean(e):6.1f}% ({100 * min(e):4.1f}-{100 * max(e):4.1f}%)")
        c = [r["ccic_test"][n] for r in results if r["form"] == "large" and n in r["ccic_test"]]
        print(f"{n:6d}  " + "  ".join(f"{cell:>22}" for cell in cells)
              + (f"   {100 * np.mean(c):.2f}% ({100 * min(c):.2f}-{100 * max(c):.2f}%)" if c else ""))
    print("the sidebar's figures: cross-validated on the labels; estimated for the unlabelled photos it covers, and "
          "their actual accuracy")
    for form in FORMS + SUGGESTED:
        for n in CHECKPOINTS:
            figures = [r["figures"][n] for r in results if r["form"] == form and n in r["figures"]]
            if not figures:
                continue
            judged = [f for f in figures if f["estimate"] is not None]
            estimate = f"{100 * np.mean([f['estimate'] for f in judged]):5.1f}%" if judged else "  none"
            off = f"; |estimate - actual| {100 * np.mean([abs(f['estimate'] - f['actual']) for f in judged]):.1f} " \
                  "points" if judged else ""
            print(f"  {form:>16} {n:4d} labels: cv {100 * np.mean([f['cv'] for f in figures]):5.1f}%, estimate "
                  f"{estimate} over {figures[0]['n_unlabelled']} photos, actual "
                  f"{100 * np.mean([f['actual'] for f in figures]):5.1f}%{off}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
