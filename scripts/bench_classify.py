"""Classification throughput benchmark (`make bench`): how close CrackDesk gets to this machine's limit.

On the same folder of 227x227 JPEGs and the same model it measures
  (a) CrackDesk end to end: read, hash, decode, preprocess, infer, store (classify_into_workspace, as
      `crackdesk classify` runs it: small images in a worker process beside this one, decision 51), and beside it
      the threaded pipeline alone (the GUI's path),
  (b) the naive loop: per image, Pillow decode + resize, one onnxruntime call with batch 1,
  (c) the model alone: onnxruntime on pre-decoded tensors, the better of one session at its best batch size and
      the pipeline's way (two batches side by side on single-threaded runs, inference.model_lanes),
  (d) decode + preprocess alone, on one core,
  (e) PyTorch eager on the same images (when torch and the training module are installed),
  (g) the command from outside: `crackdesk classify` on the folder in a child process, start-up, scan, a new
      workspace and exit included (what an inspector waits for, and how the issue measures it),
  (h) the same command on a site-sized folder (--site-images, hard links to the same images), where its fixed
      start-up and exit (about 0.3 s: Python, numpy, onnxruntime, the model's sessions) weigh as on a real site,
      against an L of its own measured right before and right after it,
  (f) the ideal split: one process per core, each decoding its share and running the model on it, nothing shared
      (ideal_split.py): what a program with nothing shared between its cores reaches here, decoding and the
      model sharing only the hardware,
and the machine's limit L = 1 / (1/c + 1/(cores * d)): every core busy all the time. c and d are measured right
before and right after (a) in each round and averaged, so the VM's drift does not fall on one side of (a); so is (f),
closest to (a).
Each round also prints the share of each measurement's core time the hypervisor gave other guests (steal,
host_steal.py), and the fraction with that time given back: a round the VM lost, told from one the program lost.
Then the peak memory of `crackdesk classify` on --memory-images images (hard links), in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.classify import classify_into_workspace  # noqa: E402
from crackdesk.core.images import load_rgb  # noqa: E402
from crackdesk.core.inference import IMAGES_IN_FLIGHT, Classifier, model_lanes  # noqa: E402
from crackdesk.core.models import ModelRegistry, create_session, load_model  # noqa: E402
from crackdesk.core.scan import scan_folder  # noqa: E402
from crackdesk.core.store import open_workspace  # noqa: E402
from crackdesk.core.worker_processes import small_image_workers  # noqa: E402
from host_steal import measured  # noqa: E402
from ideal_split import IdealSplit  # noqa: E402


def image_folder(n: int, source: Path | None, work: Path) -> Path:
    """n JPEGs: hard links to real ccic images when available, else generated demo images."""
    folder = work / "images"
    folder.mkdir()
    if source and source.is_dir():
        files = sorted((source / "Positive").glob("*.jpg"))[: n // 2] + sorted((source / "Negative").glob("*.jpg"))
        files = files[:n]
        for i, f in enumerate(files):
            os.link(f, folder / f"{i:06d}.jpg")
        return folder
    from crackdesk.core.demo import concrete_image

    for i in range(n):
        concrete_image(i, i % 3 == 0).save(folder / f"{i:06d}.jpg", quality=90)
    return folder


def bench_end_to_end(model_path: Path, folder: Path, work: Path, threads_only: bool = False) -> float:
    """(a): images/s of classify_into_workspace as `crackdesk classify` runs it on this folder (decision 51: small
    images in a worker process beside this one, when the folder is worth it), its start excluded as the model's
    loading is; with `threads_only`, the threaded pipeline (the GUI's, and every run's before decision 51)."""
    classifier = Classifier(model_path)
    work.mkdir(exist_ok=True)
    with open_workspace(folder, work / "ws.sqlite") as ws:
        ws.sync(scan_folder(folder))
        items = [(r.id, r.path) for r in ws.rows()]
        workers = None if threads_only else small_image_workers(folder, [p for _, p in items],
                                                                classifier.info.patch_px)
        with workers or nullcontext():
            if workers:
                workers.prepare(classifier)
            start = time.perf_counter()
            report = classify_into_workspace(ws, classifier, items,
                                             source=workers.source(classifier) if workers else None)
            seconds = time.perf_counter() - start
        if workers and workers.note:
            raise SystemExit(f"(a): {workers.note}")
    return report.classified / seconds


def bench_naive(model_path: Path, paths: list[Path], pre) -> float:
    session = create_session(model_path)
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for p in paths:
        session.run(None, {name: pre(load_rgb(p))[None]})
    return len(paths) / (time.perf_counter() - start)


def bench_model_alone(model_path: Path, tensors: np.ndarray, batches=(1, 4, 16, 32)) -> tuple[float, int]:
    session = create_session(model_path)
    name = session.get_inputs()[0].name
    best = (0.0, 1)
    for batch in batches:
        session.run(None, {name: tensors[:batch]})  # warm-up
        start, done = time.perf_counter(), 0
        while done < len(tensors):
            chunk = tensors[done:done + batch]
            session.run(None, {name: chunk})
            done += len(chunk)
        best = max(best, (done / (time.perf_counter() - start), batch))
    return best


def bench_model_lanes(model_path: Path, tensors: np.ndarray, lanes: int, batch: int | None = None) -> float:
    """The model alone the way the pipeline runs it: `lanes` batches side by side, each on one session with its share
    of the cores (inference.model_lanes). (c) is the better of this and the one-session best."""
    cores = os.cpu_count() or 1
    batch = batch or IMAGES_IN_FLIGHT // lanes  # each lane's batch, as the Classifier sizes it
    session = create_session(model_path, threads=max(1, cores // lanes), spinning=False)
    name = session.get_inputs()[0].name
    session.run(None, {name: tensors[:batch]})
    starts = list(range(0, len(tensors), batch))

    def lane(k):
        for i in starts[k::lanes]:
            session.run(None, {name: tensors[i:i + batch]})

    threads = [threading.Thread(target=lane, args=(k,)) for k in range(lanes)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(tensors) / (time.perf_counter() - start)


def bench_decode(paths: list[Path], pre) -> float:
    """(d): decode, resize and normalise, all the app does per image, each result dropped as the app drops it
    after its batch. Kept, the 2,000 tensors were 600 MB of fresh memory: its page faults (75 an image) made (d)
    20-45% slower in a process's first rounds than in its later ones, and L moved with them."""
    start = time.perf_counter()
    for p in paths:
        pre(load_rgb(p))
    return len(paths) / (time.perf_counter() - start)


