"""`crackdesk labels import FOLDER CSV` and `crackdesk labels export FOLDER --csv OUT`."""

from __future__ import annotations

import sys

from ..core.atomic import check_output_file
from ..core.labels_csv import LabelImportError, describe_problems, export_labels, import_labels
from ..core.session import FolderSession
from .commands import report_scan_problems


def add_parsers(sub) -> None:
    labels = sub.add_parser("labels", help="import or export human labels as CSV")
    which = labels.add_subparsers(dest="labels_command", metavar="{import,export}", required=True)
    p = which.add_parser("import", help="label images from a CSV with header path,label (crack or no_crack)")
    p.add_argument("folder")
    p.add_argument("csv", metavar="CSV", help="path relative to FOLDER or absolute; label crack or no_crack")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows even when some rows are bad")
    p.add_argument("--workspace", metavar="W", help="workspace file (default: FOLDER/.crackdesk/workspace.sqlite)")
    p = which.add_parser("export", help="write path,label,updated of every labelled image")
    p.add_argument("folder")
    p.add_argument("--csv", metavar="OUT", required=True)
    p.add_argument("--workspace", metavar="W")


def cmd_labels(args) -> int:
    if args.labels_command == "export":
        check_output_file(args.csv, "labels CSV")
        with FolderSession.open(args.folder, args.workspace) as session:
            report_scan_problems(session)
            n = export_labels(session.workspace, args.csv)
        print(f"wrote {n:,} labels to {args.csv}", file=sys.stderr)
        return 0
    with FolderSession.open(args.folder, args.workspace) as session:
        report_scan_problems(session)
        try:
            result = import_labels(session.workspace, args.csv, args.skip_bad)
        except LabelImportError as e:
            for line in describe_problems(e.problems):
                print(f"bad row: {line}", file=sys.stderr)
            raise
        for line in describe_problems(result.problems):
            print(f"skipped: {line}", file=sys.stderr)
        changed = result.change.after if result.change else {}
        crack = sum(1 for v in changed.values() if v == "crack")
        print(f"imported {len(changed):,} labels ({crack:,} crack, {len(changed) - crack:,} no crack); "
              f"{len(result.labels) - len(changed):,} already so; {len(result.problems):,} rows skipped",
              file=sys.stderr)
    return 0
