"""The live engine: a camera, a stream or a file labelled as it happens, by the file job's stages.

    engine = LiveEngine(LiveOptions(job=JobOptions(out=DIR)), classifier, source.info, on_window=print)
    try:
        engine.run(source)                 # Frames in (pose.sources); window records out, on_window
    finally:
        session = engine.finish()          # the last windows; what the session files are made of
    write_session(session, DIR, key)       # pipelines.engines.live_session

Per frame: pose (:class:`pipelines.engines.live_pose.StreamPose`, the estimator's own stream) →
:class:`pose.postprocess.StreamPostprocessor` (the file job's gap filling and smoothing, with a
bounded look-ahead: 0.4 s at 30 fps) → windows on the file job's grid
(:func:`pipelines.stages.windowing.make_windows`), placed by the source's timestamps (frame
``round(t × fps)``) → once a window's frames are final, it is classified
(:func:`pipelines.stages.classify.classify_windows`) and labelled
(:func:`pipelines.stages.labelling.label_track`) on a worker thread, and its record goes to
``on_window``: the labels JSON's window fields (``start_s``, ``end_s``, ``top_k``, ``body``,
``region_motion`` …) plus ``frames`` (received), ``dropped_frames`` (of the window),
``dropped_total`` and ``latency_s`` (from the arrival of the window's last received frame to
the record being handed on).

Bounded everywhere: the source's queue (:mod:`pose.sources`: a live source drops the oldest
frame when pose is behind, and counts it), the post-processor's look-ahead, and at most
``queue_windows`` windows waiting for the classifier (the pose loop waits for it, so the source
drops frames rather than windows). A frame that was dropped is simply not there: its window is
classified from the frames it has, and it does not count as "subject missing".

On a file read without pacing nothing is dropped, and the windows are the file job's: the same
spans, top-k and probabilities (to float rounding of the batch size); only the per-window heat
can differ (module doc of :mod:`pipelines.engines.live_session`, docs/live.md).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.options import JobOptions
from pipelines.stages.classify import Classifier, classify_windows, usable_windows
from pipelines.stages.labelling import label_track
from pipelines.stages.pose import LAYOUT, SharedEstimator
from pipelines.stages.windowing import Window, make_windows
from pose.postprocess import GapConfig, StreamPostprocessor, TrackBlock
from pose.sources import Frame, SourceInfo

from .live_pose import PosedFrame, StreamPose

__all__ = ["DEFAULT_QUEUE_WINDOWS", "LiveEngine", "LiveOptions", "LiveSession", "WindowRecord", "latency_summary"]

DEFAULT_QUEUE_WINDOWS = 2
WindowRecord = dict[str, Any]  # JSON: a labels-JSON window record plus the live fields
NO_FRAME_REASON = "no frame received: all of the window's frames were dropped"


@dataclass(frozen=True)
class LiveOptions:
    """A live session's settings: ``job`` the folder job's options (pose, windows, threshold,
    top-k, heat map, batch size, which session files; ``job.out`` the session folder),
    ``realtime`` (recorded: the source was paced or live), ``queue_windows`` windows waiting
    for the classifier at most, ``max_seconds`` stop after this much source time (None: no
    limit)."""

    job: JobOptions
    realtime: bool = False
    queue_windows: int = DEFAULT_QUEUE_WINDOWS
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.queue_windows < 1:
            raise ValueError(f"queue_windows must be at least 1, got {self.queue_windows}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")


def window_grid(fps: float, opts: JobOptions) -> tuple[int, int]:
    """Window length and stride in frames, as :func:`make_windows` counts them (read off its
    first two windows)."""
    w = make_windows(int(opts.windows.window * fps + opts.windows.stride * fps) + 3, fps, opts.windows.window,
                     opts.windows.stride)
    return w[0].length, w[1].start


class _Track:
    """The post-processed frames received so far (growing arrays, amortised doubling)."""

    FIELDS = ("keypoints", "scores", "flags", "timestamps", "pos", "arrival", "region")

    def __init__(self, v: int, parts: int) -> None:
        self.n = 0
        self._a = {"keypoints": np.zeros((256, v, 2), np.float32), "scores": np.zeros((256, v), np.float32),
                   "flags": np.zeros((256, v), np.uint8), "timestamps": np.zeros(256, np.float64),
                   "pos": np.zeros(256, np.int64), "arrival": np.zeros(256, np.float64),
                   "region": np.zeros((256, parts), np.float32)}

    def extend(self, block: TrackBlock, pos: list[int], arrival: list[float], region: list[np.ndarray]) -> None:
        k = len(block)
        if self.n + k > len(self._a["pos"]):
            grow = max(2 * len(self._a["pos"]), self.n + k)
            self._a = {name: np.concatenate([a, np.zeros((grow - len(a),) + a.shape[1:], a.dtype)])
                       for name, a in self._a.items()}
        values = (block.keypoints, block.scores, block.flags, block.timestamps, pos, arrival,
                  np.asarray(region, np.float32).reshape(k, -1))
        for name, value in zip(self.FIELDS, values):
            self._a[name][self.n:self.n + k] = value
        self.n += k

    def __getattr__(self, name: str) -> np.ndarray:
        if name in _Track.FIELDS:
            return self._a[name][:self.n]
        raise AttributeError(name)


@dataclass(frozen=True)
class _WindowJob:
    """A window whose frames are final: its grid ``window`` and compact frames ``[lo, hi)``."""

    window: Window
    lo: int
    hi: int
    keypoints: np.ndarray
    flags: np.ndarray
    region: np.ndarray
    last_arrival: float


@dataclass
class LiveSession:
    """What a finished (or stopped) session is made of, for its files
    (:func:`pipelines.engines.live_session.write_session`): the received, post-processed
    frames (``keypoints`` (n, V, 2), ``scores``, ``flags``, ``timestamps`` (n,) s, ``pos``
    (n,) grid frame of each, ``region`` (n, P)), the grid ``windows`` and each one's compact
    ``spans`` ``[lo, hi)``, the classifier's scores per window index (``probs`` (K,),
    ``frame_inds`` (T,), ``heat`` (T, V) or None), the emitted ``records``, and counts."""

    info: SourceInfo
    fps: float
    keypoints: np.ndarray
    scores: np.ndarray
    flags: np.ndarray
    timestamps: np.ndarray
    pos: np.ndarray
    region: np.ndarray
    windows: list[Window]
    spans: list[tuple[int, int]]
    window_scores: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]
    records: list[WindowRecord]
    frames_received: int
    frames_dropped: int
    meta: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)


def latency_summary(records: Iterable[WindowRecord]) -> dict[str, float | None]:
    """p50, p95 and max of the records' ``latency_s`` (None without records)."""
    lat = np.array([r["latency_s"] for r in records if "latency_s" in r], np.float64)
    if not lat.size:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": round(float(np.percentile(lat, 50)), 4), "p95": round(float(np.percentile(lat, 95)), 4),
            "max": round(float(lat.max()), 4)}