def decoded(paths: list[Path], pre) -> np.ndarray:
    """The model's inputs for (c) and (e), decoded once, untimed."""
    return np.stack([pre(load_rgb(p)) for p in paths])


def bench_torch(info, tensors: np.ndarray) -> float | None:
    try:
        import torch

        from training.archs import build as build_model
    except Exception as e:  # the app installs without training
        print(f"(e) skipped: {e}", file=sys.stderr)
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    model = build_model(info.architecture, info.preprocessing.input_size[0]).eval()
    x = torch.from_numpy(tensors)
    with torch.inference_mode():
        model(x[:8])
        start = time.perf_counter()
        for i in range(0, len(x), 32):
            torch.sigmoid(model(x[i:i + 32]))
    return len(x) / (time.perf_counter() - start)


def bench_command(model_path: Path, folder: Path, n: int, workspace: Path) -> float:
    """(g): images/s of `crackdesk classify` on the folder's n images as an inspector runs it, from the child's
    start to its exit."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "crackdesk", "classify", str(folder), "--model", str(model_path),
                           "--workspace", str(workspace)], stderr=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"crackdesk classify failed with exit status {done.returncode}")
    return n / seconds


def linked_folder(source_folder: Path, n: int, big: Path) -> Path:
    """n images in folders of 1,000, hard links to the source folder's images taken in turn."""
    big.mkdir()
    files = sorted(source_folder.iterdir())
    for i in range(n):
        sub = big / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        os.link(files[i % len(files)], sub / f"{i:06d}.jpg")
    return big


