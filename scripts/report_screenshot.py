"""The README's picture of a report (`python scripts/report_screenshot.py docs`): a demo bridge folder whose
photos carry EXIF GPS and capture times (walked pier by pier), classified with the shipped default model,
a few photos reviewed, then `crackdesk report`; the PDF's first page is rendered with pdftoppm into
DIR/report-first-page.png and the HTML's top with headless Chromium into DIR/report-html.png."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # factories: EXIF written with Pillow's own API

from crackdesk.core.demo import read_truth, write_demo_folder  # noqa: E402
from crackdesk.core.inference import Classifier  # noqa: E402
from crackdesk.core.models import ModelRegistry  # noqa: E402
from crackdesk.core.session import FolderSession  # noqa: E402
from factories import camera_exif  # noqa: E402


def survey(folder: Path) -> None:
    """Demo photos, given the EXIF a phone would have written walking along the bridge."""
    write_demo_folder(folder, count=96, seed=4)
    for n, path in enumerate(sorted(folder.rglob("*.jpg"))):
        north = path.parent.name == "pier-north"
        lat = -27.4698 + (0.00042 if north else 0.0) + n * 2.1e-6
        lon = 153.0251 + n * 3.4e-6
        exif = camera_exif(lat, lon, f"2025:03:{14 + n // 60:02d} {9 + n % 60 // 20:02d}:{n % 20 * 3:02d}:10",
                           "Apple", "iPhone 15", alt=8.0)
        with Image.open(path) as image:
            image.load()
        image.save(path, quality=90, exif=exif)


def main(out_dir: str) -> int:
    out_dir = Path(out_dir)
    entry = ModelRegistry().find(None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tempfile.gettempdir()) / "inspections" / "Story Bridge"  # the path the picture shows
        shutil.rmtree(folder, ignore_errors=True)
        survey(folder)
        truth = read_truth(folder)
        with FolderSession.open(folder) as session:
            session.classify(Classifier(entry.path))
            rows = session.rows()
            reviewed = {r.id: truth[r.path] for r in rows[:60]}  # the first 60 photos checked by a person
            session.submit_labels(reviewed).result()
        report = Path(tmp) / "report"
        subprocess.run([sys.executable, "-m", "crackdesk", "report", str(folder), "--out", str(report),
                        "--title", "Story Bridge: spring inspection", "--inspector", "A. Inspector"],
                       check=True, cwd=ROOT)
        subprocess.run(["pdftoppm", "-r", "80", "-f", "1", "-l", "1", "-png", "-singlefile",
                        str(report / "report.pdf"), str(out_dir / "report-first-page")], check=True)
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run",
                            f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=1100,1500",
                            f"--screenshot={out_dir / 'report-html.png'}", (report / "report.html").as_uri()],
                           check=True, capture_output=True)
        shutil.rmtree(folder)
    print(f"wrote {out_dir / 'report-first-page.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "docs"))
