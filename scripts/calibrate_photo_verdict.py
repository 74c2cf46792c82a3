"""Photo verdict rules measured on mosaics of held-out ccic patches: calibrated on validation, reported on test.

A mosaic is 17 x 13 patches of 227 px = a 3859x2951 photo whose stride-227 tiles are exactly the patches, so each
patch's P(crack) is computed once through the real model and thousands of photos are simulated by drawing patch
probabilities into grids (with replacement: i.i.d. tiles from the split's distribution). Clean photos: negatives
only. Cracked photos: negatives plus positives on an 8-connected random walk of 1, 2-3 or 4-12 tiles. The rule's
isolated-tile margin is chosen on validation only; test is reported once. A handful of real mosaic JPEGs (q90)
then go end to end through `heatmap_of_file` + `photo_verdict` to confirm the simulated verdicts.

Usage: PYTHONPATH=. .venv/bin/python scripts/calibrate_photo_verdict.py [--model models/mobilenetv2.onnx ...]
       [--ccic ../shared/data/ccic] [--walls ../shared/data/walls] [--mosaics 4000] [--jpegs 6]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.photo_verdict import (ISOLATED_LOGIT_MARGIN, neighbour_support, photo_score,  # noqa: E402
                                          photo_verdict)
from crackdesk.core.tiling import heatmap_of_file, mosaic  # noqa: E402
from training.data import collect, decode_all  # noqa: E402

ROWS, COLS, P = 13, 17, 227
SIZES = {"1 tile": (1, 1), "2-3 tiles": (2, 3), "4-12 tiles": (4, 12)}
MARGINS = {f"{p:g}": math.log(p / (1 - p)) for p in (0.99, 0.995, 0.999, 0.9999)}  # isolated bar at t = 0.5
CACHE = Path(tempfile.gettempdir()) / "crackdesk-photo-verdict"


def rules(t: float) -> dict:
    """name -> vectorised photo score over (n, rows, cols); crack when score >= t."""
    def flat(g):
        return g.reshape(len(g), -1)

    def bar(p):  # a stricter photo threshold on the max tile, rescaled so that p >= bar <=> score >= t
        return lambda g: np.where(flat(g).max(1) >= p, t, 0.0)

    out = {"max tile >= t (today)": lambda g: flat(g).max(1), "max tile >= 0.99": bar(0.99),
           "max tile >= 0.999": bar(0.999),
           "2 tiles >= t anywhere": lambda g: np.partition(flat(g), -2, axis=1)[:, -2],
           "2 neighbouring tiles >= t": lambda g: flat(np.minimum(g, neighbour_support(g))).max(1)}
    for name, margin in MARGINS.items():
        out[f"2 neighbouring, or 1 >= {name}"] = lambda g, m=margin: photo_score(g, t, m)
    return out


def patch_probabilities(model: Path, ccic: Path, walls: Path | None) -> dict:
    """P(crack) of every val/test patch (and walls negatives), cached by the model file's hash."""
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    cached = CACHE / f"{digest}-2.npz"
    if cached.exists():
        return dict(np.load(cached))
    classifier = Classifier(model)
    info, prep = classifier.info, classifier.pre
    examples = collect([str(ccic)], int(info.training.get("seed", 0)), None)[0]

    def run(images):
        return np.concatenate([classifier.predict_tensor(prep.normalize(images[s:s + 64]))
                               for s in range(0, len(images), 64)])

    out = {}
    for split in ("val", "test"):
        kept, images, _ = decode_all([e for e in examples if e.split == split], prep)
        out[f"{split}_p"], out[f"{split}_y"] = run(images), np.array([e.label for e in kept])
        out[f"{split}_path"] = np.array([str(e.path) for e in kept])
    for cls, key in (("Negative", "walls_neg_p"), ("Positive", "walls_pos_p")):  # resized to a patch, as
        if walls is not None and (walls / cls).is_dir():  # `mosaic` pastes them
            files = sorted((walls / cls).glob("*.jpg"))
            out[key] = run(np.stack([prep.to_uint8(Image.open(f).convert("RGB").resize((P, P), Image.BILINEAR))
                                     for f in files]))
    CACHE.mkdir(exist_ok=True)
    np.savez(cached, **out)
    return out


