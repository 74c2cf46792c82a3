"""`crackdesk suggest` and `crackdesk export-model`: the folder's site adaptation from the command line."""

from __future__ import annotations

import sys

from ..core.atomic import check_output_file
from ..core.csvfiles import write_csv
from ..core.errors import CrackDeskError
from ..core.session import FolderSession
from ..core.suggest import BATCH
from ..core.site_model import export_site_model
from ..core.wording import count, printable
from .commands import folder_model, report_scan_problems


def add_parsers(sub) -> None:
    p = sub.add_parser("suggest", help="the photos whose labels would improve the site-adapted model most")
    p.add_argument("folder")
    p.add_argument("-n", type=int, default=BATCH, metavar="N", help=f"how many (default {BATCH})")
    p.add_argument("--csv", metavar="OUT", help="also write path,p_crack,reason (path relative to FOLDER)")
    p.add_argument("--model", help="base model (default: the one the folder is classified with)")
    p.add_argument("--workspace", metavar="W")

    p = sub.add_parser("export-model", help="write the folder's site-adapted model as a CrackDesk ONNX file")
    p.add_argument("folder")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the model (its replay memory goes beside it)")
    p.add_argument("--name", help="model name (default: the base model's name and the folder's)")
    p.add_argument("--model", help="base model (default: the one the folder is classified with)")
    p.add_argument("--workspace", metavar="W")


def cmd_suggest(args) -> int:
    if args.n < 1:
        raise CrackDeskError("-n must be at least 1")
    if args.csv:
        check_output_file(args.csv, "CSV")
    with FolderSession.open(args.folder, args.workspace) as session:
        report_scan_problems(session)
        entry = folder_model(session, args.model)
        state = session.adapt()
        if state is None:
            raise CrackDeskError(session.adaptation_problem)
        adapter = session.adapter()
        if not adapter.suggestible():
            raise CrackDeskError(f"no photo of this folder is classified with {entry.key} yet: run `crackdesk "
                                 "classify` first", session.folder)
        picks, _ = adapter.suggestions(args.n, state)
        paths = {r.id: r.path for r in session.rows(entry.key)}
        rows = [(paths[int(adapter.ids[s.index])], s.p_crack, s.reason) for s in picks]
        unclassified = len(adapter.ids) - adapter.suggestible()
    for path, p, reason in rows:
        print(f"{printable(path)}\t{p:.3f}\t{reason}")
    if args.csv:
        write_csv(args.csv, ["path", "p_crack", "reason"], ((path, f"{p:.6f}", reason) for path, p, reason in rows))
    how = f"site-adapted on {count(state.n_labels, 'label')}" if state.adapted else \
        "no labels yet: typical photos first"
    note = (f"; {unclassified:,} photos not classified yet (or large ones with no window the model ran) cannot be "
            "suggested" if unclassified else "")
    print(f"{len(rows)} suggestions with {entry.key} ({how}){note}", file=sys.stderr)
    return 0


def cmd_export_model(args) -> int:
    check_output_file(args.out, "model")
    with FolderSession.open(args.folder, args.workspace) as session:
        report_scan_problems(session)
        folder_model(session, args.model)
        info = export_site_model(session, args.out, args.name)
    print(f"wrote {args.out} ({info.name} {info.version}): {info.description}", file=sys.stderr)
    return 0
