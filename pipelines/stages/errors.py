"""How a stage says that one video failed: :class:`StageError` (stage name and reason).

Every stage raises it for anything that goes wrong with its video, so an engine records the
failure (``KEY.failed.json``, ``failures.csv``) and goes on with the next video.
"""
from __future__ import annotations

import errno
from pathlib import Path

__all__ = ["StageError", "write_error"]


class StageError(RuntimeError):
    """A video failed at ``stage``; the message is the reason written to failures.csv."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage

    @property
    def disk_full(self) -> bool:
        return isinstance(self.__cause__, OSError) and self.__cause__.errno == errno.ENOSPC


def write_error(stage: str, path: Path, e: OSError) -> StageError:
    """The StageError for a file that cannot be written (the OSError kept as its cause, so a
    full disk is recognised)."""
    err = StageError(stage, f"{path}: cannot write ({e.strerror or e})")
    err.__cause__ = e
    return err
