"""Ctrl-C that arrives inside a library which would swallow it is held until it is safe.

Some C extensions run Python callbacks (weakref finalisers, file-like hooks) where a
KeyboardInterrupt is printed as "Exception ignored" and dropped: HDF5 through h5py is one.
:func:`deferred_interrupt` records a SIGINT during such a call and raises KeyboardInterrupt
right after it, so Ctrl-C always stops the program.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["deferred_interrupt", "terminate_as_interrupt"]


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Within the block, SIGINT is recorded instead of raised; on leaving, the previous
    handler gets it (KeyboardInterrupt for Python's default). Outside the main thread, where
    handlers cannot be set, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, object]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a scheduler ending a job) raises KeyboardInterrupt
    like Ctrl-C, so the same clean-up runs: finished work kept, partial files removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
