"""Writing output files (CSV, models, heatmap PNGs, reports) safely: the one place that does it.

* Checked before the work starts (`check_output_file`): a long run must not end in "cannot write".
* Never replaces what is not an ordinary output: a workspace or other SQLite database, a device, a pipe,
  a folder, a symbolic link, or a file the user may not write.
* Atomic: written to a temporary file beside the target, flushed to disk, then swapped in with
  os.replace, so a reader (or a crash) sees the old file or the whole new one, never half.
* Permissions as any program's: a new file gets 0666 minus the umask, a replaced file keeps its mode
  (mkstemp alone would make every output private, 0600).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import CrackDeskError

SQLITE_MAGIC = b"SQLite format 3\0"


class OutputError(CrackDeskError):
    """An output file that cannot or must not be written."""


def check_output_file(path: str | Path, what: str = "file") -> Path:
    """Refuse, with a message naming the path, any target this program must not or cannot write."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"cannot use this {what} path ({e.strerror or e})", path) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"is a folder; give a {what} file name", path)
        if stat.S_ISLNK(st.st_mode):
            raise OutputError(f"is a symbolic link; refusing to replace it with the {what} (give the real path)",
                              path)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"is not a regular file (a device, pipe or socket); refusing to write the {what} "
                              "over it", path)
        if _is_sqlite(path):
            raise OutputError(f"is a database (a CrackDesk workspace?); refusing to overwrite it with the {what}",
                              path)
        if not os.access(path, os.W_OK):
            raise OutputError("is read-only; refusing to replace it (permission denied)", path)
    if not folder.is_dir():
        raise OutputError("the folder does not exist", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {what} into this folder (permission denied)", folder)
    return path


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w", what: str = "file", **open_args):
    """`with atomic_writer(p, "w", encoding="utf-8") as f:` write f; on success it replaces `p` whole;
    on any error nothing changes and the temporary file is removed. Errors become OutputError."""
    path = check_output_file(path, what)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent if str(path.parent) else ".")
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_output_file(path, what)  # nothing was put in its place meanwhile (a link, a database)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise OutputError(f"no space left on the device (the disk is full); the {what} was not written", path) from None
        raise OutputError(f"cannot write the {what} ({e.strerror or e}); nothing was written", path) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "file") -> None:
    with atomic_writer(path, "wb", what) as f:
        f.write(data)


def atomic_copy(source: str | Path, target: str | Path, what: str = "file") -> None:
    with open(source, "rb") as src, atomic_writer(target, "wb", what) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
