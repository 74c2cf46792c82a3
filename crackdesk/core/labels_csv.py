"""Human labels in and out of a workspace as CSV (`crackdesk labels import / export`).

Import reads `path,label`: the path relative to the folder or absolute (inside it), the label `crack` or
`no_crack`. Every row is checked first; a file with any bad row imports nothing (unless `skip_bad`), so a
typo never half-applies a spreadsheet. The import is one undoable history batch, like a bulk key press.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .csvfiles import read_csv, write_csv
from .datasets import LABELS
from .errors import CrackDeskError
from .store import LabelChange, Workspace
from .wording import printable

IMPORT_COLUMNS = ("path", "label")
EXPORT_COLUMNS = ["path", "label", "updated"]


@dataclass
class LabelImport:
    labels: dict[int, str] = field(default_factory=dict)  # image id -> label, ready to apply
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, path as written, what is wrong)
    rows: int = 0
    change: LabelChange | None = None


class LabelImportError(CrackDeskError):
    """A labels CSV with rows that cannot be imported; `.problems` lists them."""

    def __init__(self, path, problems):
        self.problems = problems
        super().__init__(f"{len(problems)} of its rows cannot be imported, so nothing was imported "
                         "(fix them, or give --skip-bad to import the others)", path)


def relative_to_folder(folder: Path, written: str) -> str | None:
    """The workspace path (POSIX, relative) of a path as written in the CSV, or None if outside the folder."""
    text = written.strip()
    if not text:
        return None
    candidate = Path(text)
    if candidate.is_absolute():
        try:
            rel = Path(os.path.normpath(candidate)).relative_to(folder)
        except ValueError:
            try:
                rel = candidate.resolve().relative_to(folder)
            except (ValueError, OSError):
                return None
        return rel.as_posix()
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        return None
    return PurePosixPath(*[p for p in parts if p != "."]).as_posix()


def read_label_csv(workspace: Workspace, csv_path: str | Path) -> LabelImport:
    """Check every row of a labels CSV against the workspace; nothing is written."""
    result = LabelImport()
    ids = {r.path: r.id for r in workspace.rows()}
    seen: dict[int, tuple[str, int]] = {}
    for row in read_csv(csv_path, IMPORT_COLUMNS):
        result.rows += 1
        line, written, label = row["_line"], row.get("path", ""), row.get("label", "").strip()
        rel = relative_to_folder(workspace.folder, written)
        if label not in LABELS:
            result.problems.append((line, written, f"label {label!r} is not 'crack' or 'no_crack'"))
        elif rel is None:
            result.problems.append((line, written, "the path is outside the folder"))
        elif rel not in ids:
            result.problems.append((line, written, "no such image in the folder"))
        elif ids[rel] in seen and seen[ids[rel]][0] != label:
            result.problems.append((line, written, f"labelled {seen[ids[rel]][0]!r} on line {seen[ids[rel]][1]} "
                                                   f"and {label!r} here"))
        else:
            seen[ids[rel]] = (label, line)
            result.labels[ids[rel]] = label
    return result


def import_labels(workspace: Workspace, csv_path: str | Path, skip_bad: bool = False) -> LabelImport:
    """Read, check and apply a labels CSV as one undoable change (source "import")."""
    result = read_label_csv(workspace, csv_path)
    if result.problems and not skip_bad:
        raise LabelImportError(csv_path, result.problems)
    if result.labels:
        result.change = workspace.set_labels(result.labels, source="import")
    return result


def export_labels(workspace: Workspace, out: str | Path) -> int:
    """path,label,updated of every present image with a human label; returns the number of rows."""
    workspace.flush()
    rows = workspace.labelled_rows()
    return write_csv(out, EXPORT_COLUMNS, ([path, label, updated] for path, label, updated in rows), "labels CSV")


def describe_problems(problems, limit: int = 20) -> list[str]:
    lines = [f"line {line}: {printable(written) or '(empty path)'}: {reason}" for line, written, reason in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines
