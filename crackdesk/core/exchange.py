"""Moving labels in and out of a workspace: a CSV of labels and predictions, and class-folder datasets
(`Positive/`, `Negative/`: the layout torchvision's ImageFolder and Keras read).

Qt-free, so scripts and tests use it without a window. Nothing here ever overwrites a file: the CSV is
written beside its target and swapped in with os.replace, and a name clash in a class folder gets a suffix.
Imported labels are matched by content hash, so a dataset exported from one folder labels the same
photos in another folder whatever they are called there.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .csvfiles import write_csv
from .datasets import EXPORT_FOLDERS, load_class_folders
from .errors import CrackDeskError
from .exif import hash_and_meta
from .hashing import file_hash
from .store import LabelChange, Workspace

CSV_COLUMNS = ["path", "hash", "label", "p_crack", "predicted", "model", "captured", "lat", "lon"]
Progress = Callable[[int, int], None]


class ExportError(CrackDeskError):
    """An export target that cannot be written."""


@dataclass
class ExportReport:
    written: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    renamed: int = 0  # files given a suffix because the name was taken
    linked: int = 0  # hard links (the rest are copies)


@dataclass
class ImportReport:
    files: int = 0  # images found in the class folders
    matched: int = 0  # workspace images that received a label
    unmatched: int = 0  # dataset images whose content is not in the workspace
    conflicts: int = 0  # contents found under both classes: left unlabelled
    change: LabelChange | None = None  # what changed, for undo


def export_csv(workspace: Workspace, out: str | Path, model_key: str | None = None) -> int:
    """Write every present image with its human label and the prediction of `model_key`; returns rows."""
    workspace.flush()  # labels queued before the export are in it
    rows = workspace.rows(model_key)
    meta = workspace.photo_meta_by_hash()
    return write_csv(out, CSV_COLUMNS, ([r.path, r.hash or "", r.label or "",
                                         "" if r.p_crack is None else f"{r.p_crack:.6f}", r.predicted or "",
                                         model_key if r.p_crack is not None else "", *_place_cells(meta.get(r.hash))]
                                        for r in rows))


def _place_cells(meta) -> tuple[str, str, str]:
    """captured, lat, lon cells: empty when unknown; coordinates to 1e-7 degrees (about a centimetre)."""
    if meta is None:
        return "", "", ""
    return (meta.captured or "", "" if meta.lat is None else f"{meta.lat:.7f}",
            "" if meta.lon is None else f"{meta.lon:.7f}")


def free_name(folder: Path, name: str, taken: set[str]) -> str:
    """`name`, or `stem_2.ext`, `stem_3.ext`... : the first that neither exists nor was handed out."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate.lower() in taken or (folder / candidate).exists():
        n += 1
        candidate = f"{stem}_{n}.{ext}" if dot else f"{stem}_{n}"
    taken.add(candidate.lower())
    return candidate


def export_class_folders(workspace: Workspace, out: str | Path, link: bool = False,
                         cancel: threading.Event | None = None, progress: Progress | None = None) -> ExportReport:
    """Copy (or hard-link, falling back to a copy across drives) each labelled image, one per distinct
    content, into out/Positive and out/Negative. Existing files are never replaced."""
    out = Path(out)
    workspace.flush()
    files = workspace.labeled_files()
    report = ExportReport(by_class={label: 0 for label in EXPORT_FOLDERS})
    taken: dict[str, set[str]] = {}
    for n, item in enumerate(files):
        if cancel is not None and cancel.is_set():
            break
        folder = out / EXPORT_FOLDERS[item.label]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExportError(f"cannot create the folder ({e.strerror or e})", folder) from None
        name = free_name(folder, item.path.name, taken.setdefault(item.label, set()))
        report.renamed += name != item.path.name
        target = folder / name
        try:
            if link and _try_link(item.path, target):
                report.linked += 1
            else:
                shutil.copy2(item.path, target)
        except OSError as e:
            raise ExportError(f"cannot copy {item.path.name} ({e.strerror or e})", target) from None
        report.written += 1
        report.by_class[item.label] += 1
        if progress:
            progress(n + 1, len(files))
    return report


def _try_link(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
        return True
    except OSError:
        return False  # another drive, or a file system without hard links: copy instead


def ensure_hashes(workspace: Workspace, cancel: threading.Event | None = None, progress: Progress | None = None,
                  chunk: int = 256) -> None:
    """Hash the workspace images the background hasher has not reached yet, reading each one's EXIF from
    the same bytes (a photo's metadata is read once, when it is first hashed)."""
    todo = workspace.unhashed()
    for start in range(0, len(todo), chunk):
        if cancel is not None and cancel.is_set():
            return
        rows, metas = [], []
        for image_id, rel in todo[start:start + chunk]:
            try:
                digest, meta = hash_and_meta(workspace.abspath(rel))
            except CrackDeskError:
                continue  # vanished or unreadable since the scan: classify reports it, the next scan drops it
            rows.append((image_id, digest))
            metas.append((digest, meta))
        # Queued back to back, so the writer mostly commits both in one transaction; both are waited for.
        stored_meta = workspace.set_photo_meta(metas, wait=False)
        workspace.set_hashes(rows, wait=False).result()
        stored_meta.result()
        if progress:
            progress(min(start + chunk, len(todo)), len(todo))


def ensure_meta(workspace: Workspace, cancel: threading.Event | None = None, progress: Progress | None = None,
                chunk: int = 256) -> int:
    """Read the metadata of hashed contents that have none yet (a workspace from before metadata, a photo
    hashed when it was labelled); returns how many there were. One read of each such photo, once."""
    todo = workspace.hashed_without_meta()
    for start in range(0, len(todo), chunk):
        if cancel is not None and cancel.is_set():
            return start
        metas = []
        for rel, stored in todo[start:start + chunk]:
            try:
                digest, meta = hash_and_meta(workspace.abspath(rel))
            except CrackDeskError:
                continue  # gone since the scan: it has no metadata to give
            if digest == stored:  # else changed since it was hashed: the next scan re-hashes it
                metas.append((digest, meta))
        workspace.set_photo_meta(metas)
        if progress:
            progress(min(start + chunk, len(todo)), len(todo))
    return len(todo)


def import_class_folders(workspace: Workspace, root: str | Path, cancel: threading.Event | None = None,
                         progress: Progress | None = None) -> ImportReport:
    """Label workspace images from a class-folder dataset, matching by content hash; one undoable change."""
    dataset = load_class_folders(root)
    report = ImportReport(files=len(dataset))
    by_hash: dict[str, set[str]] = {}
    for n, item in enumerate(dataset):
        if cancel is not None and cancel.is_set():
            return report
        try:
            by_hash.setdefault(file_hash(item.path), set()).add(item.label)
        except CrackDeskError:
            report.unmatched += 1
        if progress:
            progress(n + 1, len(dataset) * 2)
    ensure_hashes(workspace, cancel)
    labels: dict[int, str] = {}
    seen: set[str] = set()
    for row in workspace.rows():
        found = by_hash.get(row.hash or "")
        if not found:
            continue
        seen.add(row.hash)
        if len(found) > 1:
            continue
        labels[row.id] = next(iter(found))
    report.conflicts = sum(1 for h in seen if len(by_hash[h]) > 1)
    report.unmatched += sum(1 for h in by_hash if h not in seen)
    report.matched = len(labels)
    if labels and not (cancel is not None and cancel.is_set()):
        report.change = workspace.set_labels(labels, source="import")
    return report
