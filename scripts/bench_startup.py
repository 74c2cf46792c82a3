"""Start-up time of the app: launch -> main window shown -> event loop running -> quit.

Runs `crackdesk gui DEMO --quit-after 0` (offscreen) a few times, from source and from the bundle when it
exists, and prints the median wall time. It includes shutdown, so it is an upper bound on the time to a
visible main window. Prints the bundle's size too.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "crackdesk"


def median_seconds(command: list[str], env: dict, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def folder_size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "crackdesk", "demo", str(demo), "--count", "48"], check=True,
                       cwd=ROOT, capture_output=True)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": tmp, "XDG_CONFIG_HOME": tmp,
               "CRACKDESK_DATA_DIR": str(Path(tmp) / "data"), "CRACKDESK_CACHE_DIR": str(Path(tmp) / "cache")}
        source = median_seconds([sys.executable, "-m", "crackdesk", "gui", str(demo), "--quit-after", "0"], env)
        print(f"from source: {source:.2f} s to a shown main window and back out (median of 5)")
        exe = BUNDLE / "crackdesk"
        if exe.exists():
            clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            clean["PATH"] = "/usr/bin:/bin"
            bundled = median_seconds([str(exe), "gui", str(demo), "--quit-after", "0"], clean)
            print(f"bundle:      {bundled:.2f} s to a shown main window and back out (median of 5)")
            print(f"bundle size: {folder_size_mb(BUNDLE):.0f} MB in {BUNDLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
