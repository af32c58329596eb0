"""File hashing: sha256 of a whole file or of its first bytes (video fingerprints, checkpoints)."""
from __future__ import annotations

import hashlib
import os

__all__ = ["MIB", "sha256_file"]

MIB = 1 << 20


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    """Hex sha256 of the file's first ``limit`` bytes (None: the whole file), read in 1 MiB chunks."""
    h = hashlib.sha256()
    remaining = limit
    with open(path, "rb") as f:
        while True:
            n = MIB if remaining is None else min(MIB, remaining)
            if n <= 0:
                break
            chunk = f.read(n)
            if not chunk:
                break
            h.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return h.hexdigest()
