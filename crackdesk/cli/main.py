"""`crackdesk` command line. With no subcommand it opens the app; user errors print one line, exit 1."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..core.errors import CrackDeskError
from ..core.selfcommand import WORKER_COMMAND
from ..core.wording import printable


def version_text() -> str:
    import importlib.metadata as md

    def version_of(dist: str, module: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:  # frozen bundles carry modules without their dist-info
            try:
                return getattr(__import__(module), "__version__", None)
            except Exception:
                return None

    parts = [f"crackdesk {__version__}"]
    for label, dist, module in (("onnxruntime", "onnxruntime", "onnxruntime"),
                                ("Qt/PySide6", "pyside6-essentials", "PySide6"),
                                ("torch", "torch", "torch")):
        v = version_of(dist, module)
        parts.append(f"{label} {v}" if v else f"{label} not installed")
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crackdesk", description="Classify concrete photos crack / no crack, "
                                     "correct the labels and retrain the model on the corrections.")
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the desktop app (the default)")
    p.add_argument("folder", nargs="?", help="image folder to open")
    p.add_argument("--model", help="active model: shipped name or .onnx file")
    p.add_argument("--workspace", help="workspace file (default: FOLDER/.crackdesk/workspace.sqlite)")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help=argparse.SUPPRESS)  # smoke tests

    p = sub.add_parser("classify", help="classify every image of a folder")
    p.add_argument("folder")
    p.add_argument("--model", help="model name (mobilenetv2-int8, mobilenetv2 for the exact float model, cnn) or .onnx file (default: the folder's model, else mobilenetv2-int8)")
    p.add_argument("--csv", metavar="OUT", help="also write path,label,p_crack,model to this CSV file")
    p.add_argument("--threshold", type=_probability, help="decision threshold on P(crack) (default: the model's)")
    p.add_argument("--workspace", metavar="W", help="workspace file (default: FOLDER/.crackdesk/workspace.sqlite)")
    p.add_argument("--no-adapt", action="store_true",
                   help="the base model alone, even when the folder has labels to adapt it to")
    p.add_argument("--exact", action="store_true", help=EXACT_HELP)
    p.add_argument("--unclassified", action="store_true",
                   help="only the images this model has no result for yet: files added or changed since the last "
                        "run, and those that could not be read (the GUI's Classify unclassified); the summary and "
                        "--csv still cover the whole folder")
    _cluster_options(p)

    p = sub.add_parser("evaluate", help="accuracy of a model on a folder with class sub-folders")
    p.add_argument("folder", help="folder with Positive/ and Negative/ (or crack/ and no_crack/ ...) sub-folders")
    p.add_argument("--model", required=True)
    p.add_argument("--threshold", type=_probability)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _cluster_options(p)

    p = sub.add_parser("models", help="list the available models")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("demo", help="write a folder of synthetic concrete images")
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)

    from .labels import add_parsers as add_label_parsers

    add_label_parsers(sub)
    from .site import add_parsers as add_site_parsers

    add_site_parsers(sub)

    sub.add_parser("train", help="train or retrain a model (see crackdesk train --help)", add_help=False)
    sub.add_parser("heatmap", help="crack heatmaps of large photos (see crackdesk heatmap --help)", add_help=False)
    sub.add_parser("report", help="the inspection report: HTML, PDF and GeoJSON (see crackdesk report --help)",
                   add_help=False)
    return parser


EXACT_HELP = ("every window of a large photo through the model itself (default: a model that names a screening "
              "model, as mobilenetv2-int8 names cnn, lets it settle the windows it finds clearly free of cracks)")


def _cluster_options(p) -> None:
    p.add_argument("--cluster", metavar="ADDRESS", help="run on a Ray cluster: HOST:PORT of its head, ray://HOST:PORT "
                   "or auto (needs pip install 'crackdesk[cluster]'; see README, Cluster mode)")
    p.add_argument("--ship-bytes", action="store_true", help="with --cluster: send the photos' bytes from this "
                   "machine (default: the workers read them at the same path, on a shared filesystem)")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError("must lie strictly between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [WORKER_COMMAND]:  # a worker process of `classify` (core/worker_processes.py)
        from ..core.worker_processes import serve

        return serve()
    # The site head's matrix-vector products are small: OpenBLAS's second thread only spins against onnxruntime's
    # and the decoders' (measured 3-10x slower refits on 2 loaded cores). Set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as their own bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    # Subcommands with their own parsers get the rest of the line untouched.
    if argv and argv[0] in ("train", "heatmap", "report"):
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.version:
        print(version_text())
        return 0

    def run() -> int:
        if args.command in (None, "gui"):
            from ..ui.app import run_app

            return run_app(getattr(args, "folder", None), getattr(args, "model", None),
                           getattr(args, "workspace", None), getattr(args, "quit_after", None))
        from . import commands, labels, site

        return {"classify": commands.cmd_classify, "evaluate": commands.cmd_evaluate, "labels": labels.cmd_labels,
                "models": commands.cmd_models, "demo": commands.cmd_demo,
                "export-model": site.cmd_export_model, "suggest": site.cmd_suggest}[args.command](args)

    return guarded(run)


def guarded(run, prefix: str = "crackdesk") -> int:
    """Run a command; what the user can cause ends in one line on stderr and exit status 1, never a traceback."""
    try:
        return run()
    except CrackDeskError as e:
        print(f"{prefix}: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file or folder the user named
        where = f"{printable(str(e.filename))}: " if e.filename else ""
        print(f"{prefix}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        # Ctrl-C while a C extension initialises (onnxruntime's, in the first 0.2 s) surfaces as its ImportError
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        raise


def _delegate(command: str, rest: list[str]) -> int:
    def run() -> int:
        try:
            if command == "train":
                from training.cli import main as train_main

                return train_main(rest)
            if command == "heatmap":
                from .heatmap import main as heatmap_main

                return heatmap_main(rest)
            if command == "report":
                from .report import main as report_main

                return report_main(rest)
        except ModuleNotFoundError as e:
            print(f"crackdesk {command}: not available in this installation ({e.name} is missing)", file=sys.stderr)
            return 1
        raise AssertionError(command)

    return guarded(run)
