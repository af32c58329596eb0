"""Atomic file outputs: the one way every output of the project is written.

A file is written under a temporary name beside its target and renamed over it only when
complete, so a reader (or a resumed run) sees the complete old file, the complete new file,
or nothing, never a partial one, even after Ctrl-C, a kill or a full disk. Temporary names are
``.{target name}.{8 random characters}.part``: hidden, never taken for an output, and tied to
exactly one target, so :func:`remove_stale_parts` cleans one target's leftovers without
touching any other file (another video's, another process's). Every output gets the mode a
plain ``open()`` would give it (``0o666`` less the umask), whatever wrote it (Python, HDF5,
torch, FFmpeg).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["PART_SUFFIX", "FolderError", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "ensure_writable_folder", "is_part_file",
           "remove_stale_parts", "temp_path_beside"]

PART_SUFFIX = ".part"
_TOKEN_CHARS = 8


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_beside(path: str | os.PathLike) -> Path:
    """Create and return an empty temporary file ``.{name}.XXXXXXXX.part`` in ``path``'s folder,
    with the umask's permissions (not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_CHARS // 2)}{PART_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue
        os.close(fd)
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for any writer to fill; on normal exit it
    replaces ``path``, on any exception (KeyboardInterrupt included) it is deleted."""
    tmp = temp_path_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _part_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{{_TOKEN_CHARS}}}{re.escape(PART_SUFFIX)}")


def is_part_file(path: str | os.PathLike) -> bool:
    """True for a temporary file made by :func:`temp_path_beside`."""
    return re.fullmatch(rf"\..+\.[0-9a-f]{{{_TOKEN_CHARS}}}{re.escape(PART_SUFFIX)}", Path(path).name) is not None


def remove_stale_parts(targets: Iterable[str | os.PathLike]) -> int:
    """Delete the leftover temporary files of exactly these target files (an interrupted
    run's); returns how many. Files of any other target are never touched."""
    by_folder: dict[Path, list[re.Pattern[str]]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, []).append(_part_pattern(target.name))
    removed = 0
    for folder, patterns in by_folder.items():  # one listing per folder (output folders get large)
        try:
            names = [e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(PART_SUFFIX)]
        except OSError:
            continue
        for name in names:
            if any(p.fullmatch(name) for p in patterns):
                (folder / name).unlink(missing_ok=True)
                removed += 1
    return removed


class FolderError(ValueError):
    """An output folder that cannot be used; the message names it and says why."""


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it takes files (a temporary file is written and
    removed). Raises :class:`FolderError` for a path that is a file or lies under one, a
    read-only or pseudo file system (``/proc``), or any other refusal."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderError(f"{folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_path_beside(folder / ".write-test")
        probe.unlink()
    except (NotADirectoryError, FileExistsError):
        raise FolderError(f"{folder}: a part of the path is a file, not a folder") from None
    except OSError as e:
        raise FolderError(f"{folder}: cannot write there ({e.strerror or e})") from None
    return folder
