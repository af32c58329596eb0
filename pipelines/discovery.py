"""Which videos a folder job processes, under which output key, and how shards split them.

A video's *key* names all its outputs (``KEY.labels.json`` …): the file's stem, or for a
video inside an input folder its path relative to that folder with ``/`` turned into ``__``.
Two videos that would share a key (``clip.mp4`` beside ``clip.mkv``) both take their
extension into it (``clip-mp4``, ``clip-mkv``), so keys never collide and never depend on
the order files are found in. The project's own outputs (``KEY.annotated.mp4`` in the output
folder) and hidden files are never taken as inputs.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VIDEO_SUFFIXES", "VideoJob", "discover", "select_shard"]

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
OWN_VIDEO_OUTPUT_SUFFIX = ".annotated.mp4"  # what the folder job writes; never an input


@dataclass(frozen=True)
class VideoJob:
    """One input video and the key its outputs are named by."""

    path: Path
    key: str


def _is_own_output(path: Path, out_dir: Path | None) -> bool:
    if not path.name.endswith(OWN_VIDEO_OUTPUT_SUFFIX):
        return False
    return out_dir is None or path.resolve().parent == out_dir.resolve()


def discover(inputs: Sequence[Path], recursive: bool = False, out_dir: Path | None = None) -> list[VideoJob]:
    """Video files named directly, plus videos inside named folders (by suffix), in a stable
    order, each with a unique key. ``out_dir``: the job's output folder, whose annotated clips
    are skipped. Raises FileNotFoundError for a missing input."""
    found: list[tuple[Path, str]] = []
    for inp in inputs:
        if inp.is_dir():
            for p in sorted(inp.glob("**/*" if recursive else "*")):
                if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
                        and not _is_own_output(p, out_dir)):
                    found.append((p, "__".join(p.relative_to(inp).with_suffix("").parts)))
        elif inp.is_file():
            found.append((inp, inp.stem))
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
    by_key: dict[str, list[Path]] = {}
    for path, key in found:
        by_key.setdefault(key, []).append(path)
    jobs: list[VideoJob] = []
    used: set[str] = set()
    for path, key in found:
        if len(by_key[key]) > 1:  # same stem from two files: name both by their extension
            key = f"{key}-{path.suffix.lstrip('.').lower()}"
        if key in used:  # the same name twice even so (two input folders): add a path hash
            key = f"{key}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        if key in used:  # the very same file named twice
            continue
        used.add(key)
        jobs.append(VideoJob(path, key))
    return jobs


def select_shard(jobs: Sequence[VideoJob], k: int, n: int) -> list[VideoJob]:
    """Deterministic split: sort by key, keep every n-th starting at k. The N shards together
    cover the list exactly once, whatever machine computes them."""
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard K/N needs 0 ≤ K < N, got {k}/{n}")
    return [j for i, j in enumerate(sorted(jobs, key=lambda j: j.key)) if i % n == k]