def crack_cells(rng, n_min: int, n_max: int) -> list[tuple[int, int]]:
    """An 8-connected self-avoiding random walk of n_min..n_max tiles (restarted when it gets stuck)."""
    n = int(rng.integers(n_min, n_max + 1))
    while True:
        cells = [(int(rng.integers(ROWS)), int(rng.integers(COLS)))]
        while len(cells) < n:
            r, c = cells[-1]
            steps = [(r + dy, c + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if (dy or dx) and 0 <= r + dy < ROWS and 0 <= c + dx < COLS and (r + dy, c + dx) not in cells]
            if not steps:
                break
            cells.append(steps[int(rng.integers(len(steps)))])
        if len(cells) == n:
            return cells


def simulate(neg: np.ndarray, pos: np.ndarray, n: int, seed: int) -> dict:
    """name -> (grids, truth): clean mosaics and cracked ones per crack size, as patch indices and probs."""
    rng = np.random.default_rng(seed)
    out = {"clean": rng.choice(neg, (n, ROWS, COLS))}
    for name, (lo, hi) in SIZES.items():
        grids = rng.choice(neg, (n, ROWS, COLS))
        for g in grids:
            for r, c in crack_cells(rng, lo, hi):
                g[r, c] = pos[rng.integers(len(pos))]
        out[name] = grids
    return out


def rates(grids: dict, t: float) -> dict:
    """rule -> {kind: (errors, mosaics)}: false alarms on clean photos, misses on cracked ones."""
    table = {}
    for rule, score in rules(t).items():
        row = {}
        for kind, g in grids.items():
            crack = score(g) >= t
            row[kind] = (int(crack.sum()) if kind == "clean" else int((~crack).sum()), len(g))
        table[rule] = row
    return table


def fmt(errors: int, total: int) -> str:
    return f"{errors / total:.2%} ({errors}/{total})"


def print_table(title: str, table: dict, chosen: str) -> None:
    kinds = list(next(iter(table.values())))
    print(f"\n{title}\n| rule | false alarms per clean photo | " + " | ".join(f"misses, {k}" for k in kinds[1:]) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for rule, row in table.items():
        name = f"**{rule}**" if rule == chosen else rule
        print(f"| {name} | " + " | ".join(fmt(*row[k]) for k in kinds) + " |")


def confirm_on_jpegs(model: Path, data: dict, split: str, count: int, seed: int, margin: float) -> str:
    """Real mosaic JPEGs (q90) of the split's patches through heatmap_of_file + photo_verdict: verdicts vs truth
    and vs the simulated verdict of the same patches. One clean mosaic holds the split's strongest false tile."""
    classifier = Classifier(model)
    t = classifier.threshold
    p, y, paths = data[f"{split}_p"], data[f"{split}_y"], data[f"{split}_path"]
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    rng = np.random.default_rng(seed)
    right = same = 0
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in range(count):
            cells = np.array(rng.choice(neg, ROWS * COLS, replace=False)).reshape(ROWS, COLS)
            cracked = m % 3 != 0  # a third crack-free
            if cracked:
                lo, hi = list(SIZES.values())[m % 3 - 1 + (m // 3) % 2]
                for r, c in crack_cells(rng, lo, hi):
                    cells[r, c] = pos[rng.integers(len(pos))]
            elif m == 0:
                cells[ROWS // 2, COLS // 2] = neg[np.argmax(p[neg])]  # the stray tile
            file = Path(tmp, f"mosaic{m}.jpg")
            mosaic([Image.open(paths[i]).convert("RGB") for i in cells.ravel()], COLS, P).save(file, quality=90)
            t0 = time.perf_counter()
            heatmap = heatmap_of_file(classifier, file, stride=P)
            seconds.append(time.perf_counter() - t0)
            real = photo_verdict(heatmap.probs, t, margin)
            simulated = photo_verdict(p[cells], t, margin)
            right += (real.label == "crack") == cracked
            same += real.label == simulated.label
            print(f"  jpeg {m}: {'cracked' if cracked else 'clean'}, today {heatmap.label}, rule {real.label} "
                  f"(simulated {simulated.label}); {real.reason}")
    return (f"{count} real JPEG mosaics ({split}): {right}/{count} verdicts right, {same}/{count} equal to the "
            f"simulated verdict, {np.median(seconds):.2f} s per photo")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append")
    ap.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    ap.add_argument("--walls", type=Path, default=ROOT.parent / "shared" / "data" / "walls")
    ap.add_argument("--mosaics", type=int, default=4000, help="simulated mosaics per kind (clean, each crack size)")
    ap.add_argument("--jpegs", type=int, default=6, help="real JPEG mosaics per model (test split)")
    args = ap.parse_args()
    models = args.model or [ROOT / "models" / "mobilenetv2.onnx", ROOT / "models" / "cnn.onnx"]
    data = {m: patch_probabilities(m, args.ccic, args.walls) for m in models}
    thresholds = {m: Classifier(m).threshold for m in models}

    # Calibration, validation only: the isolated-tile margin with the fewest errors on an equal mix of clean
    # photos and one-tile cracks, worst model counted (the rule ships once for every model).
    val = {}
    for m in models:
        d, t = data[m], thresholds[m]
        val[m] = rates(simulate(d["val_p"][d["val_y"] == 0], d["val_p"][d["val_y"] == 1], args.mosaics, 1), t)
        print(f"{m.name}: threshold {t}; val patches: {int((d['val_p'][d['val_y'] == 0] >= t).sum())}/"
              f"{int((d['val_y'] == 0).sum())} clean ones >= t (strongest {d['val_p'][d['val_y'] == 0].max():.4f}), "
              f"{int((d['val_p'][d['val_y'] == 1] < t).sum())}/{int((d['val_y'] == 1).sum())} cracked ones < t")

    def cost(rule):
        return max((val[m][rule]["clean"][0] + val[m][rule]["1 tile"][0]) / args.mosaics for m in models)

    family = [f"2 neighbouring, or 1 >= {name}" for name in MARGINS]
    chosen = min(family, key=cost)
    print(f"\nchosen on validation: {chosen} (worst-model false alarms + one-tile misses {cost(chosen):.2%}; "
          + ", ".join(f"{r.split('>= ')[-1]}: {cost(r):.2%}" for r in family) + ")")
    margin = MARGINS[chosen.split(">= ")[-1]]
    if not math.isclose(margin, ISOLATED_LOGIT_MARGIN):
        print(f"NOTE: differs from the shipped ISOLATED_LOGIT_MARGIN {ISOLATED_LOGIT_MARGIN:.2f}")
    for m in models:
        print_table(f"{m.name}, validation mosaics (calibration)", val[m], chosen)
    for m in models:
        d, t = data[m], thresholds[m]
        neg = d["test_p"][d["test_y"] == 0]
        print_table(f"{m.name}, test mosaics (reported once)",
                    rates(simulate(neg, d["test_p"][d["test_y"] == 1], args.mosaics, 2), t), chosen)
        if "walls_neg_p" in d and "walls_pos_p" in d:
            # Another surface: clean photos of walls negatives; cracks the model is less sure of (walls crack
            # images, 45% of them >= 0.5 on MobileNetV2) on ccic test background.
            walls_test = simulate(neg, d["walls_pos_p"], args.mosaics, 3)
            walls_test["clean"] = simulate(d["walls_neg_p"], d["walls_pos_p"], args.mosaics, 3)["clean"]
            print_table(f"{m.name}, robustness: clean = walls negatives, cracks = walls crack images",
                        rates(walls_test, t), chosen)
        if args.jpegs:
            print(confirm_on_jpegs(m, d, "test", args.jpegs, 4, ISOLATED_LOGIT_MARGIN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
