"""`crackdesk suggest` and `crackdesk export-model`: the folder's site adaptation from the command line."""

from __future__ import annotations

import sys

from ..core.atomic import check_output_file
from ..core.session import FolderSession
from ..core.site_model import export_site_model
from .commands import folder_model, report_scan_problems


def add_parsers(sub) -> None:
    p = sub.add_parser("export-model", help="write the folder's site-adapted model as a CrackDesk ONNX file")
    p.add_argument("folder")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the model (its replay memory goes beside it)")
    p.add_argument("--name", help="model name (default: the base model's name and the folder's)")
    p.add_argument("--model", help="base model (default: the one the folder is classified with)")
    p.add_argument("--workspace", metavar="W")


def cmd_export_model(args) -> int:
    check_output_file(args.out, "model")
    with FolderSession.open(args.folder, args.workspace) as session:
        report_scan_problems(session)
        folder_model(session, args.model)
        info = export_site_model(session, args.out, args.name)
    print(f"wrote {args.out} ({info.name} {info.version}): {info.description}", file=sys.stderr)
    return 0