class LiveEngine:
    """Frames in, window records out (module doc). ``info``: the source's size and frame rate;
    ``on_window(record)`` is called for each window in order, from the classifier's thread;
    ``on_frame(posed)`` (optional) after each frame's pose, in the caller's thread (an overlay);
    ``estimator``: a shared pose model (default: one made from ``opts.job.pose``)."""

    def __init__(self, opts: LiveOptions, classifier: Classifier | None, info: SourceInfo, *,
                 on_window: Callable[[WindowRecord], None] | None = None,
                 on_frame: Callable[[PosedFrame], None] | None = None,
                 estimator: SharedEstimator | None = None) -> None:
        self.opts, self.classifier, self.info = opts, classifier, info
        self.fps = float(info.fps)
        self.on_window, self.on_frame = on_window, on_frame
        self.size, self.step = window_grid(self.fps, opts.job)
        self._own_estimator = estimator is None
        self._estimator = estimator or SharedEstimator(opts.job.pose)
        self.pose = StreamPose(self._estimator.get(), info.width, info.height, keep_images=on_frame is not None)
        self.post = StreamPostprocessor(self.fps, GapConfig(), opts.job.pose.smoothing_config(), LAYOUT.num_joints)
        self.track = _Track(LAYOUT.num_joints, len(LAYOUT.parts))
        self.records: list[WindowRecord] = []
        self.frames_received = 0
        self.frames_dropped = 0
        self._last_index = -1
        self._last_pos = -1
        self._pending: list[tuple[int, float, np.ndarray]] = []  # pushed, not final: (pos, arrival, region)
        self._windows: list[Window] = []
        self._spans: list[tuple[int, int]] = []
        self._scores: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self._jobs: queue.Queue[_WindowJob | None] = queue.Queue(maxsize=opts.queue_windows)
        self._error: BaseException | None = None
        self._error_raised = False
        self._worker = threading.Thread(target=self._work, name="live classifier", daemon=True)
        self._worker.start()
        self._finished: LiveSession | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the frame in hand (safe from a signal handler or
        another thread); the frames already taken are kept."""
        self._stop.set()

    # -- the pose loop (caller's thread) ------------------------------------------------
    def _counted(self, frames: Iterable[Frame]) -> Iterable[Frame]:
        limit = self.opts.max_seconds
        for f in frames:
            if self._stop.is_set() or (limit is not None and f.timestamp > limit):
                return
            self.frames_dropped += max(0, f.index - self._last_index - 1)
            self._last_index = f.index
            self.frames_received += 1
            yield f

    def run(self, frames: Iterable[Frame]) -> None:
        """Process ``frames`` until they end (or ``max_seconds``); window records go to
        ``on_window`` as their frames become final. Exceptions (a :class:`pose.sources.SourceError`,
        KeyboardInterrupt) propagate; call :meth:`finish` afterwards in any case."""
        for posed in self.pose.run(self._counted(frames)):
            self._raise_worker_error()
            pos = max(int(round(posed.timestamp * self.fps)), self._last_pos)
            self._last_pos = pos
            self._pending.append((pos, posed.arrival, posed.region))
            block = self.post.push(posed.keypoints, posed.scores, posed.timestamp, flags=posed.flags,
                                   present=posed.present)
            self._take(block)
            if self.on_frame is not None:
                self.on_frame(posed)

    def _take(self, block: TrackBlock) -> None:
        k = len(block)
        if k:
            done, self._pending = self._pending[:k], self._pending[k:]
            self.track.extend(block, [d[0] for d in done], [d[1] for d in done], [d[2] for d in done])
        while True:  # the next window, once a frame after it has come and all of its frames are final
            i = len(self._windows)
            start = i * self.step
            end = start + self.size
            if self._last_pos < end or (self._pending and self._pending[0][0] < end):
                break
            self._submit(Window(i, start, end))

    def _submit(self, w: Window) -> None:
        pos = self.track.pos
        lo, hi = (int(x) for x in np.searchsorted(pos, [w.start, w.end], side="left"))
        t = self.track
        job = _WindowJob(w, lo, hi, t.keypoints[lo:hi].copy(), t.flags[lo:hi].copy(), t.region[lo:hi].copy(),
                         float(t.arrival[lo:hi].max()) if hi > lo else time.monotonic())
        self._windows.append(w)
        self._spans.append((lo, hi))
        while True:  # wait for the classifier (bounded), but notice if it died
            self._raise_worker_error()
            try:
                self._jobs.put(job, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_worker_error(self) -> None:
        """Raise the classifier's failure, once: :meth:`finish` after it returns what was labelled."""
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise RuntimeError(f"live classifier failed: {type(self._error).__name__}: {self._error}") \
                from self._error

    # -- the classifier (worker thread) -------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                rec = self._label(job)
            except BaseException as e:  # noqa: BLE001 - handed to the pose loop
                self._error = e
                return
            rec["latency_s"] = round(time.monotonic() - job.last_arrival, 4)
            self.records.append(rec)
            if self.on_window is not None:
                try:
                    self.on_window(rec)
                except BaseException as e:  # noqa: BLE001 - handed to the pose loop
                    self._error = e
                    return

    def _label(self, job: _WindowJob) -> WindowRecord:
        w, n = job.window, job.hi - job.lo
        if n == 0:
            rec: WindowRecord = {"index": w.index, "joint_heat": [0.0] * LAYOUT.num_joints, "skipped": NO_FRAME_REASON}
        else:
            sub = Window(w.index, 0, n)
            scores, taxonomy, opts = None, None, self.opts.job
            if self.classifier is not None:
                taxonomy = self.classifier.taxonomy
                usable = usable_windows(job.keypoints, [sub])
                if usable:
                    scores = classify_windows(job.keypoints, usable, self.classifier, heatmap=opts.heatmap,
                                              batch_size=opts.batch_size)
            result = label_track(job.keypoints, self.fps, [sub], LAYOUT, taxonomy, scores, top_k=opts.top_k,
                                 threshold=opts.threshold, flags=job.flags, region_motion=job.region)
            rec = result.windows[0]
            if scores is not None:
                heat = None if scores.heat is None else scores.heat[0]
                self._scores[w.index] = (scores.probs[0], scores.frame_inds[0], heat)
        start_s, end_s = w.seconds(self.fps)
        rec.update(start_frame=w.start, end_frame=w.end, start_s=round(start_s, 4), end_s=round(end_s, 4))
        return {**rec, "frames": n, "dropped_frames": max(0, w.length - n), "dropped_total": self.frames_dropped}

    # -- the end ---------------------------------------------------------------------
    def finish(self) -> LiveSession:
        """End of the stream (or a stop): release the post-processor's last frames, submit the
        remaining windows (the file job's last, end-aligned one included), wait for the
        classifier and return the :class:`LiveSession`. Idempotent. A classifier failure is
        raised once (by :meth:`run` or here); a call after it returns the windows labelled before."""
        if self._finished is not None:
            return self._finished
        try:
            if self._error is None:
                self._take(self.post.flush())
                n = int(self.track.pos[-1]) + 1 if self.track.n else 0
                for w in make_windows(n, self.fps, self.opts.job.windows.window, self.opts.job.windows.stride):
                    if w.index >= len(self._windows):
                        self._submit(w)
        finally:
            self._stop_worker()
            if self._own_estimator:
                self._estimator.close()
        self._raise_worker_error()
        t = self.track
        self._finished = LiveSession(
            self.info, self.fps, t.keypoints.copy(), t.scores.copy(), t.flags.copy(), t.timestamps.copy(),
            t.pos.copy(), t.region.copy(), list(self._windows), list(self._spans), dict(self._scores),
            list(self.records), self.frames_received, self.frames_dropped,
            meta=self.pose.meta(t.n), postprocess=self.post.params())
        return self._finished

    def _stop_worker(self) -> None:
        while self._worker.is_alive():
            try:
                self._jobs.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self._worker.join()
