"""Reading image files safely, and the content hash that identifies an image independently of its path
(renames and moves keep labels).

Only regular files are read: a FIFO named `x.jpg` would block a reader forever and a link to /dev/zero
would read until memory runs out. Files are opened non-blocking (opening a FIFO then returns at once),
checked with fstat on the open descriptor (no race with a rename), and refused above `MAX_FILE_BYTES`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .errors import ImageError

CHUNK = 1 << 20
# Larger than any camera photo or stitched TIFF the pixel limit (images.MAX_PIXELS) lets through.
MAX_FILE_BYTES = 1 << 30


def _open_regular(path: str | Path, max_bytes: int) -> tuple[int, int]:
    """(descriptor, size) of a regular file, or ImageError naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageError("file not found (deleted or moved since the folder was scanned?)", path) from None
    except OSError as e:
        raise ImageError(f"cannot open: {e.strerror or e}", path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device" if
                    stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket" if
                    stat.S_ISSOCK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "not a file")
            raise ImageError(f"not a regular file ({kind}); only ordinary files are read", path)
        if st.st_size > max_bytes:
            raise ImageError(f"file too large ({st.st_size / 2**20:,.0f} MiB, limit {max_bytes / 2**20:,.0f} MiB)",
                             path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        return fd, st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The whole content of a regular file (ImageError for anything else, or when unreadable)."""
    fd, size = _open_regular(path, max_bytes)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            # The size fstat gave, plus one byte to see a file still growing. Not `read(max_bytes + 1)`: Python
            # allocates what is asked for, and mapping then unmapping 1 GiB for every 15 KB patch cost 4x the read
            # itself, and each unmap interrupts every other thread of the process (the model's included).
            data = f.read(size + 1)
            if len(data) > size:
                data += f.read(max_bytes + 1 - len(data))
    except OSError as e:
        raise ImageError(f"cannot read: {e.strerror or e}", path) from None
    if len(data) > max_bytes:  # grew since fstat
        raise ImageError(f"file too large (over {max_bytes / 2**20:,.0f} MiB)", path)
    return data


def bytes_hash(data: bytes) -> str:
    """Hex BLAKE2b-128 of some bytes: the content hash (fast; collisions are not a concern at this scale)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_hash(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The content hash of a regular file, read in chunks. ImageError (a CrackDeskError) when it cannot be."""
    fd, _ = _open_regular(path, max_bytes)
    digest = hashlib.blake2b(digest_size=16)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise ImageError(f"cannot read: {e.strerror or e}", path) from None
    return digest.hexdigest()


def read_ends(path: str | Path, head: int, tail: int) -> tuple[bytes, bytes]:
    """The first `head` and the last `tail` bytes of a regular file (a photo's header and EXIF, and whether its
    end marker is there), under the same rules as `read_file`, without reading what lies between."""
    fd, size = _open_regular(path, MAX_FILE_BYTES)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            first = f.read(head)
            f.seek(max(0, size - tail))
            return first, f.read(tail)
    except OSError as e:
        raise ImageError(f"cannot read: {e.strerror or e}", path) from None
