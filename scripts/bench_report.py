"""Report benchmark (issue 12): `crackdesk report` on 40,000 photos of which 2,000 are judged cracked.

The folder: 40,000 hard links (in 40 sub-folders, one per span) to a few generated camera-size photos
(4032x3024 JPEG, concrete texture, EXIF with GPS and capture time). Hard links share their content, so the
workspace is filled directly through its API, as classification would have left it: a distinct content
hash per photo, its metadata (a GPS position along the bridge, a capture time), a prediction of the default
model (2,000 cracked, each with its 252 stored heatmap tiles, as a large photo has) and some human labels.
Then `crackdesk report` runs in a child process: wall time, and its peak memory (its own VmHWM, polled).
"""

from __future__ import annotations

import argparse
import hashlib
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
sys.path.insert(0, str(ROOT / "tests"))  # factories: EXIF written with Pillow's own API

from crackdesk.core.demo import concrete_image  # noqa: E402
from crackdesk.core.exif import PhotoMeta  # noqa: E402
from crackdesk.core.models import ModelRegistry  # noqa: E402
from crackdesk.core.scan import scan_folder  # noqa: E402
from crackdesk.core.store import Workspace  # noqa: E402
from crackdesk.core.tiling import TileGrid  # noqa: E402
from factories import camera_exif, with_thumbnail  # noqa: E402

SIZE = (4032, 3024)


def source_photos(work: Path, count: int, embedded: bool = True) -> list[Path]:
    """Camera-size photos, half with cracks, each with a camera's EXIF: GPS, time and (as cameras and phones
    embed one) a 160x120 thumbnail, unless `embedded` is False."""
    paths = []
    for i in range(count):
        path = work / f"source_{i}.jpg"
        photo = concrete_image(i, i % 2 == 0, size=SIZE, cracks=2)
        exif = camera_exif(-33.8568, 151.2153, "2025:03:14 09:00:00", "Canon", "EOS R6", alt=12.0)
        photo.save(path, quality=90, exif=with_thumbnail(exif, photo.resize((160, 120))) if embedded else exif)
        paths.append(path)
    return paths


def build_folder(work: Path, photos: int, cracked: int, sources: list[Path], model_key: str, patch: int) -> Path:
    folder, every, half = work / "bridge", photos // cracked, len(sources) // 2
    for i in range(photos):  # natural order: photo i is row i of the workspace
        sub = folder / f"span_{i * 40 // photos + 1:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        os.link(sources[2 * (i % half) + (i % every != 0)], sub / f"IMG_{i:05d}.jpg")  # cracked: a crack photo
    rng = np.random.default_rng(0)
    grid = TileGrid.for_image(*SIZE, patch)
    with Workspace(folder) as ws:
        ws.sync(scan_folder(folder))
        rows = ws.rows()
        crack_ids = {r.id for k, r in enumerate(rows) if k % every == 0}
        hashes = {r.id: hashlib.blake2b(r.path.encode(), digest_size=16).hexdigest() for r in rows}
        ws.set_hashes(hashes.items())
        ws.set_photo_meta((hashes[r.id], PhotoMeta(
            f"2025-03-{14 + k // 10000:02d}T{9 + k % 10000 // 1200:02d}:{k % 1200 // 20:02d}:{k % 20 * 3:02d}",
            -33.8568 + k * 2e-7, 151.2153 + (k % 40) * 1e-5, 12.0, "Canon", "EOS R6", *SIZE, 1))
            for k, r in enumerate(rows))
        ws.set_predictions(model_key, [(hashes[r.id], p, "crack" if p >= 0.5 else "no_crack") for r, p in
                                       ((r, 0.5 + 0.5 * rng.random() if r.id in crack_ids else 0.5 * rng.random())
                                        for r in rows)])
        for image_id in crack_ids:  # large photos keep their tiles: the report draws them
            probs = rng.random(len(grid)) * rng.choice([0.6, 1.0])
            ws.set_tile_results(hashes[image_id], model_key, [(*box, p) for box, p in zip(grid.boxes(), probs)],
                                wait=False)
        ws.flush()
        reviewed = sorted(crack_ids)[::4]  # a quarter of the findings confirmed, and some clean photos checked
        ws.set_labels({i: "crack" for i in reviewed} | {r.id: "no_crack" for r in rows[1::97]})
    return folder


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0  # exited between poll() and open()


def run_report(folder: Path, out: Path, model: str) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak memory (MB) of the `crackdesk report` child, and its summary line.
    CPU time says what the report costs when other work shares the cores (wall time then says little)."""
    log = out.parent / "report.log"
    start = time.perf_counter()
    with open(log, "w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "crackdesk", "report", str(folder), "--out", str(out),
                                  "--model", model, "--title", "Bridge benchmark", "--inspector", "bench"],
                                 stderr=stderr, cwd=ROOT)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
            time.sleep(0.1)
    seconds = time.perf_counter() - start
    text = log.read_text()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"crackdesk report failed ({status}):\n{text[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024, text.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40_000)
    parser.add_argument("--cracked", type=int, default=2_000)
    parser.add_argument("--sources", type=int, default=8, help="distinct photos the links point to")
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--no-embedded-thumbnails", action="store_true",
                        help="photos without the EXIF thumbnail cameras embed: every finding is decoded")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the folder in DIR and keep it; reused "
                                                                   "when it is there already (profiling)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    entry = ModelRegistry().find(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        started = time.perf_counter()
        folder = work / "bridge"
        if not folder.is_dir():
            work.mkdir(parents=True, exist_ok=True)
            sources = source_photos(work, args.sources, not args.no_embedded_thumbnails)
            folder = build_folder(work, args.photos, args.cracked, sources, entry.key, entry.info.patch_px)
        setup = time.perf_counter() - started
        seconds, cpu, peak_mb, summary = run_report(folder, Path(tmp) / "report", args.model)
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "report").iterdir()}
    result = {"photos": args.photos, "cracked": args.cracked, "seconds": round(seconds, 1),
              "cpu_seconds": round(cpu, 1), "load_average": os.getloadavg()[0],
              "peak_mb": round(peak_mb), "sizes_mb": {k: round(v / 1e6, 1) for k, v in sizes.items()},
              "setup_seconds": round(setup), "cores": os.cpu_count(), "summary": summary}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
