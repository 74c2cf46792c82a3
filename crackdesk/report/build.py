"""Building a report end to end: check the output folder, bring hashes and photo metadata up to date, gather
the folder's current verdicts, make the findings' pictures, then write report.html, report.pdf and
findings.geojson, each atomically. The one routine behind `crackdesk report` and File > Export report.

Long work reports progress and stops when `cancel` is set, before anything is written: a cancelled report
leaves the output folder as it was. Writing the three files (seconds) is not interrupted, so they always
belong to one run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.atomic import OutputError, check_output_file
from ..core.exchange import ensure_meta
from .geojson import write_geojson
from .gather import gather
from .gpsplot import gps_plot
from .html import write_html
from .pictures import finding_pictures

OUTPUTS = {"html": ("report.html", "HTML report"), "pdf": ("report.pdf", "PDF report"),
           "geojson": ("findings.geojson", "GeoJSON")}
Progress = Callable[[int, int], None]


@dataclass
class ReportResult:
    files: dict[str, Path]  # "html", "pdf", "geojson" -> path
    photos: int
    findings: int
    findings_not_reviewed: int
    located: int  # photos with a GPS position (GeoJSON features)
    pages: int  # of the PDF
    notes: list[str] = field(default_factory=list)


def output_files(out_dir: str | Path) -> dict[str, Path]:
    """The report's files in `out_dir` (created if missing), each checked writable before any work starts."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError("is a file, not a folder: give the folder the report goes into", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the report folder ({e.strerror or e})", out) from None
    return {key: check_output_file(out / name, what) for key, (name, what) in OUTPUTS.items()}


class _Steps:
    """One progress bar over stages whose sizes become known one after another."""

    def __init__(self, progress: Progress | None):
        self.progress, self.done, self.total = progress, 0, 0

    def plan(self, remaining: int) -> None:
        self.total = self.done + remaining
        self.tell(0)

    def tell(self, within: int) -> None:
        if self.progress:
            self.progress(self.done + within, max(self.total, self.done + within, 1))

    def stage(self) -> Progress:
        return lambda d, t: self.tell(d)

    def finish(self, n: int) -> None:
        self.done += n
        self.tell(0)


def build_report(session, model_info, out_dir: str | Path, title: str = "", inspector: str = "",
                 cancel: threading.Event | None = None, progress: Progress | None = None) -> ReportResult | None:
    """Write the report of an open FolderSession with the model `model_info` (ModelInfo); None if cancelled."""
    files = output_files(out_dir)
    cancelled = lambda: cancel is not None and cancel.is_set()  # noqa: E731
    ws = session.workspace
    steps = _Steps(progress)
    todo = len(ws.unhashed())
    steps.plan(todo + 1)
    session.hash_missing(cancel, steps.stage())  # labels follow content: unhashed photos have none yet
    steps.finish(todo)
    missing = len(ws.hashed_without_meta())
    steps.plan(missing + 1)
    ensure_meta(ws, cancel, steps.stage())
    steps.finish(missing)
    if cancelled():
        return None
    key = f"{model_info.name}@{model_info.version}"
    current = session.current_predictions(key, model_info.threshold)
    data = gather(current, ws.photo_meta_by_hash(), model_info, session.folder, title, inspector)
    steps.finish(1)
    # Pictures dominate; writing the PDF costs about a tenth of them, the HTML less.
    n = len(data.findings)
    steps.plan(n + n // 10 + 3)
    # Large photos have stored tiles: looked up per finding by primary key, never by scanning every tile; under a
    # site head, as its verdicts have them.
    id_of = {r.hash: r.id for r in current.rows if r.hash}

    def tiles_of(digest):
        tiles = ws.tile_results(digest, key)
        return session.adapted_tiles(id_of[digest], tiles, current.state) if current.adapted else tiles

    pictures = finding_pictures(session.folder, data.findings, tiles_of, current.threshold, cancel, steps.stage())
    if pictures is None or cancelled():
        return None
    steps.finish(n)
    plot = gps_plot([(p.meta.lat, p.meta.lon, p.cracked, p.reviewed) for p in data.photos
                     if p.meta is not None and p.meta.has_gps])
    located = write_geojson(files["geojson"], data)
    write_html(files["html"], data, pictures, plot)
    steps.finish(2)
    from .pdf import render_pdf  # Qt is loaded only now: everything before runs without it

    pages = render_pdf(files["pdf"], data, pictures, plot)
    steps.finish(n // 10 + 1)
    t = data.totals
    return ReportResult(files, t.photos, t.cracked, t.cracked_model_only, located, pages, data.notes)
