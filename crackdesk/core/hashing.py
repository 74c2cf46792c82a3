"""Content hashes identify images independently of their path (renames and moves keep labels)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_hash(path: str | Path) -> str:
    """Hex BLAKE2b-128 of the file's bytes (fast, and collisions are not a concern at this scale)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
