"""Live mode driven by pushes (the app's Live tab): frames pushed in, window records polled out,
stop → the session.

    runner = LiveRunner(LiveOptions(job=JobOptions(out=DIR)), classifier, width=640, height=480, fps=30,
                        record=DIR / "session.mp4", overlay=True)
    runner.push(image_bgr, timestamp_s)     # from a callback; never blocks (drops the oldest if behind)
    for record in runner.poll(): ...        # the window records that came since the last poll
    picture = runner.overlay()              # the latest posed frame with skeleton, top-3, timeline
    session = runner.stop()                 # the last windows; the recording finished
    write_session(session, opts, classifier, key="session", video=runner.recording, ...)

The engine (:class:`pipelines.engines.live.LiveEngine`) runs on its own thread, reading a
:class:`FrameFeed`: a bounded queue that, like a camera source, drops the oldest frame when
pose is behind and counts it (the frame numbers show the holes).
"""
from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.engines.live import LiveEngine, LiveOptions, LiveSession, WindowRecord
from pipelines.engines.live_pose import PosedFrame
from pipelines.stages.classify import Classifier
from pipelines.stages.pose import SharedEstimator
from pose.sources import DEFAULT_QUEUE_FRAMES, DEFAULT_RECORD_QUEUE_FRAMES, Frame, Recorder, SourceInfo

__all__ = ["FrameFeed", "LiveRunner"]


class FrameFeed:
    """A bounded queue of :class:`pose.sources.Frame` s: :meth:`push` from any thread,
    iterate in the engine's; at most ``capacity`` frames wait, the oldest is dropped and
    counted (``dropped``) when a push finds it full (``lossless``: the push waits instead)."""

    def __init__(self, capacity: int = DEFAULT_QUEUE_FRAMES, lossless: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity, self.lossless = capacity, lossless
        self.pushed = self.dropped = 0
        self._queue: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_t = -np.inf

    def push(self, image: np.ndarray, timestamp: float) -> None:
        """Add a (H, W, 3) uint8 BGR frame shown at ``timestamp`` s (increasing; a frame not
        after the previous one is ignored)."""
        with self._cond:
            if self._closed or not timestamp > self._last_t:
                return
            while self.lossless and len(self._queue) >= self.capacity and not self._closed:
                self._cond.wait(0.1)
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._last_t = timestamp
            self._queue.append(Frame(self.pushed, float(timestamp), image, time.monotonic()))
            self.pushed += 1
            self._cond.notify_all()

    @property
    def last_timestamp(self) -> float:
        """The timestamp of the last frame pushed (−inf before the first)."""
        return self._last_t

    def close(self) -> None:
        """No more frames: the engine takes those queued, then its input ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                frame = self._queue.popleft()
                self._cond.notify_all()
            yield frame


class LiveRunner:
    """A :class:`LiveEngine` on its own thread behind a :class:`FrameFeed` (module doc);
    ``source`` names the session's source in its files; ``record``: write every pushed frame
    (``width`` × ``height``) to this mp4 (:class:`pose.sources.Recorder`, atomically, finished
    by :meth:`stop`); ``overlay``: keep the latest posed frame for :meth:`overlay`."""

    def __init__(self, opts: LiveOptions, classifier: Classifier | None, *, width: int, height: int, fps: float,
                 source: str = "browser camera", estimator: SharedEstimator | None = None,
                 capacity: int = DEFAULT_QUEUE_FRAMES, lossless: bool = False,
                 record: str | os.PathLike | None = None, overlay: bool = False) -> None:
        self.feed = FrameFeed(capacity, lossless)
        self._new: collections.deque[WindowRecord] = collections.deque()
        info = SourceInfo(source, "camera", width, height, float(fps))
        self._latest: PosedFrame | None = None
        self.engine = LiveEngine(opts, classifier, info, on_window=self._new.append, estimator=estimator,
                                 on_frame=self._keep if overlay else None)
        self.recorder = None if record is None else Recorder(record, width, height, fps,
                                                             background_frames=DEFAULT_RECORD_QUEUE_FRAMES)
        self.recording: Path | None = None
        self.recording_left_out = 0  # pushed frames the recording's encoder could not keep up with
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live engine", daemon=True)
        self._thread.start()

    def _keep(self, posed: PosedFrame) -> None:
        self._latest = posed

    def overlay(self):
        """The latest posed frame drawn with its skeleton, the current top-3 and the timeline
        (:func:`pipelines.engines.live_overlay.draw_overlay`), BGR; None before the first."""
        from pipelines.engines.live_overlay import draw_overlay

        posed = self._latest
        return None if posed is None else draw_overlay(posed, self.records, self.engine.fps)

    def _run(self) -> None:
        try:
            self.engine.run(self.feed)
        except BaseException as e:  # noqa: BLE001 - raised again by stop()
            self.error = e

    def push(self, image: np.ndarray, timestamp: float) -> None:
        """Hand a frame to the engine (see :meth:`FrameFeed.push`), and to the recording."""
        if self.recorder is not None and timestamp > self.feed.last_timestamp:
            self.recorder.write(image, timestamp)
        self.feed.push(image, timestamp)

    def poll(self) -> list[WindowRecord]:
        """The window records that came since the last call, in order."""
        out = []
        while self._new:
            out.append(self._new.popleft())
        return out

    @property
    def records(self) -> list[WindowRecord]:
        """Every window record so far."""
        return list(self.engine.records)

    def stop(self) -> LiveSession:
        """End the session: the queued frames are taken, the last windows labelled; returns the
        :class:`LiveSession` (raises what the engine raised)."""
        self.feed.close()
        self._thread.join()
        if self.recorder is not None:
            self.recording_left_out = self.recorder.dropped
            self.recording = self.recorder.close() if self.recorder.accepted else None
            if self.recording is None:
                self.recorder.abort()
            self.recorder = None
        session = self.engine.finish()
        if self.error is not None:
            raise self.error
        session.frames_dropped = max(session.frames_dropped, self.feed.dropped)
        return session
