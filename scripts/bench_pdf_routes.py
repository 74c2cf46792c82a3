"""Which way to write the report's PDF (docs/decisions.md, note 16): the findings table of a big report,
2,000 rows each with a JPEG thumbnail, on A4, by four routes, each in a fresh child process (time, its own
peak memory VmHWM, file size, pages):

  qt_painter       QPainter on QPdfWriter, laid out by hand (what crackdesk/report/pdf.py does)
  qt_textdocument  an HTML table in QTextDocument, printed to QPdfWriter
  fpdf2            fpdf2's table API          (pip install fpdf2; not a CrackDesk dependency)
  reportlab        reportlab's platypus Table (pip install reportlab; not a CrackDesk dependency)

A route whose library is missing is reported as such. `--libs DIR` adds a folder to the import path (e.g.
`pip install --target DIR fpdf2 reportlab`, to measure without installing them into the environment).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 2000
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fpdf2 and reportlab need a TTF file for Unicode


def thumbnails(n: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):  # every one different: the libraries store identical pictures once, Qt does not
        buffer = io.BytesIO()
        Image.fromarray(rng.normal(160, 25, (72, 96, 3)).clip(0, 255).astype(np.uint8)).save(buffer, "JPEG",
                                                                                               quality=75)
        out.append(buffer.getvalue())
    return out


def rows(n: int) -> list[tuple]:
    return [(f"pier_{i // 200:02d}/IMG_{i:05d}.jpg", f"{0.5 + (i % 50) / 100:.3f}", "yes" if i % 3 else "no",
             f"2024-05-03 10:{i // 60 % 60:02d}:{i % 60:02d}", f"{48.1 + i * 1e-5:.6f}, {-1.6 - i * 1e-5:.6f}")
            for i in range(n)]


def qt_painter(path: str, jpegs: list[bytes]) -> None:
    from PySide6.QtCore import QMarginsF, QRectF, Qt
    from PySide6.QtGui import QFont, QGuiApplication, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter

    app = QGuiApplication.instance() or QGuiApplication(["bench", "-platform", "offscreen"])
    assert app is not None  # kept alive (referenced) while the PDF is drawn
    writer = QPdfWriter(path)
    writer.setPageSize(QPageSize(QPageSize.A4))
    writer.setResolution(150)
    writer.setPageMargins(QMarginsF(12, 12, 12, 12), QPageLayout.Millimeter)
    painter = QPainter(writer)
    painter.setFont(QFont("DejaVu Sans", 8))
    height, width = writer.pageLayout().paintRectPixels(150).height(), writer.pageLayout().paintRectPixels(150).width()
    y, page = 40, 1
    for (name, p, reviewed, captured, gps), jpeg in zip(rows(len(jpegs)), jpegs):
        if y + 80 > height - 30:
            painter.drawText(QRectF(0, height - 25, width, 25), Qt.AlignRight, f"page {page}")
            writer.newPage()
            page, y = page + 1, 40
        painter.drawImage(QRectF(0, y, 96, 72), QImage.fromData(jpeg, "JPG"))
        painter.drawText(QRectF(110, y, 500, 80), Qt.TextWordWrap, name)
        painter.drawText(QRectF(620, y, 300, 80), 0, f"{p} {reviewed}\n{captured}\n{gps}")
        y += 80
    painter.end()


def qt_textdocument(path: str, jpegs: list[bytes]) -> None:
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QGuiApplication, QImage, QPageSize, QPdfWriter, QTextDocument

    app = QGuiApplication.instance() or QGuiApplication(["bench", "-platform", "offscreen"])
    assert app is not None  # kept alive (referenced) while the PDF is drawn
    doc = QTextDocument()
    cells = []
    for i, ((name, p, reviewed, captured, gps), jpeg) in enumerate(zip(rows(len(jpegs)), jpegs)):
        doc.addResource(QTextDocument.ImageResource, QUrl(f"t{i}"), QImage.fromData(jpeg, "JPG"))
        cells.append(f"<tr><td><img src='t{i}' width=96 height=72></td><td>{name}</td><td>{p}</td><td>{reviewed}"
                     f"</td><td>{captured}</td><td>{gps}</td></tr>")
    doc.setHtml("<table border=1 cellspacing=0><thead><tr><th>photo</th><th>path</th><th>P</th><th>reviewed</th>"
                "<th>captured</th><th>GPS</th></tr></thead>" + "".join(cells) + "</table>")
    writer = QPdfWriter(path)
    writer.setPageSize(QPageSize(QPageSize.A4))
    doc.print_(writer)


def fpdf2(path: str, jpegs: list[bytes]) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("dejavu", "", FONT)
    pdf.add_font("dejavu", "B", FONT.replace("DejaVuSans", "DejaVuSans-Bold"))
    pdf.set_font("dejavu", size=7)
    pdf.add_page()
    with pdf.table(col_widths=(20, 60, 12, 12, 30, 36), line_height=4) as table:
        table.row(["photo", "path", "P", "reviewed", "captured", "GPS"])
        for values, jpeg in zip(rows(len(jpegs)), jpegs):
            row = table.row()
            row.cell(img=io.BytesIO(jpeg), img_fill_width=True)
            for value in values:
                row.cell(value)
    pdf.output(path)


def reportlab(path: str, jpegs: list[bytes]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Image, SimpleDocTemplate, Table

    pdfmetrics.registerFont(TTFont("DejaVu", FONT))
    data = [["photo", "path", "P", "reviewed", "captured", "GPS"]]
    data += [[Image(io.BytesIO(jpeg), 56, 42), *values] for values, jpeg in zip(rows(len(jpegs)), jpegs)]
    table = Table(data, repeatRows=1)
    table.setStyle([("FONT", (0, 0), (-1, -1), "DejaVu", 7)])
    SimpleDocTemplate(path, pagesize=A4).build([table])


ROUTES = {f.__name__: f for f in (qt_painter, qt_textdocument, fpdf2, reportlab)}


def child(route: str, path: str) -> None:
    jpegs = thumbnails(ROWS)
    start = time.perf_counter()
    ROUTES[route](path, jpegs)
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(f"{seconds:.2f} {peak / 1024:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libs", help="a folder to add to the import path (pip install --target DIR ...)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.libs:
        sys.path.append(args.libs)
    if args.child:
        child(*args.child)
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (args.libs, os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'route':<16} {'seconds':>8} {'peak MB':>8} {'file MB':>8} pages")
        for route in ROUTES:
            out = Path(tmp) / f"{route}.pdf"
            done = subprocess.run([sys.executable, __file__, "--child", route, str(out)], capture_output=True,
                                  text=True, env=env)
            if done.returncode:
                print(f"{route:<16} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            seconds, peak = done.stdout.split()
            info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
            pages = next((line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")), "?")
            print(f"{route:<16} {seconds:>8} {peak:>8} {out.stat().st_size / 1e6:>8.1f} {pages}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
