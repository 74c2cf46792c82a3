"""`crackdesk report FOLDER --out DIR`: the inspection report of a folder (report.html, report.pdf,
findings.geojson in DIR), with the folder's current verdicts under its model (the one it is classified with,
or --model; site-adapted when it has labels, exactly as `crackdesk classify` reports them). An empty or unclassified folder still gets a report that says so (exit 0);
Ctrl-C stops it before anything is written (exit 130)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..core.models import ModelRegistry
from ..core.session import FolderSession
from ..core.wording import count
from ..report.build import build_report, output_files
from .commands import folder_model, report_scan_problems
from .progress import ProgressBar


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crackdesk report",
                                description="The inspection report of a classified (and reviewed) folder: "
                                            "report.html (self-contained), report.pdf (A4) and findings.geojson.")
    p.add_argument("folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the three files (created)")
    p.add_argument("--title", default="", help="the report's title (default: 'Crack inspection: FOLDER')")
    p.add_argument("--inspector", default="", metavar="NAME", help="who inspected, printed under the title")
    p.add_argument("--model", help="the model whose predictions are reported: shipped name or .onnx file "
                                   "(default mobilenetv2, as crackdesk classify)")
    p.add_argument("--workspace", metavar="W", help="workspace file (default: FOLDER/.crackdesk/workspace.sqlite)")
    return p


class _Bar:
    """The CLI progress bar, whose total grows as the report learns how much work each stage is."""

    def __init__(self):
        self.bar = ProgressBar(0, "report")

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output_files(args.out)  # before the long work: a report must not end in "cannot write"
    registry = ModelRegistry()
    if args.model:
        registry.find(args.model)  # a wrong --model is refused before the folder is read
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # stop between photos, write nothing
    try:
        with FolderSession.open(args.folder, args.workspace, cancel) as session:
            report_scan_problems(session)
            entry = folder_model(session, args.model, registry)  # the folder's model, as `classify` uses
            bar = _Bar()
            try:
                result = build_report(session, entry.info, args.out, args.title, args.inspector, cancel, bar)
            finally:
                bar.bar.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    if result is None:
        print("crackdesk report: interrupted; no report was written", file=sys.stderr)
        return 130
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    files = result.files
    print(f"{count(result.photos, 'photo')}, {count(result.findings, 'finding')} "
          f"({result.findings_not_reviewed:,} not reviewed), "
          f"{result.located:,} with GPS -> {files['html']}, {files['pdf']} ({result.pages} pages), "
          f"{files['geojson']}", file=sys.stderr)
    return 0
