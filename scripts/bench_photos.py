"""Camera-photo benchmark (`make bench`, photos section; issue 11): large photos through the pipeline.

Photos: 3859x2951 JPEGs (q90), each a 17 x 13 mosaic of 227x227 ccic patches held out of the model's training
(its validation split, by the model's own seeded content-hash split), a third of them crack-free, the others with
a crack of 1 to 8 connected patches; every tile's truth is known. Without ../shared, generated concrete photos
(no verdict check). Measured in the same run, rounds interleaved (the machine is shared):
  (m) the model alone on pre-decoded windows, float and the fast path, at their best batch: tiles/s;
  (p) the pipeline end to end (read, hash, decode, cut, model, store into a workspace) per model: s per photo;
  target: p(fast) <= (221 / m(float)) / 1.5 s per photo.
Then every verdict against the truth, and the peak memory of `crackdesk classify` on --memory-photos photos
(hard links) in a child process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_classify import bench_model_lanes, peak_memory_mb  # noqa: E402
from crackdesk.core.classify import classify_into_workspace  # noqa: E402
from crackdesk.core.inference import IMAGES_IN_FLIGHT, Classifier, model_lanes  # noqa: E402
from crackdesk.core.models import ModelRegistry, create_session, load_model  # noqa: E402
from crackdesk.core.scan import scan_folder  # noqa: E402
from crackdesk.core.store import open_workspace  # noqa: E402
from crackdesk.core.tiling import TileGrid, cut_tiles, load_for_heatmap  # noqa: E402

COLS, ROWS, PATCH = 17, 13, 227


def held_out_patches(ccic: Path, seed: int) -> tuple[list[Path], list[Path]]:
    from training.data import collect

    examples = [e for e in collect([str(ccic)], seed, None)[0] if e.split == "val"]
    return [e.path for e in examples if e.label == 1], [e.path for e in examples if e.label == 0]


def crack_path(rng: np.random.Generator, length: int) -> set[tuple[int, int]]:
    """A connected walk of `length` grid cells: a crack crossing neighbouring patches."""
    r, c = int(rng.integers(ROWS)), int(rng.integers(COLS))
    cells = {(r, c)}
    while len(cells) < length:
        dr, dc = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, 1)][int(rng.integers(6))]
        r, c = min(ROWS - 1, max(0, r + dr)), min(COLS - 1, max(0, c + dc))
        cells.add((r, c))
    return cells


def write_mosaics(folder: Path, n: int, ccic: Path | None, seed: int) -> dict[str, bool]:
    """n photos; returns {file name: has a crack}. Patches are not reused across photos while they last."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1234)
    truth = {}
    if ccic is None or not ccic.is_dir():
        from crackdesk.core.demo import concrete_image

        for i in range(n):
            concrete_image(i, i % 3 != 0, (COLS * PATCH, ROWS * PATCH), cracks=2).save(folder / f"p{i:03}.jpg",
                                                                                      quality=90)
        return {}
    positives, negatives = held_out_patches(ccic, seed)
    rng.shuffle(positives)
    rng.shuffle(negatives)
    pos, neg = iter(positives * 8), iter(negatives * 8)
    for i in range(n):
        cells = set() if i % 3 == 0 else crack_path(rng, int(rng.integers(1, 9)))
        photo = Image.new("RGB", (COLS * PATCH, ROWS * PATCH))
        for r in range(ROWS):
            for c in range(COLS):
                with Image.open(next(pos) if (r, c) in cells else next(neg)) as patch:
                    photo.paste(patch.convert("RGB"), (c * PATCH, r * PATCH))
        name = f"p{i:03}.jpg"
        photo.save(folder / name, quality=90)
        truth[name] = bool(cells)
    return truth


