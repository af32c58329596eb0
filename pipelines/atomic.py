"""Atomic file outputs: write to a temporary name in the target folder, then rename.

A reader (or a resumed run) therefore sees either the complete old file, the complete new
file, or nothing — never a partial one, even after Ctrl-C. Temporary names start with a dot
and end in ``.part`` so :func:`remove_stale_parts` can clean up after a hard kill.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def temp_path_beside(path: str | os.PathLike) -> Path:
    """Create and return an empty temporary file ``.{name}.XXXX.part`` in ``path``'s folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on normal exit it replaces ``path``, on an
    exception (KeyboardInterrupt included) it is deleted."""
    tmp_path = temp_path_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def remove_stale_parts(folder: str | os.PathLike, stem: str) -> int:
    """Delete leftover ``.{stem}*.part`` files of an interrupted run; returns how many."""
    removed = 0
    for p in Path(folder).glob(f".{stem}*.part"):
        p.unlink(missing_ok=True)
        removed += 1
    return removed
