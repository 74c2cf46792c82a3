"""The headless subcommands: classify, evaluate, models, demo. Each returns an exit status."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext

import numpy as np

from ..core.atomic import check_output_file
from ..core.datasets import CRACK, load_class_folders
from ..core.errors import CrackDeskError, ModelError
from ..core.inference import Classifier
from ..core.metrics import binary_metrics
from ..core.models import ModelRegistry, exact_int8_note, origin
from ..core.csvfiles import write_csv
from ..core.rates import format_rate
from ..core.session import FolderSession
from ..core.worker_processes import small_image_workers, start_workers
from ..core.wording import count, printable
from ..cluster import cluster_source
from .progress import ProgressBar


def load_classifier(name_or_path: str | None, threshold: float | None = None, exact: bool = False) -> Classifier:
    entry = ModelRegistry().find(name_or_path)
    classifier = Classifier(entry.path, threshold=threshold, exact=exact)  # its own threads: model lanes
    if classifier.screen_note:
        print(f"note: {classifier.screen_note}", file=sys.stderr)
    return classifier


def folder_model(session, requested: str | None, registry: ModelRegistry | None = None):
    """The model for this folder: the one asked for (remembered from then on), else the one the folder was last
    classified with, else the default. Remembered per folder, never globally."""
    registry = registry or ModelRegistry()
    remembered = None if requested else session.remembered_model()
    try:
        entry = registry.find(requested or remembered)
    except ModelError:
        if not remembered:
            raise
        print(f"note: this folder's model {remembered} is no longer available; using the default",
              file=sys.stderr)
        entry = registry.find(None)
    session.use_model(entry)
    return entry


def cmd_classify(args) -> int:
    if args.csv:
        check_output_file(args.csv, "CSV")  # before the run, not after it
    started = time.perf_counter()
    # A worker process (decision 51) starts now, on the core this one leaves idle while it starts and scans; it is
    # kept if the folder proves worth it. Not for --unclassified, which mostly has little to do.
    early = None if args.cluster or args.unclassified else start_workers()
    with early or nullcontext(), FolderSession.open(args.folder, args.workspace) as session:
        folder = session.folder
        skipped = report_scan_problems(session)
        if session.uses_fallback:
            print(f"workspace: {session.where()}", file=sys.stderr)
        if not session.workspace.count():
            print(f"crackdesk: {printable(str(args.folder))}: no images found (looked for {', '.join(_suffixes())})",
                  file=sys.stderr)
            return 1
        entry = folder_model(session, args.model)
        rows = session.rows(entry.key)  # read once, with this model's results (30 ms a 10,000 images)
        # --unclassified: what this model has no result for (a file added or changed has a new content hash)
        missing = [r for r in rows if r.p_crack is None]
        todo = missing if args.unclassified else rows
        if not args.unclassified and len(missing) < len(rows):  # said before the run, while Ctrl-C still saves it
            print(f"note: every image already has a result from {entry.key}: this run classifies them all again "
                  "(--unclassified: only new or changed files)" if not missing else
                  f"note: {len(rows) - len(missing):,} of {count(len(rows), 'image')} already have a result from "
                  f"{entry.key}; --unclassified would classify only the other {len(missing):,}", file=sys.stderr)
        # Small images also run in worker processes (decision 51), when the folder is worth their start.
        workers = None if args.cluster else small_image_workers(folder, [r.path for r in todo], entry.info.patch_px,
                                                                early)
        # A cluster's workers run every window through the model (no screening): --cluster is --exact.
        with workers or nullcontext():
            classifier = session.classifier(entry.path, args.threshold, exact=args.exact or bool(args.cluster))
            if classifier.screen_note and todo:
                print(f"note: {classifier.screen_note}", file=sys.stderr)
            # Nothing to classify: no cluster to connect to (a --ship-bytes without --cluster is still refused)
            with cluster_source(args.cluster if todo else None, classifier,
                                args.ship_bytes and (bool(todo) or not args.cluster)) as source:
                bar = ProgressBar(len(todo), "classify")
                try:
                    report = session.classify(classifier, [(r.id, r.path) for r in todo],
                                              on_batch=lambda pairs, done, total: bar.update(done),
                                              source=source or (workers.source(classifier) if workers else None))
                finally:
                    bar.close()
        if workers and workers.note:
            print(f"note: {workers.note}", file=sys.stderr)
        seconds = time.perf_counter() - started
        current = session.current_predictions(entry.key, classifier.threshold, adapt=not args.no_adapt)
        how = adaptation_note(session, current, args.no_adapt)
    for path, reason in report.errors:
        print(f"unreadable: {printable(str(folder / path))}: {reason}", file=sys.stderr)
    done = [i for i in range(len(current.rows)) if not np.isnan(current.p_crack[i])]
    if args.csv:
        write_csv(args.csv, ["path", "label", "p_crack", "model"],
                  ((str(folder / current.rows[i].path), current.predicted(i), f"{current.p_crack[i]:.6f}",
                    classifier.key) for i in done))
    crack = sum(current.predicted(i) == CRACK for i in done)
    rate = report.classified / seconds if seconds > 0 else 0.0
    if not todo:  # --unclassified, and nothing new
        run = f"every image already has a result from {classifier.key} {how}"
    else:
        now = (f"{count(len(todo), 'image')} without a result tried now, the other {len(rows) - len(todo):,} "
               "kept; " if args.unclassified else "")
        run = f"{now}{format_rate(rate)} images/s with {classifier.key} {how}"
    print(f"{len(rows) + skipped} images: {crack} crack, {len(done) - crack} no crack, "
          f"{len(report.errors) + skipped} unreadable; {run} "
          f"(threshold {classifier.threshold:.3f}){'; ' + source.summary() if source else ''}", file=sys.stderr)
    if source and source.interrupted:
        print(source.interrupted_note(report.classified + len(report.errors), report.total), file=sys.stderr)
        return 130
    return 0 if report.classified or not todo else 1  # 1: nothing could be read


def adaptation_note(session, current, refused: bool) -> str:
    """How the predictions were made, for a summary line: site-adapted on N labels, or why not. What the site head
    could not use (a label of an unreadable photo, large photos to classify again) is printed as notes."""
    if current.state is not None and not refused:
        for note in current.state.notes:
            print(f"note: {note}", file=sys.stderr)
    if current.adapted:
        return f"site-adapted on {count(current.n_labels, 'label')}"
    if refused:
        return "alone (--no-adapt)"
    if session.adaptation_problem:
        print(f"note: {session.adaptation_problem}", file=sys.stderr)
        return "alone (cannot be adapted)"
    return "alone (no labels in this folder yet)"


def report_scan_problems(session) -> int:
    """Print what the scan could not list (unreadable sub-folders, pipes named .jpg); returns how many."""
    problems = session.scanned.problems if session.scanned is not None else []
    for path, reason in problems:
        print(f"unreadable: {printable(str(session.folder / path))}: {reason}", file=sys.stderr)
    return len(problems)


def _suffixes():
    from ..core.images import IMAGE_SUFFIXES

    return sorted(IMAGE_SUFFIXES)


def cmd_evaluate(args) -> int:
    files = load_class_folders(args.folder)
    classifier = load_classifier(args.model, args.threshold)
    truth, scores, unreadable = [], [], []
    paths = [f.path for f in files]
    bar = ProgressBar(len(files), "evaluate")
    done = 0
    try:
        # On a cluster: the same worker path as classify (large photos by window, as here); the metrics are
        # computed on this machine either way.
        with cluster_source(args.cluster, classifier, args.ship_bytes) as source:
            batches = source(paths) if source else classifier.classify(paths, progress=lambda d, t: bar.update(d))
            for batch in batches:
                for p in batch:
                    if p.p_crack is None:
                        unreadable.append((str(p.path), p.error))
                    else:
                        truth.append(files[p.index].label == CRACK)
                        scores.append(p.p_crack)
                done += len(batch)
                if source:
                    bar.update(done)
    finally:
        bar.close()
    if source and source.interrupted:
        raise KeyboardInterrupt
    if not scores:
        print(f"crackdesk: {printable(str(args.folder))}: none of the {len(files)} images could be read",
              file=sys.stderr)
        return 1
    m = binary_metrics(truth, scores, classifier.threshold)
    m["unreadable"] = len(unreadable)
    m["model"] = classifier.key
    for path, reason in unreadable:
        print(f"unreadable: {printable(str(path))}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(m))
        return 0
    auc = f"{m['auc']:.4f}" if m["auc"] is not None else "n/a (one class only)"
    print(f"model      {classifier.key} (threshold {classifier.threshold:.3f})\n"
          f"images     {m['n']} ({m['unreadable']} unreadable)\n"
          f"accuracy   {m['accuracy']:.4f}\nprecision  {m['precision']:.4f}\nrecall     {m['recall']:.4f}\n"
          f"f1         {m['f1']:.4f}\nroc auc    {auc}\n"
          f"confusion  predicted crack  predicted no crack\n"
          f"  crack    {m['tp']:>15}  {m['fn']:>18}\n"
          f"  no crack {m['fp']:>15}  {m['tn']:>18}")
    return 0


def cmd_models(args) -> int:
    registry = ModelRegistry()
    entries = registry.entries()
    if args.json:
        print(json.dumps([{**e.info.to_dict(), "key": e.key, "source": e.source, "path": str(e.path)}
                          for e in entries], indent=2))
    else:
        if not entries:
            print(f"no models found in {registry.shipped_dir} or {registry.user_dir}")
        for e in entries:
            acc = e.info.metrics.get("accuracy")
            acc_text = f"test accuracy {acc:.2%}" if isinstance(acc, (int, float)) else "no test metrics"
            h, w = e.info.preprocessing.input_size
            print(f"{e.info.name:<18} {e.info.version:<10} {e.info.architecture:<12} {w}x{h}  {acc_text:<24} "
                  f"{e.source:<8} {origin(e, short=True):<40} {e.path}")
        note = exact_int8_note(e.info for e in entries)
        if note:
            print(f"note: {note}", file=sys.stderr)
    for problem in registry.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from ..core.demo import write_demo_folder

    written = write_demo_folder(args.dir, count=args.count, seed=args.seed)
    cracks = sum(label == CRACK for _, label in written)
    print(f"wrote {len(written)} demo images ({cracks} with cracks) to {args.dir}", file=sys.stderr)
    return 0


__all__ = ["cmd_classify", "cmd_evaluate", "cmd_models", "cmd_demo", "report_scan_problems", "CrackDeskError"]
