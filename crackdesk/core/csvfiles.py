"""CSV files in and out: written atomically (atomic.py), safe to open in a spreadsheet, and read back
with errors that name the file and line.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula, so a photo named
`=HYPERLINK(...).jpg` could run something on the office PC that opens the report. Such text cells are
written with a leading apostrophe (the OWASP advice; spreadsheets hide it) and `read_csv` removes it again,
so a CSV round-trips. File names that are not valid UTF-8 keep their exact bytes (surrogateescape): the
path in the CSV names the same file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from .atomic import atomic_writer
from .errors import CrackDeskError
from .hashing import read_file

MAX_CSV_BYTES = 256 << 20

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ENCODING = dict(encoding="utf-8", errors="surrogateescape")


def csv_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(cell: str) -> str:
    """The text a cell written by `csv_cell` stood for."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "".join(FORMULA_START):
        return cell[1:]
    return cell


def write_csv(path: str | Path, header: list[str], rows: Iterable, what: str = "CSV") -> int:
    """Write a header and rows; returns the number of rows. Nothing is replaced unless all of it was written."""
    n = 0
    with atomic_writer(path, "w", what, newline="", **ENCODING) as f:
        out = csv.writer(f)
        out.writerow(header)
        for row in rows:
            out.writerow([csv_cell(v) for v in row])
            n += 1
    return n


def read_csv(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Rows as dicts (header names lower-cased and stripped, BOM ignored), each with `_line`: its line number.
    Only a regular file is read (a pipe named .csv would block forever)."""
    path = Path(path)
    text = read_file(path, MAX_CSV_BYTES).decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise CrackDeskError("the CSV file is empty (expected a header line)", path)
        header = [h.strip().lower() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise CrackDeskError(f"the CSV header lacks {', '.join(missing)} (it has: {', '.join(header)})", path)
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            row = {h: csv_text(v) for h, v in zip(header, values)}
            row["_line"] = reader.line_num
            rows.append(row)
        return rows
    except csv.Error as e:
        raise CrackDeskError(f"not a readable CSV (line {reader.line_num}: {e})", path) from None