def model_alone(model_path: Path, windows: np.ndarray) -> tuple[float, int]:
    """Best tiles/s of onnxruntime alone over pre-decoded, pre-normalised windows: one session at its best batch,
    or two batches side by side as the pipeline runs them (inference.model_lanes)."""
    session = create_session(model_path)
    name = session.get_inputs()[0].name
    best = (0.0, 0)
    for batch in (8, 16, 32):
        session.run(None, {name: windows[:batch]})
        start, done = time.perf_counter(), 0
        while done < len(windows):
            part = windows[done:done + batch]
            session.run(None, {name: part})
            done += len(part)
        best = max(best, (done / (time.perf_counter() - start), batch))
    lanes = model_lanes(os.cpu_count() or 1)
    if lanes > 1:  # the pipeline's own way, when it is faster: the reference must be the model's best
        best = max(best, (bench_model_lanes(model_path, windows, lanes), IMAGES_IN_FLIGHT // lanes))
    return best


def end_to_end(model_path: Path, folder: Path, work: Path, tag: str) -> tuple[float, dict]:
    """Seconds per photo of classify_into_workspace (what `crackdesk classify` and the GUI run); verdicts."""
    classifier = Classifier(model_path)
    db = work / f"{tag}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with open_workspace(folder, db) as ws:
        ws.sync(scan_folder(folder))
        items = [(r.id, r.path) for r in ws.rows()]
        verdicts = {}
        start = time.perf_counter()
        classify_into_workspace(ws, classifier, items, on_batch=lambda pairs, done, total: verdicts.update(
            {p.path.name: p.label == "crack" for _, p in pairs}))
        seconds = time.perf_counter() - start
    return seconds / len(items), verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv2", help="the float model (the reference)")
    parser.add_argument("--fast", default="mobilenetv2-int8", help="the fast path")
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    parser.add_argument("--memory-photos", type=int, default=500, help="0 to skip the memory run")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="also copy the photos to DIR (e.g. for bench_gui.py --folder DIR --compare-cli)")
    args = parser.parse_args()

    registry = ModelRegistry()
    models = {"float": registry.find(args.model).path, "fast": registry.find(args.fast).path}
    info = load_model(models["float"]).info
    seed = int(info.training.get("seed", 0))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "photos"
        t0 = time.perf_counter()
        truth = write_mosaics(folder, args.photos, args.data, seed)
        print(f"{args.photos} photos of {COLS * PATCH}x{ROWS * PATCH} ({COLS * ROWS} windows each) written in "
              f"{time.perf_counter() - t0:.0f} s; {sum(truth.values())} with a crack", file=sys.stderr)
        if args.keep:
            import shutil

            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
        first = sorted(folder.iterdir())[0]
        image = load_for_heatmap(first)
        grid = TileGrid.for_image(image.width, image.height, info.patch_px)
        windows = cut_tiles(image, grid, Classifier(models["float"]))
        normalised = info.preprocessing.normalize(np.concatenate([windows] * 3))  # 663 windows
        rounds = {k: [] for k in ("m_float", "m_fast", "p_fast", "p_float")}
        verdicts = {}
        for r in range(args.rounds):
            rounds["m_float"].append(model_alone(models["float"], normalised)[0])
            rounds["m_fast"].append(model_alone(models["fast"], normalised)[0])
            for key in ("fast", "float"):
                seconds, verdicts[key] = end_to_end(models[key], folder, work, key)
                rounds[f"p_{key}"].append(seconds)
            print(f"round {r + 1}: model alone float {rounds['m_float'][-1]:.0f} tiles/s, fast "
                  f"{rounds['m_fast'][-1]:.0f} tiles/s; pipeline fast {rounds['p_fast'][-1]:.3f} s/photo, float "
                  f"{rounds['p_float'][-1]:.3f} s/photo", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in rounds.items()}
        budget = len(grid) / med["m_float"] / 1.5
        print(f"\nmodels: float {registry.find(args.model).key}, fast {registry.find(args.fast).key}; "
              f"{os.cpu_count()} cores; medians of {args.rounds} interleaved rounds")
        print(f"model alone, pre-decoded windows   float {med['m_float']:7.0f} tiles/s   fast (its graph alone, "
              f"every window) {med['m_fast']:7.0f} tiles/s ({med['m_fast'] / med['m_float']:.2f}x)")
        screen = Classifier(models["fast"]).screen
        if screen is not None:
            print(f"the fast path's pipeline screens windows with {screen.key} (model metadata 'screen')")
        for key in ("fast", "float"):
            s = med[f"p_{key}"]
            print(f"pipeline end to end, {key:<5}        {s:.3f} s/photo = {1 / s:5.2f} photos/s = "
                  f"{len(grid) / s:5.0f} tiles/s  (rounds: {', '.join(f'{x:.3f}' for x in rounds[f'p_{key}'])})")
        print(f"target: at most {budget:.3f} s/photo (the float model alone on {len(grid)} windows / 1.5): "
              f"{'met' if med['p_fast'] <= budget else 'NOT met'} by the fast path "
              f"({len(grid) / med['m_float'] / med['p_fast']:.2f}x the float model alone)")
        for key in ("fast", "float"):
            if truth:
                wrong = [n for n, t in truth.items() if verdicts[key].get(n) != t]
                clean = sum(not t for t in truth.values())
                false_alarms = sum(1 for n in wrong if not truth[n])
                print(f"verdicts, {key:<5}: {len(truth) - len(wrong)}/{len(truth)} right; false alarms "
                      f"{false_alarms}/{clean} clean photos, misses {len(wrong) - false_alarms}/"
                      f"{len(truth) - clean} cracked photos {wrong if wrong else ''}")
        if args.memory_photos:
            peak, rate, _ = peak_memory_mb(models["fast"], folder, args.memory_photos, work)
            per_photo = 1 / rate
            print(f"crackdesk classify on {args.memory_photos} such photos (fast path): peak RSS {peak:.0f} MB, "
                  f"{per_photo:.3f} s/photo including start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