def peak_memory_mb(model_path: Path, source_folder: Path, n: int, work: Path) -> tuple[float, float, float]:
    """Max RSS (MB) and rate of `crackdesk classify` on n images made by hard-linking the source images,
    and the seconds scan_folder takes to list them (warm cache)."""
    big = linked_folder(source_folder, n, work / "many")
    start = time.perf_counter()
    listed = len(scan_folder(big))
    scan_seconds = time.perf_counter() - start
    assert listed == n
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "crackdesk", "classify", str(big), "--model", str(model_path),
                              "--workspace", str(work / "many.sqlite")], stderr=subprocess.DEVNULL, cwd=ROOT)
    # The high-water marks of the child and of its worker processes, added. Not getrusage(RUSAGE_CHILDREN): a
    # forked child inherits this (large) process's peak, and Linux keeps it across exec.
    peaks: dict[int, int] = {}
    while child.poll() is None:
        for pid in [child.pid, *_children(child.pid)]:
            peaks[pid] = max(peaks.get(pid, 0), _vm_hwm_kb(pid))
        time.sleep(0.2)
    if child.returncode:
        raise SystemExit(f"crackdesk classify failed with exit status {child.returncode}")
    seconds = time.perf_counter() - start
    return sum(peaks.values()) / 1024, n / seconds, scan_seconds


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0  # exited between poll() and open()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    parser.add_argument("--memory-images", type=int, default=40000, help="0 to skip the memory run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of (b), (d), (c), (f), (a), (f), (c), (d): each fraction is against "
                             "its own round's L and (f), measured before and after (a)")
    parser.add_argument("--no-split", action="store_true", help="skip (f), the ideal split")
    parser.add_argument("--site-images", type=int, default=10000,
                        help="(h): the command on a folder this size (hard links to the images), 0 to skip")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model_path = ModelRegistry().find(args.model).path
    info = load_model(model_path).info
    cores = os.cpu_count() or 1
    lanes = model_lanes(cores)
    split = None if args.no_split else IdealSplit(model_path, cores, IMAGES_IN_FLIGHT // lanes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = image_folder(args.images, args.data, work)
        paths = sorted(folder.iterdir())
        site = linked_folder(folder, args.site_images, work / "site") if args.site_images else None
        tensors = decoded(paths, info.preprocessing)
        rounds = []
        for r in range(args.rounds):  # the machine is shared: each round's rates are compared with each other
            # L is measured right before and right after (a), and averaged: the VM's speed drifts within a minute,
            # and a limit measured on one side only would credit or charge (a) with that drift.
            b, b_host = measured(bench_naive, model_path, paths, info.preprocessing)
            d_before, d_host_before = measured(bench_decode, paths, info.preprocessing)
            (c_one, best_batch), c_host_one = measured(bench_model_alone, model_path, tensors)
            c_lanes, c_host_lanes = (measured(bench_model_lanes, model_path, tensors, lanes) if lanes > 1
                                     else (0.0, 0.0))
            f_before = split.rate(paths) if split else 0.0
            a, a_host = measured(bench_end_to_end, model_path, folder, work / f"round{r}")
            f_after = split.rate(paths) if split else 0.0
            (c_after_one, _), c_host_after_one = measured(bench_model_alone, model_path, tensors, (best_batch,))
            c_after_lanes, c_host_after_lanes = (measured(bench_model_lanes, model_path, tensors, lanes) if lanes > 1
                                                 else (0.0, 0.0))
            d_after, d_host_after = measured(bench_decode, paths, info.preprocessing)
            c_after = max(c_after_one, c_after_lanes)
            a_threads = bench_end_to_end(model_path, folder, work / f"round{r}-threads", threads_only=True)
            g = bench_command(model_path, folder, len(paths), work / f"round{r}-command.sqlite")
            c = (max(c_one, c_lanes) + c_after) / 2
            d = (d_before + d_after) / 2
            limit = 1.0 / (1.0 / c + 1.0 / (cores * d))
            h = limit_h = None
            if site is not None:  # (h) with an L of its own: the model alone and decoding right before and after it
                h = bench_command(model_path, site, args.site_images, work / f"round{r}-site.sqlite")
                c_h = max(bench_model_alone(model_path, tensors, (best_batch,))[0],
                          bench_model_lanes(model_path, tensors, lanes) if lanes > 1 else 0.0)
                d_h = bench_decode(paths, info.preprocessing)
                limit_h = 1.0 / (2.0 / (c_after + c_h) + 2.0 / (cores * (d_after + d_h)))
            # The same with the core time the host took from each measurement given back (host_steal.py): tells a
            # round the VM lost to its neighbours from one the program lost.
            c_host = ((c_host_lanes if c_lanes > c_one else c_host_one)
                      + (c_host_after_lanes if c_after_lanes > c_after_one else c_host_after_one)) / 2
            d_host = (d_host_before + d_host_after) / 2
            limit_own = 1.0 / ((1.0 - c_host) / c + (1.0 - d_host) / (cores * d))
            a_own = a / (1.0 - a_host)
            f = (f_before + f_after) / 2
            rounds.append({"a": a, "a_threads": a_threads, "g": g, "h": h, "L_h": limit_h, "b": b, "c": c,
                           "c_one_session": c_one,
                           "c_lanes": c_lanes, "c_after": c_after, "d": d, "d_before": d_before, "d_after": d_after,
                           "L": limit,
                           "best_batch": best_batch, "host_took_a": a_host, "host_took_b": b_host,
                           "host_took_c": c_host, "host_took_d": d_host, "a_own": a_own, "L_own": limit_own,
                           "f": f or None, "f_before": f_before or None, "f_after": f_after or None})
            print(f"round {r + 1}: (a) {a:.0f} (the threaded pipeline {a_threads:.0f} = {a_threads / limit:.1%} of L; "
                  f"the command from outside {g:.0f} = "
                  f"{g / limit:.1%} of L)  (b) {b:.0f}  (c) {c:.0f} (before: one session "
                  f"{c_one:.0f}, {lanes} lanes {c_lanes:.0f}; after {c_after:.0f})  (d) {d:.0f} (before {d_before:.0f}, "
                  f"after {d_after:.0f})  L {limit:.0f}: a = {a / limit:.1%} of L, {a / b:.2f}x the naive loop; "
                  f"the host took {a_host:.1%} of (a)'s core time, {c_host:.1%} of (c)'s, {d_host:.1%} of (d)'s: "
                  f"without it a = {a_own / limit_own:.1%} of L"
                  + (f"; (f) {f:.0f} (before {f_before:.0f}, after {f_after:.0f}) = {f / limit:.1%} of L: "
                     f"a = {a / f:.1%} of (f)" if split else "")
                  + (f"; (h) the command on {args.site_images} images {h:.0f} = {h / limit_h:.1%} of its L "
                     f"({limit_h:.0f})" if h else ""), file=sys.stderr)
        if split:
            split.close()
        e = bench_torch(info, tensors[:512])
        memory_mb, memory_rate, scan_seconds = (peak_memory_mb(model_path, folder, args.memory_images, work)
                                                if args.memory_images else (None, None, None))
    median = {k: statistics.median(r[k] for r in rounds) for k in ("a", "a_threads", "g", "b", "c", "d", "L")}
    a, b, c, d, limit = (median[k] for k in ("a", "b", "c", "d", "L"))
    best_batch = rounds[-1]["best_batch"]
    fractions = [r["a"] / r["L"] for r in rounds]
    speedups = [r["a"] / r["b"] for r in rounds]
    own_fractions = [r["a_own"] / r["L_own"] for r in rounds]
    of_split = [r["a"] / r["f"] for r in rounds] if split else None
    result = {
        "model": f"{info.name}@{info.version}", "images": len(paths), "cores": cores,
        "source": "ccic" if args.data.is_dir() else "generated", "rounds": rounds,
        "a_end_to_end": a, "a_threads": median["a_threads"],
        "a_threads_fraction_of_L_per_round": [r["a_threads"] / r["L"] for r in rounds], "model_lanes": lanes,
        "b_naive": b,
        "g_command": median["g"], "g_fraction_of_L_per_round": [r["g"] / r["L"] for r in rounds],
        "h_site_images": args.site_images or None,
        "h_fraction_of_L_per_round": [r["h"] / r["L_h"] for r in rounds] if site is not None else None,
        "c_model_alone": c, "c_best_batch": best_batch,
        "d_decode_per_core": d, "e_torch_eager": e, "limit_L": limit,
        "a_fraction_of_L_per_round": fractions, "a_over_b_per_round": speedups,
        "a_fraction_of_L": a / limit, "b_fraction_of_L": b / limit,
        "a_fraction_of_L_without_host_steal_per_round": own_fractions,
        "f_ideal_split": statistics.median(r["f"] for r in rounds) if split else None,
        "a_fraction_of_f_per_round": of_split,
        "classify_memory_images": args.memory_images or None, "classify_peak_rss_mb": memory_mb,
        "classify_memory_run_rate": memory_rate, "scan_seconds": scan_seconds,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {result['model']}, {len(paths)} {result['source']} 227x227 JPEGs, {cores} cores (images/s, "
          f"medians of {len(rounds)} interleaved rounds)")
    print(f"(a) CrackDesk end to end          {a:8.0f}   {a / limit:5.1%} of L")
    threads_rounds = ", ".join(f"{r['a_threads'] / r['L']:.1%}" for r in rounds)
    print(f"    the threaded pipeline alone   {median['a_threads']:8.0f}   {median['a_threads'] / limit:5.1%} of L "
          f"(the GUI's path, and every run's before decision 51; per round {threads_rounds})")
    g_rounds = ", ".join(f"{r['g'] / r['L']:.1%}" for r in rounds)
    print(f"(g) crackdesk classify, outside   {median['g']:8.0f}   {median['g'] / limit:5.1%} of L "
          f"(start-up, scan, workspace and exit included; per round {g_rounds})")
    if site is not None:
        h_rounds = [r["h"] / r["L_h"] for r in rounds]
        label = f"(h) the same on {args.site_images} images"
        print(f"{label:33s} {statistics.median(r['h'] for r in rounds):8.0f}   "
              f"{statistics.median(h_rounds):5.1%} of L (each round against an L measured around it; per round "
              f"{', '.join(f'{x:.1%}' for x in h_rounds)})")
    print(f"(b) naive loop, batch 1           {b:8.0f}   {b / limit:5.1%} of L")
    print(f"(c) model alone                   {c:8.0f}   (the better of one session at batch {best_batch} and "
          f"{lanes} lanes at {IMAGES_IN_FLIGHT // lanes}; the mean of before and after (a))")
    print(f"(d) decode + preprocess, 1 core   {d:8.0f}   (the mean of before and after (a))")
    print(f"(e) PyTorch eager                 {e:8.0f}" if e else "(e) PyTorch eager                 skipped")
    print(f"L = 1/(1/c + 1/(cores*d))         {limit:8.0f}")
    print(f"(a) per round: {', '.join(f'{f:.1%}' for f in fractions)} of that round's L; "
          f"{', '.join(f'{x:.2f}x' for x in speedups)} the naive loop (worst {min(fractions):.1%}, {min(speedups):.2f}x)")
    host_took = ", ".join(f"{r['host_took_a']:.1%}" for r in rounds)
    print(f"    the host took {host_took} of (a)'s core time; with the time "
          f"it took from (a), (c) and (d) given back: {', '.join(f'{f:.1%}' for f in own_fractions)} of L")
    if of_split:
        split_of_L = ", ".join(f"{r['f'] / r['L']:.1%}" for r in rounds)
        print(f"(f) the ideal split per round: {split_of_L} of L; (a) = {', '.join(f'{x:.1%}' for x in of_split)} "
              f"of (f)")
    if memory_mb is not None:
        print(f"crackdesk classify on {args.memory_images} images: peak RSS {memory_mb:.0f} MB (with its workers), "
              f"{memory_rate:.0f} images/s (including start-up and scan); listing them took {scan_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
