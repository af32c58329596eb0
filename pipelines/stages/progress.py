"""Progress of a stage over frames: a factory ``(total, description) -> context manager``
whose value has ``update(n)`` (a tqdm bar, the app's stage reporter, or nothing)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from tqdm import tqdm

__all__ = ["ProgressBar", "ProgressFactory", "silent_progress", "tqdm_frames"]


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> object: ...


ProgressFactory = Callable[[int, str], AbstractContextManager[ProgressBar]]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def silent_progress(total: int, desc: str) -> AbstractContextManager[ProgressBar]:
    """No progress shown (workers, libraries)."""
    return contextlib.nullcontext(_NoBar())


def tqdm_frames(total: int, desc: str) -> AbstractContextManager[ProgressBar]:
    """Default per-stage progress: a second tqdm bar under the videos bar."""
    return tqdm(total=total, desc=desc, unit="frame", position=1, leave=False, dynamic_ncols=True)
