"""Cluster mode throughput: `crackdesk classify` locally vs on a one-node Ray cluster on this same machine.

On N 227x227 JPEGs (ccic from ../shared when present, else generated) and the shipped mobilenetv2 it
  1. starts a Ray head in a loopback-only network namespace (tests/raycluster.py), timing the start,
  2. runs `crackdesk classify` locally and `crackdesk classify --cluster` in interleaved rounds (other work on
     the machine hits both alike), each into a fresh workspace, and reports images/s over the whole command,
  3. profiles one cluster job in-process (in the namespace): connection, time to the first result, the driver's
     wait for results vs its own work (assembling, storing), and Ray Data's per-stage times,
  4. measures the driver's store rate alone: rows/s through the workspace's single writer, as the seam flushes
     them (hash, prediction and encoded features per photo).

    .venv/bin/python scripts/bench_cluster.py [--images 2000] [--rounds 3]
    .venv/bin/python scripts/bench_cluster.py --photos 24   # 3859x2951 camera mosaics (bench_photos) instead:
        each photo's 221 windows are cut on the workers and come back with their features (decision 38)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # raycluster: the same namespaced head the tests use

MODEL = ROOT / "models" / "mobilenetv2.onnx"

from bench_classify import image_folder  # noqa: E402  (hard links to ccic, else generated)


def timed_run(command: list[str], env: dict, n: int) -> dict:
    t0 = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{command[-6:]} failed:\n{result.stderr[-3000:]}")
    said = re.search(r"([\d.]+) images/s", result.stderr)
    return {"seconds": seconds, "rate": n / seconds, "summary_rate": float(said.group(1)) if said else None}


def profile(address: str, folder: Path, work: Path) -> dict:
    """One cluster job in this process (run inside the namespace): where the time goes."""
    from crackdesk.cluster import connected
    from crackdesk.core.classify import classify_into_workspace
    from crackdesk.core.inference import Classifier
    from crackdesk.core.models import load_model
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import open_workspace

    out = {}
    t0 = time.perf_counter()
    classifier = Classifier(load_model(MODEL, spinning=False))
    with connected(address):
        out["connect_s"] = time.perf_counter() - t0
        from crackdesk.cluster.runner import ClusterSource

        source = ClusterSource(classifier)
        waited = 0.0

        def timed_source(paths, cancel):
            nonlocal waited
            it = iter(source(paths, cancel))
            while True:
                t = time.perf_counter()
                batch = next(it, None)
                waited += time.perf_counter() - t
                if batch is None:
                    return
                yield batch

        with open_workspace(folder, work / "profile.sqlite") as ws:
            ws.sync(scan_folder(folder))
            items = [(r.id, r.path) for r in ws.rows()]
            t1 = time.perf_counter()
            report = classify_into_workspace(ws, classifier, items, source=timed_source)
            job = time.perf_counter() - t1
    out.update(job_s=job, first_result_s=source.stats.first_result, waiting_for_cluster_s=waited,
               driver_work_s=job - waited, classified=report.classified, duplicates=source.stats.duplicates,
               rate=report.classified / job)
    stats = "\n".join(source.stats.ray_stats)
    out["stages"] = {m.group(1): float(m.group(2)) for m in
                     re.finditer(r"Operator \d+ (\S+?):.*? in ([\d.]+)s", stats)}
    out["remote_wall_total_s"] = {name: float(total) for name, total in
                                  re.findall(r"Operator \d+ (\S+?):.*?\n\* Remote wall time: .*?([\d.]+)s total",
                                             stats)}
    return out


def store_rate(work: Path, n: int = 20000) -> float:
    """Rows/s the workspace's writer stores, flushed as the seam flushes (hash, prediction, 1,280-d features)."""
    import numpy as np

    from crackdesk.core.features import encode
    from crackdesk.core.store import open_workspace

    folder = work / "store"
    folder.mkdir()
    rng = np.random.default_rng(0)
    blob = encode(rng.random(1280).astype(np.float32))
    with open_workspace(folder, work / "store.sqlite") as ws:
        t0 = time.perf_counter()
        for start in range(0, n, 500):  # ~0.5 s of results per flush at a few hundred photos/s
            hashes = [(i, f"{i:064x}") for i in range(start, start + 500)]
            ws.set_results("m@1", [], [(h, 0.5, "crack") for _, h in hashes], [(h, blob) for _, h in hashes],
                           wait=False).result()
        return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=0,
                        help="camera photos (3859x2951 mosaics) instead of --images small patches")
    parser.add_argument("--profile", nargs=2, metavar=("ADDRESS", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:  # the child run inside the namespace
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(profile(args.profile[0], Path(args.profile[1]), Path(tmp))))
        return

    from raycluster import RayHead, unavailable_reason

    unit, digits = ("camera photos", 2) if args.photos else ("images", 0)

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"cannot start a test cluster here: {reason}")
    with tempfile.TemporaryDirectory(prefix="crk-bench-") as tmp:
        work = Path(tmp)
        ccic = ROOT.parent / "shared" / "data" / "ccic"
        if args.photos:
            from bench_photos import write_mosaics

            folder = work / "images"
            write_mosaics(folder, args.photos, ccic, seed=0)
            args.images = args.photos
        else:
            folder = image_folder(args.images, ccic, work)
        head = RayHead(cpus=os.cpu_count() or 1).start()
        print(f"{args.images} photos, {os.cpu_count()} cores; Ray head started in {head.start_seconds:.1f} s "
              "(not counted below)", flush=True)
        try:
            local, cluster = [], []
            for r in range(args.rounds):
                common = ["classify", folder, "--model", MODEL]
                local.append(timed_run([sys.executable, "-m", "crackdesk", *map(str, common), "--workspace",
                                        str(work / f"local{r}.sqlite")], head.env, args.images))
                cluster.append(timed_run(head.crackdesk(*common, "--workspace", work / f"cluster{r}.sqlite",
                                                        "--cluster", head.address), head.env, args.images))
                print(f"round {r + 1}: local {local[-1]['rate']:.{digits}f} {unit}/s ({local[-1]['seconds']:.1f} s), "
                      f"cluster {cluster[-1]['rate']:.{digits}f} {unit}/s ({cluster[-1]['seconds']:.1f} s)",
                      flush=True)
            profiled = subprocess.run(head.ns([sys.executable, __file__, "--profile", head.address, str(folder)]),
                                      env=head.env, capture_output=True, text=True, timeout=900)
            if profiled.returncode != 0:
                raise SystemExit(f"profile run failed:\n{profiled.stderr[-3000:]}")
            where = json.loads(profiled.stdout.strip().splitlines()[-1])
        finally:
            head.stop()
        rate = store_rate(work)
    lm, cm = statistics.median(x["rate"] for x in local), statistics.median(x["rate"] for x in cluster)
    print(f"\nmedian over {args.rounds} rounds, whole command (start-up, scan, connection included):")
    print(f"  local   {lm:.{digits}f} {unit}/s")
    print(f"  cluster {cm:.{digits}f} {unit}/s  = {cm / lm:.0%} of local (target >= 50%)")
    print("\nwhere one cluster job's time goes (profiled in-process):")
    print(json.dumps(where, indent=2))
    print(f"\ndriver store rate (workspace writer alone): {rate:,.0f} photos/s")


if __name__ == "__main__":
    main()
